"""ROS stamps <-> float seconds / integer nanoseconds."""

from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("builtin_interfaces.msg")
from builtin_interfaces.msg import Time

from lightwam_ros.ros.stamps import (
    nanoseconds_to_stamp,
    seconds_to_duration,
    seconds_to_nanoseconds,
    seconds_to_stamp,
    stamp_to_nanoseconds,
    stamp_to_seconds,
    to_stamp,
)


def as_pair(stamp):
    return stamp.sec, stamp.nanosec


def test_nanoseconds_are_exact_at_the_ends_of_the_range():
    latest = Time(sec=2**31 - 1, nanosec=999_999_999)
    assert stamp_to_nanoseconds(latest) == (2**31 - 1) * 10**9 + 999_999_999
    assert as_pair(nanoseconds_to_stamp(stamp_to_nanoseconds(latest))) == (2**31 - 1, 999_999_999)
    assert as_pair(nanoseconds_to_stamp(1)) == (0, 1)


def test_seconds_round_to_the_nearest_nanosecond():
    assert as_pair(seconds_to_stamp(0.3)) == (0, 300_000_000)  # truncation would give 299999999
    assert as_pair(seconds_to_stamp(1.9999999999)) == (2, 0)  # rounding carries into sec
    assert as_pair(seconds_to_stamp(12.0)) == (12, 0)


def test_epoch_seconds_convert_to_the_nearest_nanosecond_of_the_float():
    for t in (1_700_000_000.123456789, 1_712_345_678.999999, 1_600_000_000.5):
        exact = round(Fraction(t) * 10**9)  # the float's exact value, independently rounded
        assert seconds_to_nanoseconds(t) == exact
        assert stamp_to_nanoseconds(seconds_to_stamp(t)) == exact


def test_stamps_round_trip_through_float_seconds():
    rng = np.random.default_rng(0)
    # Below ~4e6 s (sim time) a float resolves nanoseconds, so the round trip is exact.
    for sec, nanosec in zip(rng.integers(0, 4_000_000, 200), rng.integers(0, 10**9, 200), strict=True):
        stamp = Time(sec=int(sec), nanosec=int(nanosec))
        assert as_pair(seconds_to_stamp(stamp_to_seconds(stamp))) == (sec, nanosec)
    # At epoch times a float resolves ~0.24 us: the round trip is exact float -> stamp -> float.
    for t in 1_700_000_000 + rng.random(50) * 1e6:
        assert stamp_to_seconds(seconds_to_stamp(float(t))) == float(t)


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf"), 2.0**31])
def test_unrepresentable_times_are_rejected(bad):
    with pytest.raises(ValueError, match=r"time|stamp"):
        seconds_to_stamp(bad)


def test_durations_and_fresh_stamp_copies():
    duration = seconds_to_duration(7 * 0.04)
    assert (duration.sec, duration.nanosec) == (0, 280_000_000)
    original = Time(sec=5, nanosec=6)
    copy = to_stamp(original)
    assert copy is not original and as_pair(copy) == (5, 6)
    assert as_pair(to_stamp(5.000000006)) == (5, 6)
