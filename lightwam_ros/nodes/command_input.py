"""The executor's joint commands as a simulated robot receives them: a subscription that turns
``JointTrajectory`` or ``JointState`` commands into a plan of joint targets over time, shared by
the loopback robot and the simulator bridge so both follow commands alike."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.control.joint_follower import JointFollower
from lightwam_ros.nodes.reason_reporter import ReasonReporter
from lightwam_ros.ros import qos
from lightwam_ros.ros.robot_params import COMMAND_TOPICS
from lightwam_ros.ros.stamps import stamp_to_nanoseconds

COMMAND_TYPES: dict[str, type] = {"joint_trajectory": JointTrajectory, "joint_state": JointState}


def command_parameters(values: Mapping[str, Any]) -> tuple[str, str]:
    """(command type, topic) from a robot's checked ``command_type`` and ``command_topic``: what
    it follows (an empty topic: the type's default)."""
    return values["command_type"], values["command_topic"] or COMMAND_TOPICS[values["command_type"]]


class CommandInput:
    """Follows commands on ``topic`` into ``arm`` (which its owner may replace, e.g. on a reset).

    ``now_ns`` gives the owner's time (None: no time yet, commands are dropped).  ``refuse``, if
    given, returns why a command stamped ``stamp_ns`` must be dropped (None: accept it).  A bad
    command is counted and logged (rate-limited), never raised.
    """

    def __init__(
        self,
        node: Node,
        command_type: str,
        topic: str,
        arm: JointFollower,
        now_ns: Callable[[], int | None],
        refuse: Callable[[int], str | None] | None = None,
    ) -> None:
        self.arm = arm
        self.received = 0  # followed
        self.rejected = 0
        self._node = node
        self._now_ns = now_ns
        self._refuse = refuse
        self._reporter = ReasonReporter()
        message_type = COMMAND_TYPES[command_type]
        callback = self._on_trajectory if command_type == "joint_trajectory" else self._on_joint_command
        node.create_subscription(message_type, topic, callback, qos.COMMANDS)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        now_ns = self._now_ns()
        if now_ns is None:
            return
        base = stamp_to_nanoseconds(msg.header.stamp) or now_ns  # zero stamp: start now
        self._follow(
            msg.joint_names,
            base,
            [(base + stamp_to_nanoseconds(p.time_from_start)) * 1e-9 for p in msg.points],
            [p.positions for p in msg.points],
            now_ns,
        )

    def _on_joint_command(self, msg: JointState) -> None:
        now_ns = self._now_ns()
        if now_ns is not None:
            stamp = stamp_to_nanoseconds(msg.header.stamp) or now_ns
            self._follow(msg.name, stamp, [now_ns * 1e-9], [msg.position], now_ns)

    def _follow(
        self, names: Sequence[str], stamp_ns: int, times: list[float], points: list[Any], now_ns: int
    ) -> None:
        reason = self._refuse(stamp_ns) if self._refuse is not None else None
        try:
            if reason is not None:
                raise ValueError(reason)
            self.arm.follow(names, times, [list(p) for p in points], now_ns * 1e-9)
        except Exception as error:  # noqa: BLE001 - a bad command is dropped, never raised
            self.rejected += 1
            text = self._reporter.bad(f"ignored command: {error}")
            if text is not None:
                self._node.get_logger().warning(text)
            return
        self.received += 1
        self._reporter.good()
