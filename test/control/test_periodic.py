"""The control loop keeps absolute deadlines: no drift, a late tick does not shift the grid."""

import itertools
import threading
import time

import pytest

from lightwam_ros.control.periodic import PeriodicLoop

PERIOD_NS = 5_000_000  # 200 Hz: coarse enough for a busy 2-core machine


def run_loop(step, seconds: float) -> PeriodicLoop:
    loop = PeriodicLoop(PERIOD_NS, step, "test loop")
    loop.start()
    time.sleep(seconds)
    loop.stop()
    return loop


def test_ticks_fall_on_the_grid_of_the_first_due_time():
    times = []
    run_loop(lambda: times.append(time.monotonic_ns()), 0.5)
    assert 80 <= len(times) <= 101
    # Tick k is due at start + k * period: its lateness does not grow over the run.
    lateness = [(t - times[0]) % PERIOD_NS for t in times]
    late = sorted(min(x, PERIOD_NS - x) for x in lateness)
    assert late[len(late) // 2] < PERIOD_NS / 4


def test_a_slow_tick_skips_due_times_instead_of_bunching_ticks():
    times = []

    def step():
        times.append(time.monotonic_ns())
        if len(times) == 10:
            time.sleep(4.2 * PERIOD_NS * 1e-9)  # about four due times pass meanwhile

    loop = run_loop(step, 0.3)
    assert loop.skipped >= 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps[10:]) > PERIOD_NS / 4  # no burst of catch-up ticks after the slow one
    offset = (times[11] - times[0]) % PERIOD_NS  # the next tick is back on the grid
    assert min(offset, PERIOD_NS - offset) < PERIOD_NS / 3


def test_an_error_in_a_step_ends_the_loop_and_is_raised_by_stop():
    calls = threading.Event()

    def step():
        calls.set()
        raise RuntimeError("boom")

    loop = PeriodicLoop(PERIOD_NS, step, "failing loop")
    loop.start()
    assert calls.wait(2.0)
    with pytest.raises(RuntimeError, match="boom"):
        loop.stop()


def test_a_period_must_be_positive():
    with pytest.raises(ValueError, match="period_ns must be > 0"):
        PeriodicLoop(0, lambda: None, "bad")
