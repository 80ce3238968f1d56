"""Conversions between ROS ``builtin_interfaces`` times and the float seconds the control core uses.

Integer nanoseconds are the exact form; float seconds are what the plain-NumPy core works in.  A
float64 resolves about 0.24 us at present-day epoch times, so for exact stamp arithmetic use the
nanosecond helpers.  Float seconds convert to the *nearest* nanosecond (0.3 s is 300000000 ns, not
299999999 as truncation would give).
"""

from __future__ import annotations

import math
from typing import TypeAlias

from builtin_interfaces.msg import Duration, Time

NS_PER_S = 1_000_000_000
_MAX_SEC = 2**31 - 1  # builtin_interfaces sec is int32

StampLike: TypeAlias = Time | float
"""A ROS time message, or float seconds on the same clock."""


def stamp_to_nanoseconds(stamp: Time) -> int:
    """Exact integer nanoseconds of a ``builtin_interfaces/Time`` (or anything with sec/nanosec)."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def _seconds_and_nanoseconds(nanoseconds: int, what: str) -> tuple[int, int]:
    """(sec, nanosec) of non-negative integer nanoseconds, within a ROS time's range."""
    sec, nanosec = divmod(int(nanoseconds), NS_PER_S)
    if not 0 <= sec <= _MAX_SEC:
        raise ValueError(f"{what} {nanoseconds} ns is outside the range of a ROS {what} (0 to {_MAX_SEC} s)")
    return sec, nanosec


def nanoseconds_to_stamp(nanoseconds: int) -> Time:
    """A ``builtin_interfaces/Time`` for non-negative integer nanoseconds."""
    sec, nanosec = _seconds_and_nanoseconds(nanoseconds, "stamp")
    return Time(sec=sec, nanosec=nanosec)


def stamp_to_seconds(stamp: Time) -> float:
    """Float seconds of a stamp (nearest float to the exact value)."""
    return stamp_to_nanoseconds(stamp) / NS_PER_S


def seconds_to_nanoseconds(seconds: float) -> int:
    """Nearest integer nanoseconds to float seconds; rejects NaN, inf and negative times."""
    if not math.isfinite(seconds) or seconds < 0.0:
        raise ValueError(f"time must be finite and >= 0 s, got {seconds}")
    whole = math.floor(seconds)
    # seconds - whole is exact in binary floating point; scaling only the fraction keeps the
    # nanoseconds of large (epoch) times from being lost to rounding.
    return whole * NS_PER_S + round((seconds - whole) * NS_PER_S)


def seconds_to_stamp(seconds: float) -> Time:
    """A ``builtin_interfaces/Time`` for float seconds, rounded to the nearest nanosecond."""
    return nanoseconds_to_stamp(seconds_to_nanoseconds(seconds))


def seconds_to_duration(seconds: float) -> Duration:
    """A non-negative ``builtin_interfaces/Duration`` (e.g. a trajectory's time_from_start)."""
    return nanoseconds_to_duration(seconds_to_nanoseconds(seconds))


def nanoseconds_to_duration(nanoseconds: int) -> Duration:
    """A ``builtin_interfaces/Duration`` for non-negative integer nanoseconds."""
    sec, nanosec = _seconds_and_nanoseconds(nanoseconds, "duration")
    return Duration(sec=sec, nanosec=nanosec)


def to_stamp(stamp: StampLike) -> Time:
    """A fresh ``Time`` from a ``Time`` or float seconds, so messages never share one object."""
    if isinstance(stamp, Time):
        return Time(sec=stamp.sec, nanosec=stamp.nanosec)
    return seconds_to_stamp(float(stamp))
