"""Safety filter: caps hold under a random fuzz, whole-chunk rejection, ramp-in, deviation."""

import numpy as np
import pytest

from lightwam_ros.control.safety import JointSafetyLimits, SafetyFilter

LOWER = np.array([-1.0, -2.0, 0.0])
UPPER = np.array([1.0, 0.5, 0.04])
VMAX = np.array([2.0, 1.0, 0.1])
AMAX = np.array([10.0, 5.0, 1.0])
TOL = 1e-9


def limits(**overrides) -> JointSafetyLimits:
    values = dict(
        lower=LOWER,
        upper=UPPER,
        max_velocity=VMAX,
        max_acceleration=AMAX,
        max_deviation=[0.3, 0.3, 0.02],
        max_jump=[0.2, 0.2, 0.04],
        limit_margin=[0.05, 0.05, 0.002],
        ramp_time=0.5,
    )
    values.update(overrides)
    return JointSafetyLimits(**values)


def test_caps_are_never_exceeded_under_a_random_target_fuzz():
    rng = np.random.default_rng(1234)
    safety = SafetyFilter(limits())
    safety.start_ramp()
    pos, vel = np.array([0.0, -0.5, 0.02]), np.zeros(3)
    measured = pos.copy()
    saw = {"limited": 0, "at_limit": 0}
    for tick in range(4000):
        dt = rng.uniform(0.001, 0.004)
        if tick % 50 == 0:  # a new wild target now and then, sometimes far outside the limits
            target = rng.uniform(LOWER - 1.0, UPPER + 1.0)
            if rng.random() < 0.1:
                target[rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
        jitter = rng.normal(0.0, 0.002, 3)  # the target wanders between jumps too
        target_velocity = rng.normal(0.0, 1.0, 3) if rng.random() < 0.5 else None
        measured = pos + rng.normal(0.0, 0.05, 3)  # a lagging, noisy arm
        if rng.random() < 0.05:
            measured[rng.integers(3)] = np.nan
        out = safety.filter(pos, vel, target + jitter, measured, dt, target_velocity)
        assert np.all(np.isfinite(out.position)) and np.all(np.isfinite(out.velocity))
        assert np.all(out.position >= LOWER - TOL) and np.all(out.position <= UPPER + TOL)
        assert np.all(np.abs(out.velocity) <= VMAX + TOL)
        assert np.all(np.abs(out.acceleration) <= AMAX + 1e-6)
        np.testing.assert_allclose(out.velocity, (out.position - pos) / dt, rtol=0, atol=1e-9)
        saw["limited"] += out.limited
        margin = np.minimum(UPPER - out.position, out.position - LOWER)
        saw["at_limit"] += bool(np.any(margin < 1e-3))
        pos, vel = out.position, out.velocity
    assert saw["limited"] > 1000 and saw["at_limit"] > 50  # the fuzz exercised the limits


def test_braking_stops_at_a_position_limit_without_exceeding_the_acceleration_cap():
    safety = SafetyFilter(limits())
    pos, vel = np.array([0.0, 0.0, 0.0]), np.array([2.0, 0.0, 0.0])  # full speed toward +1
    for _ in range(1000):
        out = safety.filter(pos, vel, np.array([5.0, 0.0, 0.0]), None, 0.002)
        assert out.position[0] <= UPPER[0] and abs(out.acceleration[0]) <= AMAX[0] + 1e-6
        pos, vel = out.position, out.velocity
    assert pos[0] == pytest.approx(UPPER[0], abs=1e-3) and vel[0] == pytest.approx(0.0, abs=1e-9)


def test_tracking_a_feasible_target_is_not_altered():
    safety = SafetyFilter(limits())
    dt = 0.002
    t = np.arange(0.0, 1.0, dt)
    path = 0.3 * np.sin(np.outer(t, [2.0, 1.5, 0.0])) + np.array([0.0, -0.5, 0.02])
    rate = 0.3 * np.cos(np.outer(t, [2.0, 1.5, 0.0])) * np.array([2.0, 1.5, 0.0])
    pos, vel = path[0], rate[0]
    for k in range(1, len(t)):
        out = safety.filter(pos, vel, path[k], path[k], dt, rate[k])
        assert not out.limited
        np.testing.assert_allclose(out.position, path[k], atol=1e-12)
        pos, vel = out.position, out.velocity


def test_catching_up_after_a_stall_does_not_overshoot():
    safety = SafetyFilter(limits())
    pos, vel = np.zeros(3), np.zeros(3)
    goal = np.array([0.8, 0.0, 0.0])
    trace = []
    for _ in range(2000):
        out = safety.filter(pos, vel, goal, None, 0.002)
        pos, vel = out.position, out.velocity
        trace.append(pos[0])
    assert max(trace) <= goal[0] + 1e-4
    assert trace[-1] == pytest.approx(goal[0], abs=1e-6)


def test_command_stays_near_the_measured_state():
    safety = SafetyFilter(limits())
    measured = np.array([0.1, -0.5, 0.02])
    pos, vel = measured.copy(), np.zeros(3)
    for _ in range(2000):
        out = safety.filter(pos, vel, np.array([0.9, 0.4, 0.04]), measured, 0.002)
        pos, vel = out.position, out.velocity
    np.testing.assert_allclose(pos, [0.4, -0.2, 0.04], atol=1e-6)  # measured + max_deviation
    assert np.all(np.abs(pos - measured) <= np.array([0.3, 0.3, 0.02]) + 1e-9)


def test_ramp_in_scales_the_velocity_cap_from_zero_to_one():
    safety = SafetyFilter(limits(max_acceleration=[1e4, 1e4, 1e4], ramp_time=0.5))
    pos, vel = np.array([-0.9, -1.9, 0.0]), np.zeros(3)
    far = np.array([0.9, 0.4, 0.04])
    dt = 0.002
    safety.start_ramp()
    assert safety.ramp_scale == 0.0
    for k in range(1, 401):
        out = safety.filter(pos, vel, far, None, dt)
        elapsed = k * dt
        cap = VMAX * min(1.0, elapsed / 0.5)
        assert np.all(np.abs(out.velocity) <= cap + 1e-9)
        if k in (50, 125, 200):  # well inside the ramp the cap is what limits the motion
            np.testing.assert_allclose(out.velocity[:2], cap[:2], rtol=1e-6)
        pos, vel = out.position, out.velocity
    assert safety.ramp_scale == 1.0


@pytest.mark.parametrize(
    "row, value, reason",
    [
        (2, -2.06, "step 2, joint 1: -2.06 outside [-2, 0.5] by more than the margin 0.05"),
        (2, 0.6, "step 2, joint 1: 0.6 outside [-2, 0.5] by more than the margin 0.05"),
    ],
)
def test_whole_chunk_is_rejected_with_a_reason(row, value, reason):
    safety = SafetyFilter(limits())
    chunk = np.tile([0.0, 0.0, 0.02], (8, 1))
    chunk[row, 1] = value
    verdict = safety.validate_chunk(chunk)
    assert not verdict.ok and verdict.reason == reason


def test_jumps_and_margins():
    safety = SafetyFilter(limits())
    chunk = np.tile([0.0, 0.0, 0.02], (8, 1))
    chunk[:, 0] = 0.1 * np.arange(8) - 0.3  # steps of 0.1 < 0.2
    assert safety.validate_chunk(chunk).ok
    jumpy = chunk.copy()
    jumpy[4:, 0] += 0.15  # a 0.25 step between rows 3 and 4
    verdict = safety.validate_chunk(jumpy)
    assert not verdict.ok and "between steps 3 and 4 at joint 0" in verdict.reason
    inside_margin = chunk.copy()
    inside_margin[:, 1] = np.linspace(0.2, 0.54, 8)
    assert safety.validate_chunk(inside_margin).ok
    assert safety.clip_to_limits(inside_margin)[7, 1] == 0.5
    assert "shape" in safety.validate_chunk(chunk[:, :2]).reason


def test_bad_limits_and_inputs_raise():
    with pytest.raises(ValueError, match="lower < upper"):
        limits(upper=[1.0, -3.0, 0.04])
    with pytest.raises(ValueError, match="max_velocity"):
        limits(max_velocity=[1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="shape"):
        limits(max_deviation=[0.1, 0.1])
    safety = SafetyFilter(limits())
    with pytest.raises(ValueError, match="previous command must be finite"):
        safety.filter(np.array([np.nan, 0, 0]), np.zeros(3), np.zeros(3), None, 0.002)
    with pytest.raises(ValueError, match="dt"):
        safety.filter(np.zeros(3), np.zeros(3), np.zeros(3), None, 0.0)
