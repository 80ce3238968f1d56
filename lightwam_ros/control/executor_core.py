"""One object a ROS node drives: chunks in, joint commands out at the control rate.

``submit_chunk`` has the safety filter judge a joint-space chunk as a whole (the executor is the
only authority on limits: values within ``limit_margin`` past a limit are clipped, further ones
refuse the chunk), places it in time and merges it into the plan (``ChunkScheduler``), then
rebuilds the interpolated trajectory from the state the executor is commanding right now, so a
new chunk never makes the command jump.  ``tick`` samples that trajectory (or brakes, when the
watchdog says hold), passes the result through the safety filter and returns the command.
``planned_path`` is that trajectory sampled ahead: what the executor will command while no newer
chunk arrives, the path to show in RViz; ``lookahead`` copies the state to run the ticks
themselves ahead (``control.lookahead``), for an output that hands a controller the whole motion.
Everything per chunk is precomputed in ``submit_chunk``; a tick is one polynomial evaluation plus
the filter.

Times are integer nanoseconds on the stamps' clock; the trajectory is built in float seconds
relative to its own start (a local origin).  Delta-EEF chunks are converted to joint targets
first (``command_layout.CommandLayout``).  The object is not thread-safe: call it from one thread
(or one ROS callback group).
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
from lightwam_ros.control.lookahead import Lookahead, command_step
from lightwam_ros.control.safety import JointSafetyLimits, SafetyFilter
from lightwam_ros.control.scheduling import ChunkScheduler
from lightwam_ros.control.watchdog import FOLLOWING_STATES, ExecutorState, Watchdog
from lightwam_ros.policy.chunk import NS_PER_S, Chunk


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

    t_ns: int
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
        self._origin_ns = 0  # the trajectory's t = 0 [ns]
        self._measured: np.ndarray | None = None
        self._t_measured: float = -math.inf  # ns; -inf before the first joint state
        self._t_cmd: int | None = None
        self._min_lead_ns = round(config.min_lead * NS_PER_S)
        self._max_skew_ns = round(config.max_clock_skew * NS_PER_S)
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
    def plan_end_ns(self) -> int | None:
        """Time the current plan runs out (None with no plan): when to want the next chunk."""
        if self._trajectory is None:
            return None
        return self._origin_ns + round(self._trajectory.end_time * NS_PER_S)

    def _clock(self) -> float:
        return self._t_cmd if self._t_cmd is not None else self._t_measured

    def planned_path(self, period_ns: int) -> tuple[np.ndarray, np.ndarray]:
        """What the executor will command from its last tick to the end of the plan while no
        newer chunk arrives: (times [ns], joint positions (n, D)) every ``period_ns``, the plan's
        end included.  Empty without a plan (the command then holds where it is)."""
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        end, trajectory = self.plan_end_ns, self._trajectory
        if (
            end is None
            or trajectory is None
            or self._t_cmd is None
            or self._watchdog.state not in FOLLOWING_STATES
        ):
            return np.zeros(0, dtype=np.int64), np.zeros((0, self._dim))
        times = np.append(np.arange(self._t_cmd, end, period_ns, dtype=np.int64), end)
        positions = np.array([trajectory.sample((t - self._origin_ns) / NS_PER_S)[0].copy() for t in times])
        return times, np.clip(positions, self.config.limits.lower, self.config.limits.upper)

    def lookahead(self) -> Lookahead | None:
        """A copy of the commanding state at the last tick, to run the ticks ahead on (see
        ``control.lookahead``) outside the lock; None before the first command."""
        if self._t_cmd is None:
            return None
        following = self._watchdog.state in FOLLOWING_STATES
        return Lookahead(
            self._safety,
            self._trajectory if following else None,
            self._origin_ns,
            self._t_cmd,
            self._cmd_pos,
            self._cmd_vel,
        )

    # ---------------------------------------------------------------- inputs

    def update_measured(self, q: np.ndarray, t_ns: int) -> None:
        """Latest joint state stamped ``t_ns``; a non-finite one is refused (the previous one
        ages out instead)."""
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self._dim,):
            raise ValueError(f"measured joint state must have shape ({self._dim},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"measured joint state must be finite, got {q}")
        self._measured = q.copy()
        self._t_measured = int(t_ns)

    def submit_chunk(self, chunk: Chunk) -> SubmitResult:
        """Accept a joint-space chunk (columns in the commanded order) into the plan or refuse it
        with a reason."""
        if self._watchdog.state == ExecutorState.ESTOPPED:
            return SubmitResult(False, "e-stop latched: reset() first", 0)
        if self._measured is None:
            return SubmitResult(False, "no joint state received yet", 0)
        now = int(self._clock())  # finite: a joint state has arrived
        if chunk.stamp_ns > now + self._max_skew_ns:
            ahead = (chunk.stamp_ns - now) / NS_PER_S
            return SubmitResult(False, f"chunk stamp is {ahead:.3f} s in the future: clocks disagree", 0)
        verdict = self._safety.validate_chunk(chunk.executable())
        if not verdict.ok:
            return SubmitResult(False, f"invalid chunk: {verdict.reason}", 0)
        clipped = chunk.with_actions(
            self._safety.clip_to_limits(chunk.executable()), chunk.action_names, chunk.action_mode
        )
        kept = self._scheduler.add_chunk(clipped, now + self._min_lead_ns)
        if kept == 0:
            late = (now - chunk.waypoint_times_ns()[-1]) / NS_PER_S
            return SubmitResult(False, f"stale chunk: its last executable step ended {late:.3f} s ago", 0)
        if self._watchdog.chunk_accepted(now):
            self._safety.start_ramp()
        if self._t_cmd is not None:
            self._rebuild(self._t_cmd)
        return SubmitResult(True, "", kept)

    def estop(self, reason: str = "e-stop input") -> None:
        """Latch a hold: brake to a stop and refuse chunks until reset()."""
        self._watchdog.estop(reason)
        self._drop_plan()

    def hold(self, reason: str) -> None:
        """Brake to rest from the current command and stay there until a new chunk (a latched
        e-stop stays latched)."""
        self._watchdog.hold(reason)
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

    def _rebuild(self, t0_ns: int) -> None:
        """Trajectory from the commanded state at t0_ns through the plan's remaining waypoints,
        in float seconds from t0_ns (its local origin)."""
        plan = self._scheduler.plan(t0_ns + self._min_lead_ns)
        if plan is None or plan.empty:
            self._trajectory = None
            return
        self._origin_ns = t0_ns
        self._trajectory = build_trajectory(
            self.config.interpolation,
            0.0,
            self._cmd_pos,
            self._cmd_vel,
            self._cmd_acc,
            (plan.times_ns - t0_ns) / NS_PER_S,
            plan.positions,
        )

    # ---------------------------------------------------------------- control tick

    def tick(self, t_ns: int) -> Command:
        """The command for time t_ns (call at the control rate with increasing t_ns)."""
        t_ns = int(t_ns)
        if self._t_cmd is None:
            return self._first_tick(t_ns)
        if t_ns <= self._t_cmd and self._last is not None:
            return self._last  # time did not advance: repeat the last command
        dt = (t_ns - self._t_cmd) / NS_PER_S
        measured_fresh = (t_ns - self._t_measured) / NS_PER_S <= self.config.measured_timeout
        state = self._watchdog.update(
            t_ns, self.plan_end_ns, self._t_measured, self._safety.ramp_scale >= 1.0
        )
        if state not in FOLLOWING_STATES and self._trajectory is not None:
            self._drop_plan()  # abandoned: a new chunk starts afresh from where the arm stops
        safe = command_step(
            self._safety,
            self._trajectory,
            self._origin_ns,
            self._cmd_pos,
            self._cmd_vel,
            t_ns,
            dt,
            self._measured if measured_fresh else None,
        )
        self._t_cmd = t_ns
        self._cmd_pos, self._cmd_vel = safe.position, safe.velocity
        self._cmd_acc = safe.acceleration
        return self._emit(t_ns, safe.limited)

    def _first_tick(self, t_ns: int) -> Command:
        """Start commanding from the measured state (clipped into the limits), at rest."""
        if self._measured is None:
            return Command(t_ns, None, None, None, self._watchdog.state, "no joint state yet", False)
        limits = self.config.limits
        self._cmd_pos = np.clip(self._measured, limits.lower, limits.upper)
        self._t_cmd = t_ns
        self._rebuild(t_ns)
        return self._emit(t_ns, False)

    def _emit(self, t_ns: int, limited: bool) -> Command:
        self._last = Command(
            t_ns,
            self._cmd_pos.copy(),
            self._cmd_vel.copy(),
            self._cmd_acc.copy(),
            self._watchdog.state,
            self._watchdog.reason,
            limited,
        )
        return self._last
