"""What the executor will command from its last tick on while nothing changes: its ticks run ahead.

An output that hands a joint trajectory controller the whole plan at once must hand over what the
executor would command tick by tick, because the safety filter (the one authority on limits)
shapes every tick: the ramp-in, the velocity and acceleration caps, braking at the joint limits.
``Lookahead`` is a copy of the core's state taken under its lock; ``motion`` then runs the
executor's own tick step (``command_step``, which ``ChunkExecutorCore.tick`` uses too) ahead on
that copy, off the control thread: the plan sampled and filtered every period until its end,
then the brake to rest (the watchdog holds when a plan runs out), or the brake alone when holding.
Inputs are assumed to stay fresh and the arm to track the command (its measured state is the
previous command); a timeout or an e-stop is a new hold with its own stopping motion.

The filtered ticks are a motion whose velocity is piecewise linear through each tick's velocity
at the middle of its tick (a tick's velocity is its average, the position change over the
period), so its acceleration is the filter's per-tick change and lies within the caps (and
between any two times the velocity changes by at most the acceleration cap times their distance).
``PlannedMotion`` is that motion at a few waypoints (positions and velocities, what a cubic
spline needs): the start, the plan's step times, the ticks where the filter changed the plan's
motion or the brake acts (where the velocity bends there, not along straight runs such as a
ramp, a cap or a brake), and the time it comes to rest.  Where the filter shaped the motion, a
cubic spline through the waypoints (a joint trajectory controller's, with positions and
velocities) reproduces it exactly, so within the caps; elsewhere the motion is the plan, which
the spline through its step times follows closely (0.2 mrad in the tests, a cubic between 50 ms
steps where the executor interpolates a quintic).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from lightwam_ros.control.interpolation import PiecewiseQuintic
from lightwam_ros.control.safety import SafeCommand, SafetyFilter
from lightwam_ros.control.watchdog import brake_step
from lightwam_ros.policy.chunk import NS_PER_S

_BEND = 1e-9  # rad/s: a change of slope in the velocity smaller than this is a straight run


def command_step(
    safety: SafetyFilter,
    trajectory: PiecewiseQuintic | None,
    origin_ns: int,
    position: np.ndarray,
    velocity: np.ndarray,
    t_ns: int,
    dt: float,
    measured: np.ndarray | None,
) -> SafeCommand:
    """One tick's command: the trajectory at ``t_ns`` (its origin at ``origin_ns``), or the brake
    towards a hold without one, through the safety filter (which advances its ramp by dt)."""
    if trajectory is not None:
        target, target_velocity, _ = trajectory.sample((t_ns - origin_ns) / NS_PER_S)
    else:
        target, target_velocity = brake_step(position, velocity, safety.limits.max_acceleration, dt)
    return safety.filter(position, velocity, target, measured, dt, target_velocity)


@dataclass(frozen=True, eq=False)
class PlannedMotion:
    """Waypoints of the motion ahead: increasing times (n,) [ns], positions and velocities (n, D);
    the last waypoint is at rest."""

    times_ns: np.ndarray
    positions: np.ndarray
    velocities: np.ndarray


class Lookahead:
    """The core's commanding state at its last tick (copies: safe to use from another thread)."""

    def __init__(
        self,
        safety: SafetyFilter,
        trajectory: PiecewiseQuintic | None,
        origin_ns: int,
        t0_ns: int,
        position: np.ndarray,
        velocity: np.ndarray,
    ) -> None:
        self._safety = copy.copy(safety)  # its ramp advances here as in the real ticks
        self._trajectory = (
            None if trajectory is None else PiecewiseQuintic(trajectory.knots, trajectory.coefficients)
        )
        self._origin_ns = origin_ns
        self._t0_ns = t0_ns
        self._position = position.copy()
        self._velocity = velocity.copy()

    def motion(self, period_ns: int) -> PlannedMotion:
        """The commands of ticks every ``period_ns`` until the arm is at rest, as waypoints."""
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        velocities, shaped, knots = self._run(period_ns)
        # Times from here on are float ns after the start (exact to well below a nanosecond).
        half = period_ns / 2
        # The velocity's nodes: the start's velocity (the last tick's average) half a period before
        # it, then each tick's half a period before that tick; rest at the last node.
        nodes = -half + period_ns * np.arange(len(velocities))
        node_positions = np.empty_like(velocities)
        # Position at the first node such that the motion passes through the command at the start.
        v0, v1 = velocities[0], velocities[1]
        node_positions[0] = self._position - half * (3.0 * v0 + v1) / 4.0 / NS_PER_S
        steps = (velocities[1:] + velocities[:-1]) * (half / NS_PER_S)
        node_positions[1:] = node_positions[0] + np.cumsum(steps, axis=0)
        bends = np.zeros(len(velocities), dtype=bool)
        slope_change = np.abs(np.diff(velocities, n=2, axis=0)).max(axis=1) > _BEND
        bends[1:-1] = slope_change & (shaped[:-2] | shaped[1:-1] | shaped[2:])
        end = nodes[-1]
        waypoints = np.unique(
            np.concatenate(([0.0], knots[(knots > 0) & (knots < end)], nodes[bends], [end]))
        )
        wp_velocities = np.column_stack([np.interp(waypoints, nodes, column) for column in velocities.T])
        # Positions: the integral of the piecewise-linear velocity from the node before each waypoint.
        index = np.clip(np.searchsorted(nodes, waypoints, side="right") - 1, 0, len(nodes) - 1)
        span = ((waypoints - nodes[index]) / NS_PER_S)[:, None]
        wp_positions = node_positions[index] + span * (velocities[index] + wp_velocities) / 2.0
        wp_velocities[-1] = 0.0
        return PlannedMotion(self._t0_ns + np.round(waypoints).astype(np.int64), wp_positions, wp_velocities)

    def _run(self, period_ns: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tick velocities (start's first), whether each tick is not the plan's own motion (the
        filter changed it, or a brake), and the plan's step times [ns after the start]."""
        trajectory, safety = self._trajectory, self._safety
        limits = safety.limits
        knots = np.zeros(0)
        plan_end = self._t0_ns
        if trajectory is not None:
            knots = (self._origin_ns - self._t0_ns) + trajectory.knots[1:] * NS_PER_S
            plan_end = self._origin_ns + round(trajectory.end_time * NS_PER_S)  # as the core's
        dt = period_ns / NS_PER_S
        # Following ends at the plan's end; a brake from at most the velocity cap takes v/a.
        bound = (
            max(0, plan_end - self._t0_ns) / period_ns
            + float(np.max(limits.max_velocity / limits.max_acceleration)) / dt
        )
        position, velocity = self._position, self._velocity
        velocities, shaped = [velocity], [False]
        t = self._t0_ns
        for _ in range(math.ceil(bound) + 3):
            t += period_ns
            if trajectory is not None and t >= plan_end:
                trajectory = None  # the watchdog holds when the plan runs out
            # A tracking arm: the measured state is the previous command.
            safe = command_step(safety, trajectory, self._origin_ns, position, velocity, t, dt, position)
            position, velocity = safe.position, safe.velocity
            velocities.append(velocity)
            shaped.append(safe.limited or trajectory is None)
            if trajectory is None and not velocity.any():
                return np.array(velocities), np.array(shaped), knots
        raise RuntimeError(f"the motion ahead does not come to rest within {bound:.0f} ticks")
