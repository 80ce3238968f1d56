"""DiagnosticStatus / DiagnosticArray from plain values."""

import pytest

pytest.importorskip("diagnostic_msgs.msg")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.serialization import deserialize_message, serialize_message

from lightwam_ros.ros.diagnostics import format_value, make_diagnostic_array, make_diagnostic_status


@pytest.mark.parametrize(
    "value, text",
    [
        (0.0123456789, "0.0123457"),
        (1234567.0, "1.23457e+06"),
        (2.0, "2"),
        (1e-9, "1e-09"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (12345678901, "12345678901"),
        (True, "true"),
        ("READY", "READY"),
    ],
)
def test_values_are_formatted_compactly(value, text):
    assert format_value(value) == text


def test_status_keeps_key_order_and_survives_serialization():
    values = {"latency_p50": 0.0421337, "queue_depth": 3, "state": "READY"}
    status = make_diagnostic_status("lightwam/policy", 1, "slow inference", values, hardware_id="gpu0")
    back = deserialize_message(serialize_message(status), DiagnosticStatus)
    assert back.level == DiagnosticStatus.WARN  # an int level would arrive corrupted
    assert (back.name, back.message) == ("lightwam/policy", "slow inference")
    assert back.hardware_id == "gpu0"
    assert [(kv.key, kv.value) for kv in back.values] == [
        ("latency_p50", "0.0421337"),
        ("queue_depth", "3"),
        ("state", "READY"),
    ]


def test_levels_accept_the_message_constants():
    for constant in (
        DiagnosticStatus.OK,
        DiagnosticStatus.WARN,
        DiagnosticStatus.ERROR,
        DiagnosticStatus.STALE,
    ):
        assert make_diagnostic_status("n", constant, "", {}).level == constant


@pytest.mark.parametrize("level", [4, -1, "OK", b"\x07", b"", 1.0])
def test_bad_levels_are_rejected(level):
    with pytest.raises(ValueError, match="diagnostic level"):
        make_diagnostic_status("n", level, "", {})


def test_array_carries_statuses_and_stamp():
    statuses = [make_diagnostic_status(f"s{i}", 0, "ok", {"i": i}) for i in range(2)]
    array = make_diagnostic_array(statuses, stamp=10.5)
    back = deserialize_message(serialize_message(array), DiagnosticArray)
    assert (back.header.stamp.sec, back.header.stamp.nanosec) == (10, 500_000_000)
    assert [s.name for s in back.status] == ["s0", "s1"]
