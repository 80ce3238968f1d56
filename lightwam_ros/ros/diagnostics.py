"""``diagnostic_msgs`` status messages from plain values, for telemetry on /diagnostics.

``DiagnosticStatus.level`` is a ROS ``byte``: rclpy accepts a Python int there but serializes it
wrongly (level 2 arrives as b'0'), so levels are always stored as one-byte ``bytes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from lightwam_ros.ros.stamps import StampLike, to_stamp

LEVELS = {"OK": 0, "WARN": 1, "ERROR": 2, "STALE": 3}

DiagnosticValue = float | int | str | bool


def format_value(value: DiagnosticValue) -> str:
    """Compact text for a KeyValue: 6 significant digits for floats, integers exact."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    value = float(value)
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def _level_byte(level: int | bytes) -> bytes:
    number = level[0] if isinstance(level, bytes) and len(level) == 1 else level
    if not isinstance(number, int) or number not in LEVELS.values():
        raise ValueError(
            f"diagnostic level must be one of {LEVELS} (or DiagnosticStatus.OK ... STALE), got {level!r}"
        )
    return bytes([number])


def make_diagnostic_status(
    name: str, level: int | bytes, message: str, values: Mapping[str, DiagnosticValue], hardware_id: str = ""
) -> DiagnosticStatus:
    """A DiagnosticStatus with one KeyValue per entry of ``values``, in the mapping's order."""
    return DiagnosticStatus(
        name=name,
        level=_level_byte(level),
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=str(key), value=format_value(value)) for key, value in values.items()],
    )


def make_diagnostic_array(statuses: Iterable[DiagnosticStatus], stamp: StampLike) -> DiagnosticArray:
    """The DiagnosticArray published on /diagnostics."""
    msg = DiagnosticArray(status=list(statuses))
    msg.header.stamp = to_stamp(stamp)
    return msg
