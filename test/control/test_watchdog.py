"""Watchdog state machine and the coordinated braking used for holds and e-stops."""

import numpy as np
import pytest

from lightwam_ros.control.watchdog import ExecutorState, Watchdog, brake_step

AMAX = np.array([10.0, 5.0, 2.0])


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def test_brake_step_stops_all_joints_together_within_the_caps():
    pos, vel = np.array([0.1, 0.2, 0.3]), np.array([1.0, -1.5, 0.2])
    dt = 0.002
    direction = vel / np.linalg.norm(vel)
    slowest = np.max(np.abs(vel) / AMAX)  # the joint that needs longest: 0.3 s
    ticks = 0
    while vel.any():
        new_pos, new_vel = brake_step(pos, vel, AMAX, dt)
        assert np.all(np.abs(new_vel - vel) <= AMAX * dt + 1e-12)
        np.testing.assert_allclose(new_pos - pos, new_vel * dt, atol=1e-15)
        if new_vel.any():  # the direction of motion (the joint-space path) is kept
            np.testing.assert_allclose(new_vel / np.linalg.norm(new_vel), direction, atol=1e-12)
        pos, vel = new_pos, new_vel
        ticks += 1
    assert ticks * dt == pytest.approx(slowest, abs=2 * dt)
    stopped = brake_step(pos, vel, AMAX, dt)
    np.testing.assert_array_equal(stopped[0], pos)  # at rest: stays put, never jumps to zero


def test_state_machine_with_reasons():
    watchdog = Watchdog(chunk_timeout=0.3, measured_timeout=0.1)
    assert watchdog.state == ExecutorState.WAITING
    state = watchdog.update(0, plan_end_ns=ns(1.0), measured_ns=0, ramp_done=False)
    assert state == ExecutorState.WAITING

    assert watchdog.chunk_accepted(ns(0.0)) is True  # control starts: ramp in
    assert watchdog.update(ns(0.1), ns(1.0), ns(0.1), ramp_done=False) == ExecutorState.RAMP_IN
    assert watchdog.update(ns(0.2), ns(1.0), ns(0.2), ramp_done=True) == ExecutorState.RUNNING

    assert watchdog.update(ns(0.35), ns(1.0), ns(0.35), True) == ExecutorState.HOLDING  # 0.35 s silent
    assert "no chunk for 0.350 s (timeout 0.300 s)" in watchdog.reason
    assert watchdog.chunk_accepted(ns(0.4)) is False  # resumes without a new ramp
    assert watchdog.state == ExecutorState.RUNNING

    assert watchdog.update(ns(0.5), ns(0.45), ns(0.5), True) == ExecutorState.HOLDING
    assert "plan exhausted at t=0.450 s" in watchdog.reason
    watchdog.chunk_accepted(ns(0.5))
    assert watchdog.update(ns(0.5), None, ns(0.5), True) == ExecutorState.HOLDING  # no plan
    watchdog.chunk_accepted(ns(0.5))
    assert watchdog.update(ns(0.6), ns(1.0), ns(0.45), True) == ExecutorState.HOLDING
    assert "joint state is 0.150 s old" in watchdog.reason


def test_estop_latches_until_reset():
    watchdog = Watchdog(chunk_timeout=0.3, measured_timeout=0.1)
    watchdog.chunk_accepted(ns(0.0))
    watchdog.estop("button pressed")
    assert watchdog.state == ExecutorState.ESTOPPED and "button pressed" in watchdog.reason
    assert watchdog.update(ns(0.1), ns(1.0), ns(0.1), True) == ExecutorState.ESTOPPED
    with pytest.raises(RuntimeError, match="e-stop"):
        watchdog.chunk_accepted(ns(0.1))
    assert watchdog.state == ExecutorState.ESTOPPED
    watchdog.reset()
    assert watchdog.state == ExecutorState.WAITING
    assert watchdog.chunk_accepted(ns(0.2)) is True  # a fresh start ramps in again


def test_bad_timeouts_are_refused():
    with pytest.raises(ValueError, match="chunk_timeout"):
        Watchdog(chunk_timeout=0.0, measured_timeout=0.1)
    with pytest.raises(ValueError, match="measured_timeout"):
        Watchdog(chunk_timeout=0.1, measured_timeout=float("nan"))
