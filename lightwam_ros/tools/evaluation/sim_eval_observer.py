"""What one closed-loop episode in a simulator did, measured from outside the nodes.

The observer follows the simulator bridge (status, joint states, camera images), the policy
(chunks, status) and the executor (commands) and keeps one ``EpisodeRecord`` per episode,
started when the bridge's reset answers.  Times are the simulated clock's (message stamps),
except the policy's own inference latency and the wall time per episode.  Samples stamped
outside the current episode (sent before a reset) are ignored.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.context import Context
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.ros import qos
from lightwam_ros.ros.image_conversion import image_to_rgb
from lightwam_ros.ros.stamps import stamp_to_nanoseconds
from lightwam_ros.tools.launch.bringup_observer import MotionStats
from lightwam_ros.tools.launch.bringup_plan import ObservedTopics

NODE_NAME = "lightwam_sim_eval"
STRIP_FRAMES = 8
# A simulated joint may read a hair beyond its limit (a finger pressed open by contact):
# an excess counts from 1 mm or 1 mrad on.
LIMIT_TOLERANCE = 1e-3


@dataclass
class EpisodeRecord:
    """Everything measured in one episode; ``clock_start_ns`` is the bridge's episode clock."""

    episode: int
    clock_start_ns: int
    time_limit: float  # s of simulated time
    sim_time: float = 0.0
    success_time: float | None = None
    steps: int = 0
    commands_at_start: int | None = None  # the bridge's run-long counters at the episode's start
    rejected_at_start: int = 0
    commands_received: int = 0
    commands_rejected: int = 0
    step_ms: list[float] = field(default_factory=list)
    render_ms: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # s, the policy's own (wall)
    chunk_times: list[float] = field(default_factory=list)  # s of simulated time, on arrival
    commands: MotionStats = field(default_factory=MotionStats)
    command_count: int = 0
    start_positions: np.ndarray | None = None
    travel: np.ndarray | None = None
    joint_names: tuple[str, ...] = ()
    outside_limits: dict[str, float] = field(default_factory=dict)  # joint -> worst excess
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    object_distances: list[float] = field(default_factory=list)  # m, the task's reach, per status

    def seconds(self, stamp_ns: int) -> float | None:
        """Simulated seconds into this episode, or None if the stamp is not of this episode."""
        elapsed = (stamp_ns - self.clock_start_ns) * 1e-9
        return elapsed if 0.0 <= elapsed <= self.time_limit + 60.0 else None

    @property
    def done(self) -> bool:
        return self.success_time is not None or self.sim_time >= self.time_limit


class SimEvalObserver(Node):
    """Subscribes to the closed loop; ``begin`` starts a record, ``record`` reads it safely."""

    def __init__(
        self,
        topics: ObservedTopics,
        sim_status_topic: str,
        camera_topic: str,
        limits: dict[str, tuple[float, float]],
        *,
        context: Context | None = None,
    ) -> None:
        super().__init__(NODE_NAME, context=context)
        self._lock = threading.Lock()
        self._limits = limits
        self._current: EpisodeRecord | None = None
        self.policy_state: int | None = None
        self.policy_message = ""
        reliable = qos.profile(50)
        self.create_subscription(ActionChunk, topics.chunk_topic, self._on_chunk, reliable)
        self.create_subscription(JointTrajectory, topics.command_topic, self._on_command, qos.OBSERVER)
        self.create_subscription(JointState, topics.joint_state_topic, self._on_joint_state, qos.OBSERVER)
        self.create_subscription(String, sim_status_topic, self._on_sim_status, reliable)
        self.create_subscription(Image, camera_topic, self._on_image, qos.profile(5))
        self.create_subscription(
            PolicyStatus, topics.status_topic, self._on_policy_status, qos.profile(5, latched=True)
        )

    def begin(self, episode: int, clock_start: float, time_limit: float) -> EpisodeRecord:
        record = EpisodeRecord(episode, round(clock_start * 1e9), time_limit)
        with self._lock:
            self._current = record
        return record

    def current(self) -> EpisodeRecord | None:
        with self._lock:
            return self._current

    # ---------------------------------------------------------------- callbacks

    def _episode_time(self, stamp: Any) -> tuple[EpisodeRecord, float] | None:
        """The current episode and the stamp's time in it; None outside an episode."""
        record = self._current
        if record is None:
            return None
        t = record.seconds(stamp_to_nanoseconds(stamp))
        return None if t is None else (record, t)

    def _on_chunk(self, msg: ActionChunk) -> None:
        with self._lock:
            timed = self._episode_time(msg.header.stamp)
            if timed is not None:
                record, _ = timed
                record.latencies.append(msg.inference_latency)
                record.chunk_times.append(record.sim_time)

    def _on_command(self, msg: JointTrajectory) -> None:
        with self._lock:
            timed = self._episode_time(msg.header.stamp)
            if timed is not None and msg.points:
                record, t = timed
                record.command_count += 1
                record.commands.add(msg.joint_names, t, msg.points[0].positions, msg.points[0].velocities)

    def _on_joint_state(self, msg: JointState) -> None:
        q = np.asarray(msg.position, dtype=np.float64)
        with self._lock:
            timed = self._episode_time(msg.header.stamp)
            if timed is None:
                return
            record, _ = timed
            if record.start_positions is None:
                record.joint_names = tuple(msg.name)
                record.start_positions, record.travel = q, np.zeros_like(q)
            elif record.travel is not None and q.shape == record.travel.shape:
                record.travel = np.maximum(record.travel, np.abs(q - record.start_positions))
            for name, value in zip(msg.name, q, strict=False):
                lower, upper = self._limits.get(name, (-np.inf, np.inf))
                excess = max(lower - value, value - upper)
                if excess > LIMIT_TOLERANCE:
                    record.outside_limits[name] = max(record.outside_limits.get(name, 0.0), float(excess))

    def _on_sim_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except ValueError:
            return
        with self._lock:
            record = self._current
            if record is None or status.get("episode") != record.episode:
                return
            if record.commands_at_start is None:
                record.commands_at_start = status["commands_received"]
                record.rejected_at_start = status["commands_rejected"]
            record.commands_received = status["commands_received"] - record.commands_at_start
            record.commands_rejected = status["commands_rejected"] - record.rejected_at_start
            record.sim_time, record.steps = float(status["time"]), int(status["step"])
            record.step_ms.append(float(status["step_ms"]))
            record.render_ms.append(float(status["render_ms"]))
            if status.get("object_distance") is not None:
                record.object_distances.append(float(status["object_distance"]))
            if status.get("episode_success") and record.success_time is None:
                record.success_time = record.sim_time

    def _on_image(self, msg: Image) -> None:
        with self._lock:
            timed = self._episode_time(msg.header.stamp)
            if timed is None:
                return
            record, t = timed
            spacing = record.time_limit / STRIP_FRAMES
            if record.frames and t < record.frames[-1][0] + spacing:
                return
        frame = image_to_rgb(msg, backend="numpy")
        with self._lock:
            record.frames.append((t, frame))

    def _on_policy_status(self, msg: PolicyStatus) -> None:
        self.policy_state, self.policy_message = msg.state, msg.message


def episode_summary(record: EpisodeRecord, wall_seconds: float) -> dict[str, Any]:
    """One episode's figures, JSON-ready."""
    latencies = np.asarray(record.latencies) * 1e3
    travel = record.travel if record.travel is not None else np.zeros(0)
    largest = int(np.argmax(travel)) if travel.size else None
    motion = record.commands
    return {
        "episode": record.episode,
        "success": record.success_time is not None,
        "length_s": round(record.success_time if record.success_time is not None else record.sim_time, 3),
        "sim_steps": record.steps,
        "wall_s": round(wall_seconds, 2),
        "real_time_factor": round(record.sim_time / wall_seconds, 3) if wall_seconds else None,
        "chunks": len(record.latencies),
        "chunk_rate_hz_sim": round(len(record.latencies) / record.sim_time, 3) if record.sim_time else 0.0,
        "chunk_rate_hz_wall": round(len(record.latencies) / wall_seconds, 3) if wall_seconds else 0.0,
        "inference_latency_ms": _percentiles(latencies),
        "sim_step_ms": _percentiles(np.asarray(record.step_ms)),
        "sim_render_ms": _percentiles(np.asarray(record.render_ms)),
        "commands_sent": record.command_count,
        "commands_applied_by_sim": record.commands_received,
        "commands_refused_by_sim": record.commands_rejected,
        "command_max_velocity": _largest(motion.names, motion.max_velocity),
        "command_max_acceleration": _largest(motion.names, motion.max_acceleration),
        "largest_travel": (
            {"joint": record.joint_names[largest], "value": round(float(travel[largest]), 4)}
            if largest is not None
            else None
        ),
        "outside_limits": {name: round(value, 4) for name, value in record.outside_limits.items()},
        "object_distance_m": (
            {
                "start": round(record.object_distances[0], 4),
                "closest": round(min(record.object_distances), 4),
                "end": round(record.object_distances[-1], 4),
            }
            if record.object_distances
            else None
        ),
    }


def _percentiles(values: np.ndarray) -> dict[str, float] | None:
    if not values.size:
        return None
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p90": round(float(np.percentile(values, 90)), 2),
        "max": round(float(values.max()), 2),
    }


def _largest(names: Sequence[str] | None, values: np.ndarray | None) -> dict[str, Any] | None:
    if names is None or values is None or not values.size:
        return None
    joint = int(np.argmax(values))
    return {"joint": names[joint], "value": round(float(values[joint]), 4)}
