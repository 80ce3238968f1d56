"""One object a ROS node drives: chunks in, joint commands out at the control rate.

``submit_chunk`` validates a joint-space chunk as a whole, places it in time and merges it into
the plan (``ChunkScheduler``), then rebuilds the interpolated trajectory from the state the
executor is commanding right now, so a new chunk never makes the command jump.  ``tick`` samples
that trajectory (or brakes, when the watchdog says hold), passes the result through the safety
filter and returns the command.  Everything per chunk is precomputed in ``submit_chunk``; a tick
is one polynomial evaluation plus the filter.

Times are float seconds on one clock (the node converts ROS stamps).  Delta-EEF chunks are
converted to joint targets first (``delta_eef.delta_eef_chunk_to_joint_targets``).  The object is
not thread-safe: call it from one thread (or one ROS callback group).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lightwam_ros.control.interpolation import (
    INTERPOLATION_KINDS,
    PiecewiseQuintic,
    build_trajectory,
)
from lightwam_ros.control.safety import JointSafetyLimits, SafetyFilter
from lightwam_ros.control.scheduling import ActionChunk, ChunkScheduler
from lightwam_ros.control.watchdog import FOLLOWING_STATES, ExecutorState, Watchdog, brake_step


@dataclass(frozen=True)
class ExecutorConfig:
    limits: JointSafetyLimits
    boundary_rule: str = "latest"  # "latest", "blend" or "ensemble" (see scheduling)
    ensemble_k: float = 0.01
    interpolation: str = "quintic"  # "cubic", "quintic" or "minimum_jerk"
    chunk_timeout: float = 0.5  # s without an accepted chunk before holding
    measured_timeout: float = 0.1  # s without a joint state before holding
    min_lead: float = 0.004  # s; waypoints closer than this to now are dropped (unreachable)
    max_clock_skew: float = 0.1  # s; chunks stamped further in the future are refused

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATION_KINDS:
            raise ValueError(
                f"interpolation must be one of {INTERPOLATION_KINDS}, got {self.interpolation!r}"
            )
        for name in ("min_lead", "max_clock_skew"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be finite and >= 0 (s), got {value}")


@dataclass(frozen=True)
class SubmitResult:
    accepted: bool
    reason: str  # why it was refused; empty when accepted
    steps_kept: int  # executable steps still ahead when it arrived


@dataclass(frozen=True, eq=False)
class Command:
    """One tick's output; positions are None only before the first joint state."""

    t: float
    positions: np.ndarray | None
    velocities: np.ndarray | None
    accelerations: np.ndarray | None
    state: ExecutorState
    reason: str
    limited: bool  # the safety filter changed the requested motion


class ChunkExecutorCore:
    """Chunk validation, scheduling, interpolation, safety and watchdog behind four calls."""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config
        self._safety = SafetyFilter(config.limits)
        self._scheduler = ChunkScheduler(config.boundary_rule, config.ensemble_k)
        self._watchdog = Watchdog(config.chunk_timeout, config.measured_timeout)
        self._dim = config.limits.dim
        self._trajectory: PiecewiseQuintic | None = None
        self._measured: np.ndarray | None = None
        self._t_measured = -math.inf
        self._t_cmd: float | None = None
        self._cmd_pos = np.zeros(self._dim)
        self._cmd_vel = np.zeros(self._dim)
        self._cmd_acc = np.zeros(self._dim)
        self._last: Command | None = None

    # ---------------------------------------------------------------- state

    @property
    def state(self) -> ExecutorState:
        return self._watchdog.state

    @property
    def reason(self) -> str:
        return self._watchdog.reason

    @property
    def plan_end(self) -> float:
        """Time the current plan runs out (-inf with no plan): when to want the next chunk."""
        return self._trajectory.end_time if self._trajectory is not None else -math.inf

    def _clock(self) -> float:
        return self._t_cmd if self._t_cmd is not None else self._t_measured

    # ---------------------------------------------------------------- inputs

    def update_measured(self, q: np.ndarray, t: float) -> None:
        """Latest joint state; a non-finite one is refused (the previous one ages out instead)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self._dim,):
            raise ValueError(f"measured joint state must have shape ({self._dim},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"measured joint state must be finite, got {q}")
        if not math.isfinite(t):
            raise ValueError(f"measured stamp must be finite, got {t}")
        self._measured = q.copy()
        self._t_measured = t

    def submit_chunk(self, chunk: ActionChunk) -> SubmitResult:
        """Accept a joint-space chunk into the plan or refuse it with a reason."""
        if self._watchdog.state == ExecutorState.ESTOPPED:
            return SubmitResult(False, "e-stop latched: reset() first", 0)
        if self._measured is None:
            return SubmitResult(False, "no joint state received yet", 0)
        if chunk.dim != self._dim:
            return SubmitResult(
                False, f"chunk has {chunk.dim} dims, executor drives {self._dim}", 0
            )
        now = self._clock()
        if chunk.stamp > now + self.config.max_clock_skew:
            return SubmitResult(
                False, f"chunk stamp is {chunk.stamp - now:.3f} s in the future: clocks disagree", 0
            )
        verdict = self._safety.validate_chunk(chunk.actions)
        if not verdict.ok:
            return SubmitResult(False, f"invalid chunk: {verdict.reason}", 0)
        clipped = ActionChunk(chunk.stamp, chunk.dt, self._safety.clip_to_limits(chunk.actions),
                              chunk.execute_steps, chunk.chunk_id)
        kept = self._scheduler.add_chunk(clipped, now + self.config.min_lead)
        if kept == 0:
            late = now - chunk.waypoint_times()[-1]
            return SubmitResult(
                False, f"stale chunk: its last executable step ended {late:.3f} s ago", 0
            )
        if self._watchdog.chunk_accepted(now):
            self._safety.start_ramp()
        if self._t_cmd is not None:
            self._rebuild(self._t_cmd)
        return SubmitResult(True, "", kept)

    def estop(self, reason: str = "e-stop input") -> None:
        """Latch a hold: brake to a stop and refuse chunks until reset()."""
        self._watchdog.estop(reason)
        self._drop_plan()

    def reset(self) -> None:
        """Clear the e-stop (and any plan); motion resumes with the next chunk, ramping in."""
        self._watchdog.reset()
        self._drop_plan()

    def restart_clock(self, reason: str) -> None:
        """Time went backwards (simulator reset, looping bag): every time kept lies in the
        future, so start afresh as at start-up - no plan, no joint state; commands resume at rest
        from the next joint state and move again only with a new chunk.  An e-stop stays."""
        self._watchdog.restart(reason)
        self._drop_plan()
        self._measured, self._t_measured = None, -math.inf
        self._t_cmd, self._last = None, None
        self._cmd_vel = np.zeros(self._dim)
        self._cmd_acc = np.zeros(self._dim)

    def _drop_plan(self) -> None:
        self._scheduler.clear()
        self._trajectory = None

    def _rebuild(self, t0: float) -> None:
        """Trajectory from the commanded state at t0 through the plan's remaining waypoints."""
        plan = self._scheduler.plan(t0 + self.config.min_lead)
        if plan is None or plan.empty:
            self._trajectory = None
            return
        self._trajectory = build_trajectory(
            self.config.interpolation, t0, self._cmd_pos, self._cmd_vel, self._cmd_acc,
            plan.times, plan.positions,
        )

    # ---------------------------------------------------------------- control tick

    def tick(self, t: float) -> Command:
        """The command for time t (call at the control rate with increasing t)."""
        if not math.isfinite(t):
            raise ValueError(f"tick time must be finite, got {t}")
        if self._t_cmd is None:
            return self._first_tick(t)
        dt = t - self._t_cmd
        if dt <= 0.0:
            return self._last  # time did not advance: repeat the last command
        measured_fresh = t - self._t_measured <= self.config.measured_timeout
        state = self._watchdog.update(t, self.plan_end, self._t_measured,
                                      self._safety.ramp_scale >= 1.0)
        if state in FOLLOWING_STATES:
            target, target_velocity, _ = self._trajectory.sample(t)
        else:
            if self._trajectory is not None:
                self._drop_plan()  # abandoned: a new chunk starts afresh from where the arm stops
            target, target_velocity = brake_step(
                self._cmd_pos, self._cmd_vel, self.config.limits.max_acceleration, dt
            )
        safe = self._safety.filter(self._cmd_pos, self._cmd_vel, target,
                                   self._measured if measured_fresh else None, dt, target_velocity)
        self._t_cmd = t
        self._cmd_pos, self._cmd_vel = safe.position, safe.velocity
        self._cmd_acc = safe.acceleration
        return self._emit(t, safe.limited)

    def _first_tick(self, t: float) -> Command:
        """Start commanding from the measured state (clipped into the limits), at rest."""
        if self._measured is None:
            return Command(t, None, None, None, self._watchdog.state, "no joint state yet", False)
        limits = self.config.limits
        self._cmd_pos = np.clip(self._measured, limits.lower, limits.upper)
        self._t_cmd = t
        self._rebuild(t)
        return self._emit(t, False)

    def _emit(self, t: float, limited: bool) -> Command:
        self._last = Command(
            t, self._cmd_pos.copy(), self._cmd_vel.copy(), self._cmd_acc.copy(),
            self._watchdog.state, self._watchdog.reason, limited,
        )
        return self._last
