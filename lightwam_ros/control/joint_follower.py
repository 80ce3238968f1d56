"""Commanded joint trajectories as a position-controlled robot follows them: named, timed
points replace the plan, which is sampled by linear interpolation (plain NumPy, no ROS)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class JointFollower:
    """Joint positions that follow commanded trajectories like an ideal position controller: the
    stand-in robot's joints, and the plan of targets a simulator's own controller tracks.
    ``follow`` and ``target`` may be called from different threads (a subscription and a
    simulation loop): the plan is one tuple, replaced whole."""

    def __init__(
        self,
        names: Sequence[str],
        lower: np.ndarray,
        upper: np.ndarray,
        initial: np.ndarray,
        time_constant: float = 0.0,
    ) -> None:
        self.names = tuple(names)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        initial = np.asarray(initial, dtype=np.float64)
        outside = [
            f"{name}={value:g} not in [{lo:g}, {hi:g}]"
            for name, value, lo, hi in zip(self.names, initial, self.lower, self.upper, strict=True)
            if not lo <= value <= hi
        ]
        if outside:
            raise ValueError(f"initial positions outside the joint limits: {', '.join(outside)}")
        if time_constant < 0.0:
            raise ValueError(f"time constant must be >= 0, got {time_constant}")
        self._index = {name: i for i, name in enumerate(self.names)}
        self.time_constant = time_constant
        self.positions = initial.copy()
        self.velocities = np.zeros_like(initial)
        # (knot times (K,), knots (K, joints)): the target over time, piecewise linear.
        self._plan = (np.zeros(1), initial[None].copy())
        self._last_step: float | None = None

    def target(self, t: float) -> np.ndarray:
        """The commanded positions at time ``t`` (held before the first and after the last)."""
        knot_times, knots = self._plan
        i = int(np.searchsorted(knot_times, t, side="right"))
        if i == 0:
            return knots[0].copy()
        if i >= len(knot_times):
            return knots[-1].copy()
        t0, t1 = knot_times[i - 1], knot_times[i]
        weight = (t - t0) / (t1 - t0)
        return knots[i - 1] + weight * (knots[i] - knots[i - 1])

    def follow(
        self, names: Sequence[str], times: Sequence[float], points: Sequence[Sequence[float]], now: float
    ) -> None:
        """Replace the plan by points of ``names`` at absolute ``times``; ValueError if invalid.

        Points already in the past are skipped, as a trajectory controller does: the newest of
        them is the target now, else the current target is, and the plan interpolates from there.
        """
        columns = self._columns(names)
        at = np.asarray(times, dtype=np.float64)
        positions = np.asarray(points, dtype=np.float64)
        if at.size == 0 or positions.shape != (at.size, columns.size):
            raise ValueError(
                f"a command needs one position per named joint ({columns.size}) in "
                f"each of its points; got points of shape {positions.shape} for "
                f"{at.size} times"
            )
        if not (np.isfinite(positions).all() and np.isfinite(at).all()):
            raise ValueError("command has non-finite positions or times")
        if np.any(np.diff(at) <= 0.0):
            raise ValueError("command point times must increase strictly")
        full = np.repeat(self.target(now)[None], at.size, axis=0)
        full[:, columns] = positions
        full = np.clip(full, self.lower, self.upper)
        future = at > now
        start = full[~future][-1] if (~future).any() else self.target(now)
        self._plan = (np.concatenate([[now], at[future]]), np.concatenate([start[None], full[future]]))

    def step(self, now: float) -> np.ndarray:
        """Advance the measured joints to ``now`` and return them."""
        target = self.target(now)
        elapsed = 0.0 if self._last_step is None else now - self._last_step
        previous = self.positions
        if self.time_constant > 0.0 and elapsed > 0.0:
            self.positions = previous + (1.0 - math.exp(-elapsed / self.time_constant)) * (target - previous)
        elif self.time_constant == 0.0:
            self.positions = target
        self.velocities = (self.positions - previous) / elapsed if elapsed > 0.0 else np.zeros_like(previous)
        self._last_step = now
        return self.positions

    def fractions(self) -> np.ndarray:
        """Each joint's place within its limits, 0 (lower) to 1 (upper)."""
        return np.clip((self.positions - self.lower) / (self.upper - self.lower), 0.0, 1.0)

    def _columns(self, names: Sequence[str]) -> np.ndarray:
        names = list(names)
        unknown = [name for name in names if name not in self._index]
        if unknown:
            raise ValueError(
                f"command names joints this robot does not have: {unknown} (joints: {list(self.names)})"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"command names a joint twice: {names}")
        return np.array([self._index[name] for name in names], dtype=np.intp)
