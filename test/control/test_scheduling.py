"""Chunk placement in time, boundary rules and the latency estimate."""

import math

import numpy as np
import pytest

from lightwam_ros.control.scheduling import ChunkScheduler, LatencyEstimator
from lightwam_ros.policy.chunk import Chunk

DT = 0.05


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def chunk(stamp: float, values: np.ndarray, execute_steps: int | None = None) -> Chunk:
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        values = values[:, None]
    names = [f"j{i}" for i in range(values.shape[1])]
    return Chunk(
        stamp_ns=ns(stamp),
        dt=DT,
        actions=values,
        action_names=names,
        execute_steps=execute_steps or len(values),
    )


def test_step_i_is_reached_at_the_end_of_its_interval():
    c = chunk(10.0, np.arange(32.0), execute_steps=4)
    np.testing.assert_array_equal(c.waypoint_times_ns(), [ns(10.05), ns(10.10), ns(10.15), ns(10.20)])
    np.testing.assert_array_equal(c.executable()[:, 0], [0, 1, 2, 3])


def test_steps_whose_time_has_passed_are_dropped():
    scheduler = ChunkScheduler("latest")
    # At 10.12, steps 0 (ends 10.05) and 1 (ends 10.10) are over; step 2 is in progress.
    kept = scheduler.add_chunk(chunk(10.0, np.arange(32.0), execute_steps=4), ns(10.12))
    assert kept == 2
    plan = scheduler.plan(ns(10.12))
    np.testing.assert_array_equal(plan.times_ns, [ns(10.15), ns(10.20)])
    np.testing.assert_array_equal(plan.positions[:, 0], [2, 3])  # execute_steps cuts at 4
    # Later, the plan itself keeps dropping passed waypoints.
    np.testing.assert_array_equal(scheduler.plan(ns(10.16)).positions[:, 0], [3])


def test_a_chunk_entirely_in_the_past_changes_nothing():
    scheduler = ChunkScheduler("latest")
    scheduler.add_chunk(chunk(1.0, np.zeros(10)), ns(1.0))
    before = scheduler.plan(ns(1.2))
    assert scheduler.add_chunk(chunk(0.0, np.ones(10)), ns(1.2)) == 0  # all ended by 0.5
    after = scheduler.plan(ns(1.2))
    np.testing.assert_array_equal(before.positions, after.positions)


def overlapping_pair():
    """A at stamp 0 and B at stamp 0.1, both 10 executable steps on the same 50 ms grid."""
    a = chunk(0.0, 1.0 + 0.1 * np.arange(10))
    b = chunk(0.1, 5.0 + 0.2 * np.arange(10))
    return a, b


def by_time(c: Chunk) -> dict[int, float]:
    """Executable values by waypoint time [ns]."""
    return {int(t): float(v) for t, v in zip(c.waypoint_times_ns(), c.executable()[:, 0], strict=True)}


def test_latest_wins():
    a, b = overlapping_pair()
    scheduler = ChunkScheduler("latest")
    scheduler.add_chunk(a, ns(0.07))
    scheduler.add_chunk(b, ns(0.12))
    plan = scheduler.plan(ns(0.12))
    expected = {t: v for t, v in by_time(b).items() if t > ns(0.12)}
    np.testing.assert_array_equal(plan.times_ns, list(expected))
    np.testing.assert_allclose(plan.positions[:, 0], list(expected.values()))


def test_blend_weights_grow_linearly_over_the_overlap():
    a, b = overlapping_pair()
    scheduler = ChunkScheduler("blend")
    scheduler.add_chunk(a, ns(0.07))
    scheduler.add_chunk(b, ns(0.12))
    plan = scheduler.plan(ns(0.12))

    old, new = by_time(a), by_time(b)
    future = [t for t in sorted(new) if t > ns(0.12)]
    overlap = [t for t in future if t in old]  # 0.15 ... 0.50: 8 waypoints
    assert len(overlap) == 8
    expected = []
    for t in future:
        if t in old:
            w = (overlap.index(t) + 1) / (len(overlap) + 1)
            expected.append(w * new[t] + (1 - w) * old[t])
        else:
            expected.append(new[t])
    np.testing.assert_array_equal(plan.times_ns, future)
    np.testing.assert_allclose(plan.positions[:, 0], expected)
    assert plan.positions[0, 0] == pytest.approx(old[ns(0.15)] + (new[ns(0.15)] - old[ns(0.15)]) / 9)


@pytest.mark.parametrize("k", [0.0, 0.5, -0.5])
def test_ensemble_uses_exponential_weights_oldest_first(k):
    chunks = [chunk(0.05 * n, 10.0 * n + np.arange(10.0)) for n in range(3)]
    arrivals = [0.06, 0.11, 0.16]
    scheduler = ChunkScheduler("ensemble", ensemble_k=k)
    for c, now in zip(chunks, arrivals, strict=True):
        scheduler.add_chunk(c, ns(now))
    plan = scheduler.plan(ns(0.16))

    predictions: dict[int, list[float]] = {}
    for c in chunks:  # oldest first
        for t, v in by_time(c).items():
            predictions.setdefault(t, []).append(v)
    future = sorted(t for t in by_time(chunks[-1]) if t > ns(0.16))
    expected = []
    for t in future:
        values = predictions[t]
        weights = [math.exp(-k * i) for i in range(len(values))]
        expected.append(sum(w * v for w, v in zip(weights, values, strict=True)) / sum(weights))
    np.testing.assert_array_equal(plan.times_ns, future)
    np.testing.assert_allclose(plan.positions[:, 0], expected)
    # The three chunks disagree by 10 per step of age, so the rule visibly changes the result.
    if k > 0:
        assert plan.positions[0, 0] < np.mean(predictions[future[0]])
    elif k < 0:
        assert plan.positions[0, 0] > np.mean(predictions[future[0]])


def test_blend_on_an_offset_grid_interpolates_the_old_plan():
    a = chunk(0.0, np.arange(10.0))  # value = 20 * (t - 0.05): linear in time
    b = chunk(0.02, np.full(10, 100.0))  # waypoints at 0.07, 0.12, ...
    scheduler = ChunkScheduler("blend")
    scheduler.add_chunk(a, ns(0.0))
    scheduler.add_chunk(b, ns(0.03))
    plan = scheduler.plan(ns(0.03))
    old_at = 20.0 * (plan.times_ns * 1e-9 - 0.05)
    overlap = plan.times_ns <= ns(0.5)
    m = int(overlap.sum())
    w = np.where(overlap, np.cumsum(overlap) / (m + 1), 1.0)
    np.testing.assert_allclose(plan.positions[:, 0], w * 100.0 + (1 - w) * old_at)


def test_bad_parameters_and_chunks_are_refused():
    with pytest.raises(ValueError, match="boundary rule"):
        ChunkScheduler("average")
    scheduler = ChunkScheduler()
    scheduler.add_chunk(chunk(0.0, np.zeros((4, 2))), 0)
    with pytest.raises(ValueError, match="3 action dims"):
        scheduler.add_chunk(chunk(0.0, np.zeros((4, 3))), 0)


def test_latency_estimate_excludes_warmup_and_resists_outliers():
    rng = np.random.default_rng(0)
    steady = rng.uniform(0.070, 0.080, 40)
    samples = [2.5, 0.9] + list(steady[:20]) + [0.4] + list(steady[20:])  # compile, cache, spike
    estimator = LatencyEstimator(warmup=2, window=50, percentile=90)
    assert estimator.expected_delay() is None and estimator.steps_elapsed(DT) == 0
    for s in samples:
        estimator.add(s)
    delay = estimator.expected_delay()
    assert 0.070 <= delay <= 0.080
    assert estimator.quantile(50) <= delay
    assert estimator.steps_elapsed(DT) == 1  # step 0 (ends at +50 ms) is over on arrival

    naive = LatencyEstimator(warmup=0, window=50, percentile=90)
    for s in samples[:12]:
        naive.add(s)
    assert naive.expected_delay() > 0.5  # counting compilation would inflate the delay

    window = LatencyEstimator(warmup=0, window=5, percentile=50)
    for s in [1.0] * 5 + [0.1] * 5:
        window.add(s)
    assert window.expected_delay() == pytest.approx(0.1)  # only recent samples count
    assert LatencyEstimator(warmup=0, percentile=50).steps_elapsed(DT) == 0
    with pytest.raises(ValueError):
        estimator.add(float("nan"))


def test_steps_elapsed_counts_steps_whose_interval_is_over():
    estimator = LatencyEstimator(warmup=0, percentile=50)
    estimator.add(0.12)
    assert estimator.steps_elapsed(DT) == 2
    estimator = LatencyEstimator(warmup=0, percentile=50)
    estimator.add(0.1)
    assert estimator.steps_elapsed(DT) == 2  # exactly at the end of step 1
