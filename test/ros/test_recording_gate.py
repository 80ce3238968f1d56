"""The recording gate holds the policy's start until the recorder subscribes to what it reads."""

from __future__ import annotations

import subprocess
import time

import pytest

pytest.importorskip("rclpy")

import rclpy
from ros_harness import fresh_ros_context
from std_msgs.msg import String

from lightwam_ros.tools.launch.recording_gate import (
    RecordingGateError,
    gate_command,
    wait_until_recorded,
)

ros_context = pytest.fixture(fresh_ros_context)
RECORDER = "/rec/gate_probe_recorder"


def test_the_gate_opens_once_the_named_node_subscribes_to_every_topic(ros_context) -> None:
    recorder = rclpy.create_node("gate_probe_recorder", namespace="/rec", context=ros_context)
    other = rclpy.create_node("gate_probe_other", context=ros_context)
    try:
        recorder.create_subscription(String, "/gate_probe/a", lambda _msg: None, 1)
        other.create_subscription(String, "/gate_probe/b", lambda _msg: None, 1)
        start = time.monotonic()
        wait_until_recorded(["/gate_probe/a"], RECORDER, timeout=10.0)
        assert time.monotonic() - start < 10.0
        wait_until_recorded(["/gate_probe/a"], RECORDER, timeout=10.0, node=other)  # a caller's node
        # Another node's subscription does not count: the gate names what the recorder lacks.
        # (Looking through ``other``, which has seen the recorder's subscription above: a fresh
        # node of the gate's own may not have discovered it within 0.3 s on a loaded machine.)
        with pytest.raises(RecordingGateError, match=r"does not record \['/gate_probe/b'\] after 0.3 s"):
            wait_until_recorded(["/gate_probe/a", "/gate_probe/b"], RECORDER, timeout=0.3, node=other)
        # A node that died while the gate waits ends the wait at once, with its reason.
        start = time.monotonic()
        with pytest.raises(RecordingGateError, match="sim exited early"):
            wait_until_recorded(["/gate_probe/b"], RECORDER, 30.0, lambda: "sim exited early")
        assert time.monotonic() - start < 5.0
    finally:
        recorder.destroy_node()
        other.destroy_node()


def test_the_gate_process_fails_with_the_missing_topics() -> None:
    done = subprocess.run(
        [*gate_command(["/gate_probe/none"]), "--timeout", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "/lightwam_recorder does not record ['/gate_probe/none']" in done.stderr
