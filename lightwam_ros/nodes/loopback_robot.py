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

import math
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.nodes.image_conversion import rgb_to_image
from lightwam_ros.nodes.node_main import ConfiguredNode, run_node
from lightwam_ros.nodes.reason_reporter import ReasonReporter
from lightwam_ros.nodes.stamps import nanoseconds_to_stamp, stamp_to_nanoseconds
from lightwam_ros.policy.embodiment import EmbodimentSpec, load_embodiment

NODE_NAME = "lightwam_loopback_robot"
COMMAND_TYPES = {"joint_trajectory": (JointTrajectory,
                                      "joint_trajectory_controller/joint_trajectory"),
                 "joint_state": (JointState, "lightwam/joint_command")}
_BACKGROUND_TINTS = ((40, 60, 95), (95, 60, 40), (45, 90, 55), (85, 45, 90))


def robot_joints(spec: EmbodimentSpec) -> tuple[str, ...]:
    """Every joint of the embodiment: each arm's joints, then its gripper joints."""
    return tuple(name for arm in spec.arms
                 for name in arm.joints + (arm.gripper.joints if arm.gripper else ()))


# --------------------------------------------------------------------------------------------
# ROS-free parts
# --------------------------------------------------------------------------------------------


class LoopbackArm:
    """Joint positions that follow commanded trajectories like an ideal position controller."""

    def __init__(self, names: Sequence[str], lower: np.ndarray, upper: np.ndarray,
                 initial: np.ndarray, time_constant: float = 0.0) -> None:
        self.names = tuple(names)
        self.lower = np.asarray(lower, dtype=np.float64)
        self.upper = np.asarray(upper, dtype=np.float64)
        initial = np.asarray(initial, dtype=np.float64)
        outside = [f"{name}={value:g} not in [{lo:g}, {hi:g}]" for name, value, lo, hi
                   in zip(self.names, initial, self.lower, self.upper) if not lo <= value <= hi]
        if outside:
            raise ValueError(f"initial positions outside the joint limits: {', '.join(outside)}")
        if time_constant < 0.0:
            raise ValueError(f"time constant must be >= 0, got {time_constant}")
        self._index = {name: i for i, name in enumerate(self.names)}
        self.time_constant = time_constant
        self.positions = initial.copy()
        self.velocities = np.zeros_like(initial)
        self._knot_times = np.zeros(1)
        self._knots = initial[None].copy()  # (K, joints): the target over time, piecewise linear
        self._last_step: Optional[float] = None

    def target(self, t: float) -> np.ndarray:
        """The commanded positions at time ``t`` (held before the first and after the last)."""
        i = int(np.searchsorted(self._knot_times, t, side="right"))
        if i == 0:
            return self._knots[0].copy()
        if i >= len(self._knot_times):
            return self._knots[-1].copy()
        t0, t1 = self._knot_times[i - 1], self._knot_times[i]
        weight = (t - t0) / (t1 - t0)
        return self._knots[i - 1] + weight * (self._knots[i] - self._knots[i - 1])

    def follow(self, names: Sequence[str], times: Sequence[float],
               points: Sequence[Sequence[float]], now: float) -> None:
        """Replace the plan by points of ``names`` at absolute ``times``; ValueError if invalid.

        Points already in the past are skipped, as a trajectory controller does: the newest of
        them is the target now, else the current target is, and the plan interpolates from there.
        """
        columns = self._columns(names)
        times = np.asarray(times, dtype=np.float64)
        points = np.asarray(points, dtype=np.float64)
        if times.size == 0 or points.shape != (times.size, columns.size):
            raise ValueError(f"a command needs one position per named joint ({columns.size}) in "
                             f"each of its points; got points of shape {points.shape} for "
                             f"{times.size} times")
        if not (np.isfinite(points).all() and np.isfinite(times).all()):
            raise ValueError("command has non-finite positions or times")
        if np.any(np.diff(times) <= 0.0):
            raise ValueError("command point times must increase strictly")
        full = np.repeat(self.target(now)[None], times.size, axis=0)
        full[:, columns] = points
        full = np.clip(full, self.lower, self.upper)
        future = times > now
        start = full[~future][-1] if (~future).any() else self.target(now)
        self._knot_times = np.concatenate([[now], times[future]])
        self._knots = np.concatenate([start[None], full[future]])

    def step(self, now: float) -> np.ndarray:
        """Advance the measured joints to ``now`` and return them."""
        target = self.target(now)
        elapsed = 0.0 if self._last_step is None else now - self._last_step
        previous = self.positions
        if self.time_constant > 0.0 and elapsed > 0.0:
            self.positions = previous + (1.0 - math.exp(-elapsed / self.time_constant)) * (
                target - previous)
        elif self.time_constant == 0.0:
            self.positions = target
        self.velocities = ((self.positions - previous) / elapsed if elapsed > 0.0
                           else np.zeros_like(previous))
        self._last_step = now
        return self.positions

    def fractions(self) -> np.ndarray:
        """Each joint's place within its limits, 0 (lower) to 1 (upper)."""
        return np.clip((self.positions - self.lower) / (self.upper - self.lower), 0.0, 1.0)

    def _columns(self, names: Sequence[str]) -> np.ndarray:
        names = list(names)
        unknown = [name for name in names if name not in self._index]
        if unknown:
            raise ValueError(f"command names joints this robot does not have: {unknown} "
                             f"(joints: {list(self.names)})")
        if len(set(names)) != len(names):
            raise ValueError(f"command names a joint twice: {names}")
        return np.array([self._index[name] for name in names], dtype=np.intp)


class JointPicture:
    """A synthetic camera frame: one coloured bar per joint on a tinted background."""

    def __init__(self, height: int, width: int, joints: int, tint: tuple[int, int, int]) -> None:
        rows = np.linspace(0.6, 1.0, height)[:, None, None]
        self._background = (rows * np.asarray(tint, dtype=np.float64)).astype(np.uint8).repeat(
            width, axis=1)
        edges = np.linspace(0, width, joints + 1).astype(int)
        gap = max(1, (edges[1] - edges[0]) // 6)
        self._bands = [(int(a) + gap, max(int(a) + gap + 1, int(b) - gap))
                       for a, b in zip(edges[:-1], edges[1:])]
        hues = np.arange(joints) / max(joints, 1)
        self._colours = (127.5 + 127.5 * np.cos(2 * np.pi * (hues[:, None] + [0, 1 / 3, 2 / 3]))
                         ).astype(np.uint8)
        self._height = height

    def render(self, fractions: np.ndarray) -> np.ndarray:
        image = self._background.copy()
        tops = np.rint((1.0 - np.asarray(fractions)) * self._height).astype(int)
        for (left, right), top, colour in zip(self._bands, tops, self._colours):
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

    def _declare(self, name: str, default: Any, description: str, dynamic: bool = False) -> Any:
        return self.declare_parameter(name, default, ParameterDescriptor(
            description=description, dynamic_typing=dynamic)).value

    def _configure(self) -> None:
        name = self._declare("embodiment", "", "Embodiment name or YAML path (required).").strip()
        if not name:
            raise ValueError("parameter embodiment is required (e.g. robotwin_aloha)")
        try:
            spec = load_embodiment(name)
        except FileNotFoundError as error:
            raise ValueError(f"parameter embodiment: {error}") from None
        rates = {key: _positive(key, self._declare(key, default, text, dynamic=True)) for
                 key, default, text in (("state_rate", 100.0, "JointState rate [Hz]."),
                                        ("camera_rate", 30.0, "Image rate per camera [Hz]."))}
        command_type = self._declare("command_type", "joint_trajectory",
                                     f"Command input: one of {list(COMMAND_TYPES)}.")
        if command_type not in COMMAND_TYPES:
            raise ValueError(f"parameter command_type must be one of {list(COMMAND_TYPES)}, got "
                             f"{command_type!r}")
        message_type, default_topic = COMMAND_TYPES[command_type]
        command_topic = self._declare("command_topic", default_topic, "Command input topic.")
        joint_topic = self._declare("joint_state_topic", "joint_states", "JointState output.")
        if not command_topic.strip() or not joint_topic.strip():
            raise ValueError("parameters command_topic and joint_state_topic must name topics")
        self._arm = self._declare_arm(spec)
        self._cameras = [self._declare_camera(camera.role, camera.source_size
                                              or (camera.height, camera.width))
                         for camera in spec.canvas.cameras]
        self._pictures = {camera.role: JointPicture(*camera.size, len(self._arm.names),
                                                    _BACKGROUND_TINTS[i % len(_BACKGROUND_TINTS)])
                          for i, camera in enumerate(self._cameras)}

        qos = QoSProfile(depth=10)
        self._joint_pub = self.create_publisher(JointState, joint_topic, qos)
        self._image_pubs = {camera.role: self.create_publisher(Image, camera.topic, qos)
                            for camera in self._cameras}
        callback = (self._on_trajectory if command_type == "joint_trajectory"
                    else self._on_joint_command)
        self.create_subscription(message_type, command_topic, callback, qos)
        self.create_timer(1.0 / rates["state_rate"], self._on_state_tick)
        self.create_timer(1.0 / rates["camera_rate"], self._on_camera_tick)
        self._command_reporter = ReasonReporter()
        self._clock_reporter = ReasonReporter(interval=5.0)
        self.commands_received = 0  # followed
        self.commands_rejected = 0
        self.get_logger().info(
            f"loopback {spec.name}: joint states on {joint_topic} at {rates['state_rate']:g} Hz, "
            f"following {command_type} on {command_topic}; cameras "
            + ", ".join(f"{c.role} {c.size[0]}x{c.size[1]} on {c.topic}" for c in self._cameras)
            + f" at {rates['camera_rate']:g} Hz")

    def _declare_arm(self, spec: EmbodimentSpec) -> LoopbackArm:
        """Every joint of the embodiment, from its start position (default: mid-range)."""
        time_constant = _number("tracking_time_constant", self._declare(
            "tracking_time_constant", 0.0, "First-order lag of the joints behind the command "
            "[s]; 0: they follow at once.", dynamic=True))
        names = robot_joints(spec)
        limits = np.array([spec.joint_limit(joint) for joint in names])
        initial = [_number(f"initial_positions.{joint}", self._declare(
            f"initial_positions.{joint}", float(limits[i].mean()),
            f"Start position of {joint} (default: mid-range).", dynamic=True))
            for i, joint in enumerate(names)]
        try:
            return LoopbackArm(names, limits[:, 0], limits[:, 1], np.array(initial),
                               time_constant)
        except ValueError as error:
            raise ValueError(f"parameters initial_positions/tracking_time_constant: "
                             f"{error}") from None

    def _declare_camera(self, role: str, default_size: tuple[int, int]) -> LoopbackCamera:
        prefix = f"cameras.{role}."
        topic = self._declare(prefix + "topic", f"camera/{role}/image_raw",
                              f"Image output of camera '{role}'.").strip()
        size = self._declare(prefix + "size", [int(v) for v in default_size],
                             f"[height, width] of camera '{role}'.")
        if not topic:
            raise ValueError(f"parameter {prefix}topic must name a topic")
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"parameter {prefix}size must be [height, width] > 0, got "
                             f"{list(size)}")
        return LoopbackCamera(role, topic, (int(size[0]), int(size[1])))

    # ---------------------------------------------------------------- callbacks

    def _now_ns(self) -> Optional[int]:
        """Node-clock time, or None while a simulated clock has not started."""
        now = self.get_clock().now().nanoseconds
        if now == 0:
            text = self._clock_reporter.bad("use_sim_time is set and /clock has not started: "
                                            "publishing nothing yet")
            if text is not None:
                self.get_logger().info(text)
            return None
        return now

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        now_ns = self._now_ns()
        if now_ns is None:
            return
        base = stamp_to_nanoseconds(msg.header.stamp) or now_ns  # zero stamp: start now
        self._follow(msg.joint_names,
                     [(base + stamp_to_nanoseconds(p.time_from_start)) * 1e-9
                      for p in msg.points],
                     [p.positions for p in msg.points], now_ns)

    def _on_joint_command(self, msg: JointState) -> None:
        now_ns = self._now_ns()
        if now_ns is not None:
            self._follow(msg.name, [now_ns * 1e-9], [msg.position], now_ns)

    def _follow(self, names: Sequence[str], times: list[float], points: list[Any],
                now_ns: int) -> None:
        try:
            self._arm.follow(names, times, [list(p) for p in points], now_ns * 1e-9)
        except Exception as error:  # noqa: BLE001 - a bad command is dropped, never raised
            self.commands_rejected += 1
            text = self._command_reporter.bad(f"ignored command: {error}")
            if text is not None:
                self.get_logger().warning(text)
            return
        self.commands_received += 1
        self._command_reporter.good()

    def _on_state_tick(self) -> None:
        now_ns = self._now_ns()
        if now_ns is None:
            return
        try:
            positions = self._arm.step(now_ns * 1e-9)
            msg = JointState(name=list(self._arm.names), position=positions.tolist(),
                             velocity=self._arm.velocities.tolist())
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
                self._image_pubs[camera.role].publish(
                    rgb_to_image(rgb, stamp, f"{camera.role}_camera"))
        except Exception as error:  # noqa: BLE001
            self.get_logger().error(f"images not published: {error!r}")


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"parameter {name} must be a finite number, got {value!r}")
    return float(value)


def _positive(name: str, value: Any) -> float:
    number = _number(name, value)
    if number <= 0.0:
        raise ValueError(f"parameter {name} must be > 0, got {number}")
    return number


def create_loopback_robot(node_name: str = NODE_NAME, *, context: Optional[Context] = None,
                          namespace: Optional[str] = None,
                          parameter_overrides: Optional[Sequence[Parameter]] = None
                          ) -> LoopbackRobotNode:
    """Build a configured loopback robot (rclpy must be initialised on ``context``); bad
    parameters raise ValueError (or rclpy's ParameterException)."""
    return LoopbackRobotNode(node_name, context=context, namespace=namespace,
                             parameter_overrides=parameter_overrides)


def main(args: Optional[list[str]] = None) -> int:
    """Run the loopback robot until SIGINT or SIGTERM; exit status 2 when the configuration is
    invalid."""
    return run_node(create_loopback_robot, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
