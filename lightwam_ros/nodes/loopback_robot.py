"""A stand-in robot, so the whole closed loop runs with no hardware and no simulator.

Policy -> executor -> *loopback robot* -> policy: the node publishes ``sensor_msgs/JointState`` for
every joint of an embodiment (arm and gripper joints, by name) that follow the executor's
commands, and one ``sensor_msgs/Image`` (rgb8) per camera role of the embodiment.  The pictures
are synthetic but show the joints (one bar per joint, its height the joint's place within its
limits), so what the policy sees changes with what the robot does and the loop is really closed.
It serves the README demo, the bring-up tests and benchmarks; it is not a physics simulation.

- Commands: a ``trajectory_msgs/JointTrajectory`` (what a ros2_control JointTrajectoryController
  would receive; a new one replaces the old, sampled with linear interpolation between points) or
  a ``sensor_msgs/JointState`` command (followed at once).  Joints are matched by name; joints a
  command does not name hold their target.  Targets are clipped to the joint limits.
- The measured joints equal the target, or lag it with ``tracking_time_constant`` (first order),
  like an arm whose position controller trails its command.
- Everything is stamped with the node clock, so ``use_sim_time`` makes it follow ``/clock`` (and
  it publishes nothing until ``/clock`` has started).
- Rendering is cheap: a precomputed background per camera, then one slice assignment per joint.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

from lightwam_ros.control.joint_follower import JointFollower
from lightwam_ros.nodes.command_input import CommandInput, command_parameters
from lightwam_ros.nodes.node_main import ConfiguredNode, run_node
from lightwam_ros.nodes.reason_reporter import ReasonReporter
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros import qos
from lightwam_ros.ros.image_conversion import rgb_to_image
from lightwam_ros.ros.node_registry import NODE_KINDS, ROBOT
from lightwam_ros.ros.parameter_checks import NodeSource
from lightwam_ros.ros.parameter_schema import read_parameters
from lightwam_ros.ros.robot_params import LOOPBACK_SCHEMA
from lightwam_ros.ros.stamps import nanoseconds_to_stamp

NODE_NAME = NODE_KINDS[ROBOT].node_name
_BACKGROUND_TINTS = ((40, 60, 95), (95, 60, 40), (45, 90, 55), (85, 45, 90))


# --------------------------------------------------------------------------------------------
# ROS-free parts
# --------------------------------------------------------------------------------------------


class JointPicture:
    """A synthetic camera frame: one coloured bar per joint on a tinted background."""

    def __init__(self, height: int, width: int, joints: int, tint: tuple[int, int, int]) -> None:
        rows = np.linspace(0.6, 1.0, height)[:, None, None]
        self._background = (rows * np.asarray(tint, dtype=np.float64)).astype(np.uint8).repeat(width, axis=1)
        edges = np.linspace(0, width, joints + 1).astype(int)
        gap = max(1, (edges[1] - edges[0]) // 6)
        self._bands = [
            (int(a) + gap, max(int(a) + gap + 1, int(b) - gap)) for a, b in itertools.pairwise(edges)
        ]
        hues = np.arange(joints) / max(joints, 1)
        self._colours = (127.5 + 127.5 * np.cos(2 * np.pi * (hues[:, None] + [0, 1 / 3, 2 / 3]))).astype(
            np.uint8
        )
        self._height = height

    def render(self, fractions: np.ndarray) -> np.ndarray:
        image = self._background.copy()
        tops = np.rint((1.0 - np.asarray(fractions)) * self._height).astype(int)
        for (left, right), top, colour in zip(self._bands, tops, self._colours, strict=True):
            image[top:, left:right] = colour
        return image


# --------------------------------------------------------------------------------------------
# Node
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoopbackCamera:
    role: str
    topic: str
    size: tuple[int, int]  # (height, width)


class LoopbackRobotNode(ConfiguredNode):
    """The stand-in robot; build it with ``create_loopback_robot`` (or run ``main``)."""

    def _configure(self) -> None:
        source = NodeSource(self)
        values = read_parameters(source, LOOPBACK_SCHEMA)
        if not values["embodiment"]:
            raise ValueError("parameter embodiment is required (e.g. robotwin_aloha)")
        try:
            spec = load_embodiment(values["embodiment"])
        except FileNotFoundError as error:
            raise ValueError(f"parameter embodiment: {error}") from None
        command_type, command_topic = command_parameters(values)
        joints = spec.robot_joints
        limits = np.array([spec.joint_limit(joint) for joint in joints])
        roles = [camera.role for camera in spec.canvas.cameras]
        derived: dict[str, Any] = {
            f"initial_positions.{joint}": float(limits[i].mean()) for i, joint in enumerate(joints)
        }
        for camera in spec.canvas.cameras:
            derived[f"cameras.{camera.role}.size"] = camera.source_size or (camera.height, camera.width)
        members = read_parameters(source, LOOPBACK_SCHEMA, {"joint": joints, "role": roles}, derived)
        try:
            self._arm = JointFollower(
                joints,
                limits[:, 0],
                limits[:, 1],
                np.array([members[f"initial_positions.{joint}"] for joint in joints]),
                values["tracking_time_constant"],
            )
        except ValueError as error:
            raise ValueError(f"parameters initial_positions/tracking_time_constant: {error}") from None
        self._cameras = [
            LoopbackCamera(role, members[f"cameras.{role}.topic"], members[f"cameras.{role}.size"])
            for role in roles
        ]
        self._pictures = {
            camera.role: JointPicture(
                *camera.size, len(self._arm.names), _BACKGROUND_TINTS[i % len(_BACKGROUND_TINTS)]
            )
            for i, camera in enumerate(self._cameras)
        }

        joint_topic = values["joint_state_topic"]
        self._joint_pub = self.create_publisher(JointState, joint_topic, qos.SIMULATED_SENSORS)
        self._image_pubs = {
            camera.role: self.create_publisher(Image, camera.topic, qos.SIMULATED_SENSORS)
            for camera in self._cameras
        }
        self.commands = CommandInput(self, command_type, command_topic, self._arm, self._now_ns)
        self.create_timer(1.0 / values["state_rate"], self._on_state_tick)
        self.create_timer(1.0 / values["camera_rate"], self._on_camera_tick)
        self._clock_reporter = ReasonReporter(interval=5.0)
        self.get_logger().info(
            f"loopback {spec.name}: joint states on {joint_topic} at {values['state_rate']:g} Hz, "
            f"following {command_type} on {command_topic}; cameras "
            + ", ".join(f"{c.role} {c.size[0]}x{c.size[1]} on {c.topic}" for c in self._cameras)
            + f" at {values['camera_rate']:g} Hz"
        )

    # ---------------------------------------------------------------- callbacks

    def _now_ns(self) -> int | None:
        """Node-clock time, or None while a simulated clock has not started."""
        now = self.get_clock().now().nanoseconds
        if now == 0:
            text = self._clock_reporter.bad(
                "use_sim_time is set and /clock has not started: publishing nothing yet"
            )
            if text is not None:
                self.get_logger().info(text)
            return None
        return now

    def _on_state_tick(self) -> None:
        now_ns = self._now_ns()
        if now_ns is None:
            return
        try:
            positions = self._arm.step(now_ns * 1e-9)
            msg = JointState(
                name=list(self._arm.names),
                position=positions.tolist(),
                velocity=self._arm.velocities.tolist(),
            )
            msg.header.stamp = nanoseconds_to_stamp(now_ns)
            self._joint_pub.publish(msg)
        except Exception as error:  # noqa: BLE001 - e.g. publishing during shutdown
            self.get_logger().error(f"joint state not published: {error!r}")

    def _on_camera_tick(self) -> None:
        now_ns = self._now_ns()
        if now_ns is None:
            return
        try:
            stamp = nanoseconds_to_stamp(now_ns)
            fractions = self._arm.fractions()
            for camera in self._cameras:
                rgb = self._pictures[camera.role].render(fractions)
                self._image_pubs[camera.role].publish(rgb_to_image(rgb, stamp, f"{camera.role}_camera"))
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"images not published: {error!r}")


def create_loopback_robot(
    node_name: str = NODE_NAME,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    parameter_overrides: Sequence[Parameter] | None = None,
) -> LoopbackRobotNode:
    """Build a configured loopback robot (rclpy must be initialised on ``context``); bad
    parameters raise ValueError (or rclpy's ParameterException)."""
    return LoopbackRobotNode(
        node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides
    )


def main(args: list[str] | None = None) -> int:
    """Run the loopback robot until SIGINT or SIGTERM; exit status 2 when the configuration is
    invalid."""
    return run_node(create_loopback_robot, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
