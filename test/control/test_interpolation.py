"""Interpolation to the control rate: start state matched, waypoints hit, continuity per kind."""

import numpy as np
import pytest

from lightwam_ros.control.interpolation import INTERPOLATION_KINDS, build_trajectory

RNG_SEED = 7
EPS = 1e-6


def random_problem(n: int = 8, dim: int = 3, seed: int = RNG_SEED):
    rng = np.random.default_rng(seed)
    times = 0.013 + 0.05 * np.arange(n) + rng.uniform(-0.01, 0.01, n) * (np.arange(n) > 0)
    waypoints = np.cumsum(rng.normal(0.0, 0.05, (n, dim)), axis=0)
    p0, v0, a0 = rng.normal(0, 0.05, dim), rng.normal(0, 0.5, dim), rng.normal(0, 5.0, dim)
    return p0, v0, a0, times, waypoints


def state(trajectory, t):
    return [x.copy() for x in trajectory.sample(t)]


def one_sided(trajectory, t, side):
    """Limit of (position, velocity, acceleration) at t from one side (side = -1 or +1).

    Extrapolated linearly from two samples on that side, so a smooth trajectory gives errors of
    order EPS^2 while a real jump stays visible.
    """
    near, far = state(trajectory, t + side * EPS), state(trajectory, t + 2 * side * EPS)
    return [2.0 * n - f for n, f in zip(near, far, strict=True)]


def jumps(left_trajectory, right_trajectory, t):
    """|left limit - right limit| of position, velocity and acceleration at t."""
    left, right = one_sided(left_trajectory, t, -1), one_sided(right_trajectory, t, 1)
    return [float(np.abs(a - b).max()) for a, b in zip(left, right, strict=True)]


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
def test_starts_from_the_commanded_state_and_hits_every_waypoint(kind):
    p0, v0, a0, times, waypoints = random_problem()
    trajectory = build_trajectory(kind, 0.0, p0, v0, a0, times, waypoints)
    p, v, a = state(trajectory, 0.0)
    np.testing.assert_allclose(p, p0, atol=1e-12)
    np.testing.assert_allclose(v, v0, atol=1e-9)
    if kind != "cubic":  # C2 kinds match the start acceleration too
        np.testing.assert_allclose(a, a0, atol=1e-7)
    for t, w in zip(times, waypoints, strict=True):
        np.testing.assert_allclose(trajectory.sample(t)[0], w, atol=1e-9)
    end = state(trajectory, times[-1] + 1.0)  # at rest at the last waypoint, and held there
    np.testing.assert_allclose(end[0], waypoints[-1], atol=1e-12)
    assert not end[1].any() and not end[2].any()
    np.testing.assert_allclose(state(trajectory, times[-1] - EPS)[1], 0.0, atol=1e-4)


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
def test_continuity_across_segment_boundaries(kind):
    p0, v0, a0, times, waypoints = random_problem()
    trajectory = build_trajectory(kind, 0.0, p0, v0, a0, times, waypoints)
    acc_jumps = []
    for t in times[:-1]:
        dp, dv, da = jumps(trajectory, trajectory, t)
        assert dp < 1e-5 and dv < 1e-3, (kind, t, dp, dv)
        acc_jumps.append(da)
    if kind == "cubic":
        assert max(acc_jumps) > 1.0  # C1 only: the check above is not vacuous for acceleration
    else:
        assert max(acc_jumps) < 1e-2


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
def test_replanning_from_the_sampled_state_is_continuous(kind):
    """A chunk boundary: the second plan starts from the first plan's state at the switch."""
    p0, v0, a0, times, waypoints = random_problem(seed=1)
    first = build_trajectory(kind, 0.0, p0, v0, a0, times, waypoints)
    switch = 0.5 * (times[2] + times[3])
    p, v, a = state(first, switch)
    _, _, _, _, other = random_problem(seed=2)
    second = build_trajectory(kind, switch, p, v, a, times[3:] + 0.02, other[3:])
    dp, dv, da = jumps(first, second, switch)
    assert dp < 1e-5 and dv < 1e-3
    if kind != "cubic":
        assert da < 1e-2


def test_minimum_jerk_single_segment_is_the_classic_rest_to_rest_profile():
    p0, p1, duration = np.array([0.2, -1.0]), np.array([1.0, 0.5]), 0.8
    zero = np.zeros(2)
    trajectory = build_trajectory("minimum_jerk", 1.0, p0, zero, zero, [1.0 + duration], [p1])
    for s in np.linspace(0.0, 1.0, 11):
        expected = p0 + (p1 - p0) * (10 * s**3 - 15 * s**4 + 6 * s**5)
        np.testing.assert_allclose(trajectory.sample(1.0 + s * duration)[0], expected, atol=1e-12)


def jerk_cost(trajectory, t0, t1, n=20000):
    ts = np.linspace(t0, t1, n)
    acc = np.array([trajectory.sample(t)[2].copy() for t in ts])
    jerk = np.diff(acc, axis=0) / (ts[1] - ts[0])
    return float((jerk**2).sum() * (ts[1] - ts[0]))


def test_minimum_jerk_beats_the_local_quintic_on_jerk_and_is_c4():
    p0, v0, a0, times, waypoints = random_problem(n=6, dim=2, seed=3)
    optimal = build_trajectory("minimum_jerk", 0.0, p0, v0, a0, times, waypoints)
    local = build_trajectory("quintic", 0.0, p0, v0, a0, times, waypoints)
    assert jerk_cost(optimal, 0.0, times[-1]) < jerk_cost(local, 0.0, times[-1])
    h = 1e-5  # jerk is continuous at the waypoints too (the optimum is C4)
    for t in times[:-1]:
        jerk_left = (optimal.sample(t - h)[2].copy() - optimal.sample(t - 2 * h)[2].copy()) / h
        jerk_right = (optimal.sample(t + 2 * h)[2].copy() - optimal.sample(t + h)[2].copy()) / h
        scale = 1.0 + np.abs(jerk_left).max()
        assert np.abs(jerk_left - jerk_right).max() / scale < 1e-2


def test_sampling_backwards_and_before_the_start():
    p0, v0, a0, times, waypoints = random_problem()
    trajectory = build_trajectory("quintic", 0.0, p0, v0, a0, times, waypoints)
    later = state(trajectory, times[5] - 0.01)
    earlier = state(trajectory, times[1] - 0.01)  # goes back: found by search, not by cache
    again = state(trajectory, times[5] - 0.01)
    np.testing.assert_allclose(later[0], again[0])
    assert not np.allclose(earlier[0], later[0])
    np.testing.assert_allclose(state(trajectory, -1.0)[0], p0)


def test_bad_input_is_refused():
    p0, v0, a0, times, waypoints = random_problem()
    with pytest.raises(ValueError, match="interpolation kind"):
        build_trajectory("linear", 0.0, p0, v0, a0, times, waypoints)
    with pytest.raises(ValueError, match="strictly increasing"):
        build_trajectory("cubic", 0.0, p0, v0, a0, times[::-1], waypoints)
    with pytest.raises(ValueError, match="after t0"):
        build_trajectory("cubic", times[0], p0, v0, a0, times, waypoints)
    with pytest.raises(ValueError, match="finite"):
        bad = waypoints.copy()
        bad[2, 1] = np.nan
        build_trajectory("quintic", 0.0, p0, v0, a0, times, bad)
    with pytest.raises(ValueError, match="start velocity"):
        build_trajectory("quintic", 0.0, p0, v0[:2], a0, times, waypoints)
