"""An ActionChunk published by one process arrives intact in another (real rclpy, real DDS)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from chunk_roundtrip import TOPIC, synthetic_chunk  # noqa: E402
from rclpy.node import Node  # noqa: E402

from lightwam_ros.msg import ActionChunk  # noqa: E402

FIELDS = [
    "chunk_id",
    "embodiment",
    "action_mode",
    "action_names",
    "dt",
    "horizon",
    "action_dim",
    "execute_steps",
    "inference_latency",
    "observation_age",
    "model_id",
    "instruction",
]


def test_isolation_settings_are_in_effect():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert 1 <= int(os.environ["ROS_DOMAIN_ID"]) <= 100
    assert os.path.isdir(os.environ["ROS_LOG_DIR"])


def test_action_chunk_crosses_processes_intact():
    publisher = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("chunk_roundtrip.py")), "--seconds", "30"]
    )
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("roundtrip_test_subscriber", context=context)
        received = []
        node.create_subscription(ActionChunk, TOPIC, received.append, 10)
        executor = rclpy.executors.SingleThreadedExecutor(context=context)
        executor.add_node(node)
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
        assert publisher.wait(timeout=40) == 0
    assert received, "no ActionChunk arrived from the publisher process"
    got, want = received[0], synthetic_chunk()
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (
        want.header.stamp.sec,
        want.header.stamp.nanosec,
    )
    assert got.header.frame_id == want.header.frame_id
    for field in FIELDS:
        assert getattr(got, field) == getattr(want, field), field
    np.testing.assert_array_equal(np.asarray(got.actions), np.asarray(want.actions))
    assert len(got.actions) == got.horizon * got.action_dim
