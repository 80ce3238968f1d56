"""lightwam-sim-bridge over real DDS with gym-aloha: /clock and stamped joint states from the
simulation, commands followed by joint name, bad commands refused without stopping it, and a
reset that jumps the clock back and refuses commands sent before it."""

from __future__ import annotations

import json

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from lightwam_ros.sim.base import configure_offscreen_rendering  # noqa: E402

configure_offscreen_rendering()
pytest.importorskip("gym_aloha", reason="the simulators are not installed (requirements/sim.txt)")

from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from ros_harness import fresh_ros_context, spin_in_background, wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint  # noqa: E402

from lightwam_ros.nodes.sim_bridge import create_sim_bridge  # noqa: E402
from lightwam_ros.ros.stamps import nanoseconds_to_stamp, stamp_to_nanoseconds  # noqa: E402

ros_context = pytest.fixture(fresh_ros_context)
COMMANDS = "joint_trajectory_controller/joint_trajectory"


class Peer:
    """The other side of the bridge: its outputs, and commands and resets going in."""

    def __init__(self, context) -> None:
        self.node = Node("bridge_test_peer", context=context)
        self.clock: list[int] = []
        self.joints: list[JointState] = []
        self.status: list[dict] = []
        self.images: list[Image] = []
        qos = QoSProfile(depth=500)
        self.node.create_subscription(
            Clock, "/clock", lambda m: self.clock.append(stamp_to_nanoseconds(m.clock)), qos
        )
        self.node.create_subscription(JointState, "joint_states", self.joints.append, qos)
        self.node.create_subscription(
            String, "sim/status", lambda m: self.status.append(json.loads(m.data)), qos
        )
        self.node.create_subscription(Image, "camera/head/image_raw", self.images.append, qos)
        self.commands = self.node.create_publisher(JointTrajectory, COMMANDS, 10)
        self.reset = self.node.create_client(Trigger, "sim/reset")

    def command(self, names, positions, stamp_ns) -> None:
        msg = JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(positions=positions)])
        msg.header.stamp = nanoseconds_to_stamp(stamp_ns)
        self.commands.publish(msg)

    def latest(self, joint: str) -> float:
        msg = self.joints[-1]
        return msg.position[list(msg.name).index(joint)]


@pytest.fixture
def bridge_and_peer(ros_context):
    bridge = create_sim_bridge(
        context=ros_context,
        parameter_overrides=[
            Parameter("task", value="aloha:transfer_cube"),
            Parameter("real_time_factor", value=0.0),
            Parameter("camera_size", value=[60, 80]),
        ],
    )
    peer = Peer(ros_context)
    executor, thread = spin_in_background(ros_context, [bridge, peer.node])
    yield bridge, peer
    executor.shutdown()
    thread.join(timeout=10)
    bridge.destroy_node()
    peer.node.destroy_node()


def test_bridge_follows_commands_refuses_bad_ones_and_resets_with_a_jump_back(bridge_and_peer):
    bridge, peer = bridge_and_peer
    wait_until(lambda: len(peer.joints) > 5 and peer.images and peer.status, 30, "outputs")
    assert peer.clock == sorted(peer.clock)  # simulated time, forwards within an episode
    stamps = [stamp_to_nanoseconds(m.header.stamp) for m in peer.joints[-5:]]
    assert set(stamps) <= set(peer.clock)  # joint states carry the simulated time
    assert peer.images[-1].height == 60 and peer.images[-1].width == 80

    start = peer.latest("left_waist")
    peer.command(["left_waist"], [start + 0.3], peer.clock[-1])
    wait_until(
        lambda: abs(peer.latest("left_waist") - (start + 0.3)) < 0.02, 30, "left_waist to reach its target"
    )
    assert abs(peer.latest("right_waist") - 0.0) < 0.02  # unnamed joints hold
    peer.command(["no_such_joint"], [0.0], peer.clock[-1])
    peer.command(["left_waist"], [float("nan")], peer.clock[-1])
    wait_until(lambda: bridge.commands.rejected == 2, 10, "both bad commands to be refused")
    assert bridge.failure is None and bridge.commands.received == 1

    old_time = peer.clock[-1]
    future = peer.reset.call_async(Trigger.Request())
    wait_until(future.done, 60, "the reset")
    info = json.loads(future.result().message)
    assert future.result().success and info["episode"] == 1
    wait_until(lambda: peer.clock[-1] < old_time, 10, "the clock to jump back")
    wait_until(lambda: peer.status and peer.status[-1]["episode"] == 1, 10, "episode 1")
    assert np.isclose(peer.latest("left_waist"), start, atol=0.02)  # the scene's start again
    peer.command(["left_waist"], [start - 0.3], old_time)  # sent before the reset
    wait_until(lambda: bridge.commands.rejected == 3, 10, "the stale command to be refused")
    assert np.isclose(peer.latest("left_waist"), start, atol=0.02)


def test_a_task_the_bridge_cannot_simulate_is_a_configuration_error(ros_context):
    with pytest.raises(ValueError, match="unknown ALOHA task"):
        create_sim_bridge(
            context=ros_context, parameter_overrides=[Parameter("task", value="aloha:juggling")]
        )
    with pytest.raises(ValueError, match="cannot use_sim_time"):
        create_sim_bridge(context=ros_context, parameter_overrides=[Parameter("use_sim_time", value=True)])
