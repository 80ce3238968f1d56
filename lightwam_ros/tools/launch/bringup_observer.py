"""What a bring-up with the loopback robot did, measured from outside the nodes.

The observer is one more node on the same topics: it counts chunks (with the latency the chunk
reports and its delay from observation to arrival), counts the executor's commands and measures
their rate and their largest step-to-step velocity and acceleration per joint (from positions
and stamps, independently of what the executor claims), follows the robot's joint states, and
keeps the last policy status and executor state.  ``summary`` turns that into plain data,
``problems`` into the verdict of a check run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.ros import qos
from lightwam_ros.ros.stamps import stamp_to_nanoseconds
from lightwam_ros.tools.launch.bringup_plan import ObservedTopics

NODE_NAME = "lightwam_bringup_observer"
POLICY_STATES = {
    value: name for name, value in vars(PolicyStatus).items() if name.isupper() and isinstance(value, int)
}


class ArrivalStats:
    """Message count, mean rate and largest gap between arrivals (monotonic clock)."""

    def __init__(self) -> None:
        self.count = 0
        self._first: float | None = None
        self._last: float | None = None
        self.max_gap = 0.0

    def add(self, now: float) -> None:
        if self._last is not None:
            self.max_gap = max(self.max_gap, now - self._last)
        else:
            self._first = now
        self._last = now
        self.count += 1

    @property
    def rate(self) -> float:
        first, last = self._first, self._last
        if self.count < 2 or first is None or last is None or last == first:
            return 0.0
        return (self.count - 1) / (last - first)


class MotionStats:
    """Largest step-to-step velocity and acceleration per joint of a stamped command stream.

    With the commanded velocities (the executor sends them with every command), acceleration is
    the change of commanded velocity between two received commands over the time between their
    stamps: the quantity the executor's safety filter caps (|dv| <= max_acceleration * dt), and it
    stays bounded by the cap when commands are lost on the way (dv then spans several steps and dt
    their sum). Without velocities, velocity is the position change over the time between two
    samples and acceleration its change over the later step, which overstates the acceleration
    across a lost command (a 150 ms gap's average velocity against the next 2 ms step's).
    Samples whose joint names differ from the first sample's are counted and skipped, as are
    samples not later than the previous one.
    """

    def __init__(self) -> None:
        self.names: tuple[str, ...] | None = None
        self.skipped = 0
        self.max_velocity: np.ndarray | None = None
        self.max_acceleration: np.ndarray | None = None
        self._previous: tuple[float, np.ndarray] | None = None
        self._velocity: np.ndarray | None = None
        self._origin_ns: int | None = None

    def add_stamped(
        self,
        names: Sequence[str],
        stamp_ns: int,
        positions: Sequence[float],
        velocities: Sequence[float] = (),
    ) -> None:
        """``add`` for a stamp in integer ns: times go in as seconds since the first stamp, as
        float seconds since the epoch resolve only 0.24 us, 0.1 % of the 0.2-0.3 ms between a
        late control tick and the next one (a 0.1 % acceleration over the cap that is not)."""
        if self._origin_ns is None:
            self._origin_ns = stamp_ns
        self.add(names, (stamp_ns - self._origin_ns) * 1e-9, positions, velocities)

    def add(
        self, names: Sequence[str], t: float, positions: Sequence[float], velocities: Sequence[float] = ()
    ) -> None:
        names = tuple(names)
        q = np.asarray(positions, dtype=np.float64)
        if self.names is None:
            self.names = names
            self.max_velocity = np.zeros(len(names))
            self.max_acceleration = np.zeros(len(names))
        if (
            names != self.names
            or q.shape != (len(names),)
            or (self._previous is not None and t <= self._previous[0])
        ):
            self.skipped += 1
            return
        assert self.max_velocity is not None and self.max_acceleration is not None, "set with the names"
        given = np.asarray(velocities, dtype=np.float64)
        commanded = given if given.shape == q.shape and np.all(np.isfinite(given)) else None
        velocity = commanded
        if self._previous is not None:
            t0, q0 = self._previous
            average = (q - q0) / (t - t0)
            self.max_velocity = np.maximum(self.max_velocity, np.abs(average))
            velocity = average if commanded is None else commanded
            if self._velocity is not None:
                self.max_acceleration = np.maximum(
                    self.max_acceleration, np.abs(velocity - self._velocity) / (t - t0)
                )
        if commanded is not None:
            self.max_velocity = np.maximum(self.max_velocity, np.abs(commanded))
        self._velocity = velocity
        self._previous = (t, q)


class BringupObserver(Node):
    """Subscribes to what the bring-up produces; thread-safe ``summary``."""

    def __init__(
        self, topics: ObservedTopics, *, context: Context | None = None, use_sim_time: bool = False
    ) -> None:
        super().__init__(
            NODE_NAME, context=context, parameter_overrides=[Parameter("use_sim_time", value=use_sim_time)]
        )
        self.topics = topics
        self._lock = threading.Lock()
        self.chunks = ArrivalStats()
        self.commands = ArrivalStats()
        self.joint_states = ArrivalStats()
        self.motion = MotionStats()
        self._latencies: list[float] = []
        self._delays: list[float] = []
        self._start_positions: tuple[tuple[str, ...], np.ndarray] | None = None
        self._travel: np.ndarray | None = None
        self._policy_status: PolicyStatus | None = None
        self._executor_state = ""
        self._started = time.monotonic()
        self.create_subscription(ActionChunk, topics.chunk_topic, self._on_chunk, qos.COMMANDS)
        if topics.command_type == "joint_trajectory":
            self.create_subscription(JointTrajectory, topics.command_topic, self._on_trajectory, qos.OBSERVER)
        else:
            self.create_subscription(JointState, topics.command_topic, self._on_joint_command, qos.OBSERVER)
        self.create_subscription(JointState, topics.joint_state_topic, self._on_joint_state, qos.COMMANDS)
        self.create_subscription(PolicyStatus, topics.status_topic, self._on_status, qos.LATCHED)
        self.create_subscription(
            DiagnosticArray, topics.diagnostics_topic, self._on_diagnostics, qos.COMMANDS
        )

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_chunk(self, msg: ActionChunk) -> None:
        delay = self._now() - stamp_to_nanoseconds(msg.header.stamp) * 1e-9
        with self._lock:
            self.chunks.add(time.monotonic())
            self._latencies.append(msg.inference_latency)
            self._delays.append(delay)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if msg.points:
            point = msg.points[0]
            self._on_command(msg.joint_names, msg.header.stamp, point.positions, point.velocities)

    def _on_joint_command(self, msg: JointState) -> None:
        self._on_command(msg.name, msg.header.stamp, msg.position, msg.velocity)

    def _on_command(
        self, names: Sequence[str], stamp: Any, positions: Sequence[float], velocities: Sequence[float]
    ) -> None:
        with self._lock:
            self.commands.add(time.monotonic())
            self.motion.add_stamped(names, stamp_to_nanoseconds(stamp), positions, velocities)

    def _on_joint_state(self, msg: JointState) -> None:
        names, q = tuple(msg.name), np.asarray(msg.position, dtype=np.float64)
        with self._lock:
            self.joint_states.add(time.monotonic())
            if self._start_positions is None:
                self._start_positions = (names, q)
                self._travel = np.zeros_like(q)
            elif (
                names == self._start_positions[0]
                and self._travel is not None
                and q.shape == self._travel.shape
            ):
                self._travel = np.maximum(self._travel, np.abs(q - self._start_positions[1]))

    def _on_status(self, msg: PolicyStatus) -> None:
        with self._lock:
            self._policy_status = msg

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.startswith(self.topics.executor_name + ":"):
                with self._lock:
                    self._executor_state = status.message

    # ---------------------------------------------------------------- results

    def summary(self) -> dict[str, Any]:
        """Everything measured so far, as JSON-ready data."""
        with self._lock:
            motion = self.motion
            status = self._policy_status
            travel = None
            if self._start_positions is not None and self._travel is not None and self._travel.size:
                joint = int(np.argmax(self._travel))
                travel = {"joint": self._start_positions[0][joint], "value": float(self._travel[joint])}
            return {
                "observed_s": round(time.monotonic() - self._started, 3),
                "chunks": {
                    "topic": self.topics.chunk_topic,
                    "count": self.chunks.count,
                    "rate_hz": self.chunks.rate,
                    "inference_latency_ms": _mean_max(self._latencies),
                    "observation_to_arrival_ms": _mean_max(self._delays),
                },
                "commands": {
                    "topic": self.topics.command_topic,
                    "count": self.commands.count,
                    "rate_hz": self.commands.rate,
                    "max_gap_ms": 1e3 * self.commands.max_gap,
                    "max_velocity": _largest(motion.names, motion.max_velocity, self.topics.max_velocity),
                    "max_acceleration": _largest(
                        motion.names, motion.max_acceleration, self.topics.max_acceleration
                    ),
                },
                "robot": {
                    "topic": self.topics.joint_state_topic,
                    "joint_states": self.joint_states.count,
                    "rate_hz": self.joint_states.rate,
                    "largest_travel": travel,
                },
                "policy_state": (
                    f"{POLICY_STATES.get(status.state, status.state)}: {status.message}"
                    if status is not None
                    else ""
                ),
                "executor_state": self._executor_state,
            }


def _mean_max(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"mean": 1e3 * float(np.mean(values)), "max": 1e3 * float(np.max(values))}


def _largest(
    names: tuple[str, ...] | None, values: np.ndarray | None, caps: Mapping[str, float] | None
) -> dict[str, Any] | None:
    """The joint with the largest value, with the executor's cap for that joint (by name)."""
    if names is None or values is None or not values.size:
        return None
    joint = int(np.argmax(values))
    cap = caps.get(names[joint]) if caps is not None else None
    return {"joint": names[joint], "value": float(values[joint]), "cap": cap}


def problems(summary: dict[str, Any], shadow: bool) -> list[str]:
    """Why a check run failed (empty: it passed)."""
    found = []
    if summary["chunks"]["count"] == 0:
        found.append(f"no chunk arrived on {summary['chunks']['topic']}")
    commands = summary["commands"]
    if shadow and commands["count"]:
        found.append(f"shadow mode, yet {commands['count']} commands on {commands['topic']}")
    elif not shadow and commands["count"] == 0:
        found.append(f"no command arrived on {commands['topic']}")
    return found


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines."""
    chunks, commands, robot = summary["chunks"], summary["commands"], summary["robot"]
    lines = [
        f"observed for {summary['observed_s']:.1f} s",
        f"chunks    {chunks['count']} on {chunks['topic']} at {chunks['rate_hz']:.2f} Hz",
    ]
    for key, label in (
        ("inference_latency_ms", "inference latency"),
        ("observation_to_arrival_ms", "observation -> arrival"),
    ):
        if chunks[key]:
            lines.append(
                f"          {label}: mean {chunks[key]['mean']:.1f} ms, max {chunks[key]['max']:.1f} ms"
            )
    lines.append(
        f"commands  {commands['count']} on {commands['topic']} at "
        f"{commands['rate_hz']:.1f} Hz (largest gap {commands['max_gap_ms']:.1f} ms)"
    )
    for key, unit in (("max_velocity", "/s"), ("max_acceleration", "/s^2")):
        largest = commands[key]
        if largest:  # rad or m, as the joint
            cap = f", cap {largest['cap']:g}" if largest["cap"] is not None else ""
            lines.append(
                f"          largest {key[4:]}: {largest['value']:.3f}{unit} ({largest['joint']}{cap})"
            )
    travel = robot["largest_travel"]
    moved = f", moved up to {travel['value']:.3f} ({travel['joint']}) from its start" if travel else ""
    lines.append(f"robot     {robot['joint_states']} joint states at {robot['rate_hz']:.1f} Hz{moved}")
    lines.append(f"policy    {summary['policy_state'] or 'no status received'}")
    lines.append(f"executor  {summary['executor_state'] or 'no diagnostics received'}")
    return "\n".join(lines)
