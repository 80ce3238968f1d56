"""Continuity-preserving interpolation of chunk waypoints to the control rate.

Every trajectory starts from the state the executor is *currently commanding* (position, velocity
and, for C2 kinds, acceleration), so replacing the plan at a chunk boundary never makes the
command jump.  It passes through the waypoints and comes to rest at the last one (velocity and
acceleration zero), which is also where a hold takes over if no new chunk arrives.

Kinds:
- ``cubic``: cubic Hermite segments, C1.  Waypoint velocities from the parabola through each
  waypoint and its neighbours; the start acceleration is not matched.
- ``quintic``: quintic Hermite segments, C2.  Waypoint velocities and accelerations from the same
  local parabola; the start acceleration is matched.
- ``minimum_jerk``: the spline through the waypoints that minimises the integral of squared jerk
  for the given start state and a rest end: piecewise quintic, C4 at the waypoints (one small
  linear solve per chunk).

All kinds are stored as piecewise quintics in the normalised segment time s in [0, 1], so sampling
is one 3x6 by 6xD product; ``sample`` is meant for a 500 Hz loop.
"""

from __future__ import annotations

import math

import numpy as np

INTERPOLATION_KINDS = ("cubic", "quintic", "minimum_jerk")

_DEGREE = 5
_NCOEF = _DEGREE + 1


class PiecewiseQuintic:
    """Piecewise polynomial trajectory; segment j is sum_k C[j, k] s^k with s = (t - t_j) / h_j.

    Before the first knot the start state is returned; after the last knot the final position
    with zero velocity and acceleration (every builder here ends at rest).
    """

    def __init__(self, knots: np.ndarray, coefficients: np.ndarray) -> None:
        knots = np.asarray(knots, dtype=np.float64)
        coefficients = np.asarray(coefficients, dtype=np.float64)
        if knots.ndim != 1 or knots.size < 2 or not np.all(np.diff(knots) > 0.0):
            raise ValueError("knots must be a strictly increasing 1-D array of length >= 2")
        if coefficients.ndim != 3 or coefficients.shape[:2] != (knots.size - 1, _NCOEF):
            raise ValueError(
                f"coefficients must have shape ({knots.size - 1}, {_NCOEF}, D), got {coefficients.shape}"
            )
        self.knots = knots
        self.coefficients = coefficients
        self._inv_h = 1.0 / np.diff(knots)
        self._segment = 0
        self._basis = np.zeros((3, _NCOEF))
        self._out = np.empty((3, coefficients.shape[2]))
        self._final = coefficients[-1].sum(axis=0)  # position at s = 1 of the last segment

    @property
    def end_time(self) -> float:
        return float(self.knots[-1])

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position, velocity, acceleration) at time t.

        The arrays are views of one buffer that the next call overwrites: copy to keep them.
        """
        out = self._out
        if t >= self.knots[-1]:
            out[0] = self._final
            out[1:] = 0.0
            return out[0], out[1], out[2]
        seg = self._find_segment(t)
        inv_h = self._inv_h[seg]
        s = max(0.0, (t - self.knots[seg]) * inv_h)
        s2, s3 = s * s, s * s * s
        basis = self._basis
        basis[0, 1:] = (s, s2, s3, s3 * s, s3 * s2)
        basis[1, 1:] = (inv_h, 2.0 * s * inv_h, 3.0 * s2 * inv_h, 4.0 * s3 * inv_h, 5.0 * s3 * s * inv_h)
        inv_h2 = inv_h * inv_h
        basis[2, 2:] = (2.0 * inv_h2, 6.0 * s * inv_h2, 12.0 * s2 * inv_h2, 20.0 * s3 * inv_h2)
        basis[0, 0] = 1.0
        np.matmul(basis, self.coefficients[seg], out=out)
        return out[0], out[1], out[2]

    def _find_segment(self, t: float) -> int:
        """Segment containing t; O(1) while t moves forward, a binary search otherwise."""
        seg = self._segment
        knots = self.knots
        if knots[seg] <= t < knots[seg + 1]:
            return seg
        if seg + 2 < knots.size and knots[seg + 1] <= t < knots[seg + 2]:
            seg += 1
        else:
            seg = int(np.searchsorted(knots, t, side="right")) - 1
            seg = min(max(seg, 0), knots.size - 2)
        self._segment = seg
        return seg


def build_trajectory(
    kind: str,
    t0: float,
    position: np.ndarray,
    velocity: np.ndarray,
    acceleration: np.ndarray,
    times: np.ndarray,
    waypoints: np.ndarray,
) -> PiecewiseQuintic:
    """Trajectory of the given kind from the state at ``t0`` through ``waypoints`` at ``times``."""
    if kind not in INTERPOLATION_KINDS:
        raise ValueError(f"unknown interpolation kind {kind!r}; expected one of {INTERPOLATION_KINDS}")
    knots, points, start_vel, start_acc = _checked(t0, position, velocity, acceleration, times, waypoints)
    if kind == "minimum_jerk":
        coefficients = _minimum_jerk_coefficients(knots, points, start_vel, start_acc)
    else:
        quintic = kind == "quintic"
        vel, acc = _local_parabola_derivatives(knots, points)
        vel[0] = start_vel
        acc[0] = start_acc
        coefficients = _hermite_coefficients(knots, points, vel, acc, quintic=quintic)
    return PiecewiseQuintic(knots, coefficients)


def _checked(t0, position, velocity, acceleration, times, waypoints):
    times = np.asarray(times, dtype=np.float64)
    waypoints = np.asarray(waypoints, dtype=np.float64)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {times.shape}")
    if waypoints.ndim != 2 or waypoints.shape[0] != times.size:
        raise ValueError(f"waypoints must have shape ({times.size}, D) to match times, got {waypoints.shape}")
    dim = waypoints.shape[1]
    state = []
    for name, value in (("position", position), ("velocity", velocity), ("acceleration", acceleration)):
        value = np.asarray(value, dtype=np.float64)
        if value.shape != (dim,):
            raise ValueError(f"start {name} must have shape ({dim},), got {value.shape}")
        state.append(value)
    if not math.isfinite(t0):
        raise ValueError(f"t0 must be finite, got {t0}")
    knots = np.concatenate(([float(t0)], times))
    if not np.all(np.isfinite(knots)) or not np.all(np.diff(knots) > 0.0):
        raise ValueError("waypoint times must be finite, strictly increasing and after t0")
    points = np.vstack((state[0][None, :], waypoints))
    if not (np.all(np.isfinite(points)) and np.all(np.isfinite(state[1])) and np.all(np.isfinite(state[2]))):
        raise ValueError("start state and waypoints must be finite")
    return knots, points, state[1], state[2]


def _local_parabola_derivatives(knots: np.ndarray, points: np.ndarray):
    """Velocity and acceleration at each knot from the parabola through it and its neighbours.

    Rows 0 (start) and -1 (end, at rest) are left at zero for the caller to set.
    """
    vel = np.zeros_like(points)
    acc = np.zeros_like(points)
    if knots.size > 2:
        h = np.diff(knots)[:, None]
        slope = np.diff(points, axis=0) / h
        span = h[:-1] + h[1:]
        vel[1:-1] = (h[1:] * slope[:-1] + h[:-1] * slope[1:]) / span
        acc[1:-1] = 2.0 * (slope[1:] - slope[:-1]) / span
    return vel, acc


def _hermite_coefficients(knots, points, vel, acc, quintic: bool) -> np.ndarray:
    """Per-segment coefficients in s from end positions, velocities (and accelerations)."""
    h = np.diff(knots)[:, None]
    p0, p1 = points[:-1], points[1:]
    v0, v1 = vel[:-1] * h, vel[1:] * h  # derivatives with respect to s
    coefficients = np.zeros((knots.size - 1, _NCOEF, points.shape[1]))
    dp = p1 - p0
    coefficients[:, 0] = p0
    coefficients[:, 1] = v0
    if quintic:
        a0, a1 = acc[:-1] * h * h, acc[1:] * h * h
        coefficients[:, 2] = 0.5 * a0
        coefficients[:, 3] = 10.0 * dp - 6.0 * v0 - 4.0 * v1 - 1.5 * a0 + 0.5 * a1
        coefficients[:, 4] = -15.0 * dp + 8.0 * v0 + 7.0 * v1 + 1.5 * a0 - a1
        coefficients[:, 5] = 6.0 * dp - 3.0 * v0 - 3.0 * v1 - 0.5 * a0 + 0.5 * a1
    else:
        coefficients[:, 2] = 3.0 * dp - 2.0 * v0 - v1
        coefficients[:, 3] = -2.0 * dp + v0 + v1
    return coefficients


def _derivative_row(order: int, s: float) -> np.ndarray:
    """d^order/ds^order of [1, s, ..., s^5] at s (s is 0 or 1 here)."""
    row = np.zeros(_NCOEF)
    for k in range(order, _NCOEF):
        row[k] = math.factorial(k) // math.factorial(k - order) * s ** (k - order)
    return row


_AT_START = [_derivative_row(m, 0.0) for m in range(5)]
_AT_END = [_derivative_row(m, 1.0) for m in range(5)]


def _minimum_jerk_coefficients(knots, points, start_vel, start_acc) -> np.ndarray:
    """Solve for the C4 piecewise quintic through the points (start state given, rest at end)."""
    n = knots.size - 1
    h = np.diff(knots)
    size = _NCOEF * n
    matrix = np.zeros((size, size))
    rhs = np.zeros((size, points.shape[1]))
    row = 0

    def constrain(terms: list[tuple[int, np.ndarray]], value) -> None:
        """One linear condition: sum over (segment, basis row) of basis . coefficients = value."""
        nonlocal row
        for segment, basis in terms:
            matrix[row, _NCOEF * segment : _NCOEF * (segment + 1)] += basis
        rhs[row] = value
        row += 1

    constrain([(0, _AT_START[0])], points[0])
    constrain([(0, _AT_START[1])], start_vel * h[0])
    constrain([(0, _AT_START[2])], start_acc * h[0] ** 2)
    for j in range(n):
        constrain([(j, _AT_END[0])], points[j + 1])
        if j + 1 < n:
            constrain([(j + 1, _AT_START[0])], points[j + 1])
            ratio = h[j] / h[j + 1]
            for order in range(1, 5):
                # d^m/dt^m = h^-m d^m/ds^m on both sides, multiplied through by h_j^m.
                constrain([(j, _AT_END[order]), (j + 1, -(ratio**order) * _AT_START[order])], 0.0)
    constrain([(n - 1, _AT_END[1])], 0.0)
    constrain([(n - 1, _AT_END[2])], 0.0)
    solution = np.linalg.solve(matrix, rhs)
    return solution.reshape(n, _NCOEF, points.shape[1])
