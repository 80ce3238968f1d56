"""Test fixture (test_message_roundtrip): publish a synthetic ActionChunk for another process to
receive, the smallest proof that the generated messages, the ROS 2 middleware and the isolation
settings work on this machine."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import rclpy
from rclpy.node import Node

from lightwam_ros.msg import ActionChunk

TOPIC = "lightwam/roundtrip_chunk"


def synthetic_chunk() -> ActionChunk:
    """A deterministic chunk with every field set to a non-default value."""
    horizon, action_dim = 32, 14
    msg = ActionChunk()
    msg.header.stamp.sec = 1_700_000_000
    msg.header.stamp.nanosec = 123_456_789
    msg.header.frame_id = "base_link"
    msg.chunk_id = 42
    msg.embodiment = "robotwin_aloha"
    msg.action_mode = "absolute_joints"
    msg.action_names = [f"joint_{i}" for i in range(action_dim)]
    msg.dt = 0.04
    msg.horizon = horizon
    msg.action_dim = action_dim
    msg.actions = np.linspace(-1.5, 1.5, horizon * action_dim, dtype=np.float32).tolist()
    msg.execute_steps = 24
    msg.inference_latency = 0.0123
    msg.observation_age = 0.0045
    msg.model_id = "tiny:0123abcd"
    msg.instruction = "transfer the cube"
    return msg


def publish(duration: float) -> int:
    """Publish the synthetic chunk at 10 Hz until a subscriber has seen a few, or time runs out."""
    rclpy.init()
    node = Node("lightwam_roundtrip_publisher")
    pub = node.create_publisher(ActionChunk, TOPIC, 10)
    deadline = time.monotonic() + duration
    sent_after_match = 0
    while time.monotonic() < deadline and sent_after_match < 20:
        pub.publish(synthetic_chunk())
        # Counted from the first match on: the subscriber may leave after its first message.
        if sent_after_match or pub.get_subscription_count() > 0:
            sent_after_match += 1
        time.sleep(0.1)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if sent_after_match else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0, help="give up after this long")
    return publish(parser.parse_args(argv).seconds)


if __name__ == "__main__":
    sys.exit(main())
