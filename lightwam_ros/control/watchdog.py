"""Executor states and the stop behaviour: hold the last safe command, never jump to zeros.

``Watchdog`` is the state machine (it decides *whether* to follow the plan); ``brake_step`` is the
motion used while holding or e-stopped (it decides *how* to stop): all joints decelerate together
along the current direction of motion at the largest rate the acceleration caps allow, so the arm
stops smoothly a short distance past the last safe command and stays there.

States:
- WAITING: no chunk accepted since start or reset; the executor holds.
- RAMP_IN: following the plan with the safety filter's velocity ramp still growing.
- RUNNING: following the plan.
- HOLDING: chunks stopped arriving, the plan ran out or the joint state went stale; a new chunk
  resumes RUNNING.
- ESTOPPED: latched by ``estop``; chunks are refused until ``reset``.

Times are integer nanoseconds (the stamps' clock); the timeouts are given in seconds.
"""

from __future__ import annotations

import enum
import math

import numpy as np

from lightwam_ros.policy.chunk import NS_PER_S


class ExecutorState(enum.IntEnum):
    WAITING = 0
    RAMP_IN = 1
    RUNNING = 2
    HOLDING = 3
    ESTOPPED = 4


FOLLOWING_STATES = (ExecutorState.RAMP_IN, ExecutorState.RUNNING)


class Watchdog:
    """Decides each tick whether the plan may be followed, and says why not when it may not."""

    def __init__(self, chunk_timeout: float, measured_timeout: float) -> None:
        for name, value in (("chunk_timeout", chunk_timeout), ("measured_timeout", measured_timeout)):
            if not (value > 0.0):  # also refuses NaN
                raise ValueError(f"{name} must be > 0 (s), got {value}")
        self.chunk_timeout = chunk_timeout
        self.measured_timeout = measured_timeout
        self._chunk_timeout_ns = round(chunk_timeout * NS_PER_S)
        self._measured_timeout_ns = round(measured_timeout * NS_PER_S)
        self.state = ExecutorState.WAITING
        self.reason = "waiting for the first chunk"
        self._last_chunk_time = -math.inf

    def estop(self, reason: str) -> None:
        """Latch ESTOPPED until reset()."""
        self.state = ExecutorState.ESTOPPED
        self.reason = f"e-stop: {reason}"

    def hold(self, reason: str) -> None:
        """HOLDING until a new chunk (a latched e-stop stays latched)."""
        if self.state != ExecutorState.ESTOPPED:
            self._hold(reason)

    def reset(self) -> None:
        """Leave ESTOPPED (or any state) for WAITING: motion resumes only with a new chunk."""
        self._wait("reset: waiting for a new chunk")

    def restart(self, reason: str) -> None:
        """Time restarted (it jumped back): forget chunk times and wait for a new chunk.  A
        latched e-stop stays latched: only ``reset`` clears it."""
        if self.state == ExecutorState.ESTOPPED:
            self._last_chunk_time = -math.inf
        else:
            self._wait(f"{reason}: waiting for a new chunk")

    def _wait(self, reason: str) -> None:
        self.state = ExecutorState.WAITING
        self.reason = reason
        self._last_chunk_time = -math.inf

    def chunk_accepted(self, t_ns: int) -> bool:
        """Record a newly accepted chunk; True when this (re)starts control and needs a ramp-in."""
        if self.state == ExecutorState.ESTOPPED:
            raise RuntimeError("a chunk cannot be accepted while the e-stop is latched")
        self._last_chunk_time = t_ns
        if self.state == ExecutorState.WAITING:
            self.state = ExecutorState.RAMP_IN
            self.reason = "ramping in"
            return True
        if self.state == ExecutorState.HOLDING:
            self.state = ExecutorState.RUNNING
            self.reason = "resumed on a new chunk"
        return False

    def update(
        self, t_ns: int, plan_end_ns: int | None, measured_ns: float, ramp_done: bool
    ) -> ExecutorState:
        """State for the tick at t_ns (``measured_ns`` may be -inf: no joint state yet)."""
        if self.state not in FOLLOWING_STATES:
            return self.state
        silence = t_ns - self._last_chunk_time
        measured_age = t_ns - measured_ns
        if measured_age > self._measured_timeout_ns:
            self._hold(
                f"joint state is {measured_age / NS_PER_S:.3f} s old (limit {self.measured_timeout:.3f} s)"
            )
        elif silence > self._chunk_timeout_ns:
            self._hold(f"no chunk for {silence / NS_PER_S:.3f} s (timeout {self.chunk_timeout:.3f} s)")
        elif plan_end_ns is None or t_ns >= plan_end_ns:
            self._hold(
                "plan exhausted"
                if plan_end_ns is None
                else f"plan exhausted at t={plan_end_ns / NS_PER_S:.3f} s"
            )
        elif self.state == ExecutorState.RAMP_IN and ramp_done:
            self.state = ExecutorState.RUNNING
            self.reason = "running"
        return self.state

    def _hold(self, reason: str) -> None:
        self.state = ExecutorState.HOLDING
        self.reason = f"holding: {reason}"


def brake_step(
    position: np.ndarray, velocity: np.ndarray, max_acceleration: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """One tick of a coordinated stop: (next position, next velocity).

    The joint that needs longest to stop at its acceleration cap sets the stopping time T; every
    joint decelerates by v / T, so the velocity direction (and the joint-space path) is kept and
    all joints stop together without exceeding any cap.  ``position + velocity * dt`` matches the
    finite-difference velocity the executor reports.
    """
    stop_time = float(np.max(np.abs(velocity) / max_acceleration))
    if stop_time <= dt:
        return position.copy(), np.zeros_like(velocity)
    new_velocity = velocity * (1.0 - dt / stop_time)
    return position + new_velocity * dt, new_velocity
