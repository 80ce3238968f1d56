"""A recorded bag seen through the policy's eyes: the observations the policy node would have
assembled, the chunks it published and what the robot did, read straight from the bag file.

The offline check and the training-sample conversion both need this, so it lives here once.
Messages are decoded with rclpy's own deserialiser (no ROS graph: nothing is started) and turned
into stream samples by the node's conversions, then assembled by the node's rules
(``ObservationAssembler.assemble_anchored`` on the streams of ``policy_inputs``): an observation
rebuilt here is the one the live node used for a chunk with the same stamp.

Two passes over the bag.  ``scan`` reads the small messages: live chunks, joint states (the
robot's state in the embodiment's state layout, over time), the instruction, and the timing of
every stream.  ``observations`` then streams the inputs again and assembles the observation for
each requested stamp once the bag's clock has passed it by ``lag`` (inputs stamped before a frame
can arrive after it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message

from lightwam_ros.bags.health import StreamHealth, header_stamp_ns, missing_topics
from lightwam_ros.bags.reader import BagMessage, BagProblem, BagReader
from lightwam_ros.control.frame_history import ObservationAssembler, StaleInputError
from lightwam_ros.policy.chunk import Chunk
from lightwam_ros.policy.state_builder import StateAssemblyError, StateBuilder, default_chains
from lightwam_ros.ros.chunk_messages import msg_to_chunk
from lightwam_ros.ros.image_conversion import compressed_to_rgb, image_to_rgb
from lightwam_ros.ros.joint_state import JointStateMatcher
from lightwam_ros.ros.message_types import message_class
from lightwam_ros.ros.node_registry import NODE_KINDS, POLICY
from lightwam_ros.ros.param_files import read_params
from lightwam_ros.ros.policy_inputs import (
    JOINT_STREAM,
    anchor_stream,
    camera_stream,
    input_streams,
    pose_stream,
)
from lightwam_ros.ros.policy_params import PolicySettings, settings_from_values
from lightwam_ros.ros.pose_messages import pose_from_message
from lightwam_ros.ros.run_topics import absolute_topic
from lightwam_ros.ros.stamps import stamp_to_nanoseconds, stamp_to_seconds

HISTORY_SCALE = 8  # the streams keep 8x the live node's samples: observations come `lag` late


def policy_settings(params: Path, overrides: dict[str, Any]) -> PolicySettings:
    """The policy node's settings from its parameter file plus overrides (model files)."""
    return settings_from_values({**read_params(params, NODE_KINDS[POLICY].node_name), **overrides})


@dataclass
class RecordedRun:
    """What pass one found: everything but the images."""

    live_chunks: dict[int, Chunk] = field(default_factory=dict)  # by stamp [ns]
    state_times: list[float] = field(default_factory=list)  # s, joint-state stamps
    states: list[np.ndarray] = field(default_factory=list)  # the state vector at each
    scene_stamps: list[float] = field(default_factory=list)  # s, scene-camera frames
    instructions: list[str] = field(default_factory=list)  # in order of appearance
    problems: list[BagProblem] = field(default_factory=list)
    health: StreamHealth | None = None

    def live_chunk_at(self, stamp: float) -> Chunk | None:
        """The live chunk of the observation stamped ``stamp`` [s] (float seconds hold epoch
        stamps to a few hundred ns, so the nearest within 1 us)."""
        if not self.live_chunks:
            return None
        nearest = min(self.live_chunks, key=lambda ns: abs(ns - stamp * 1e9))
        return self.live_chunks[nearest] if abs(nearest - stamp * 1e9) < 1e3 else None

    @property
    def instruction(self) -> str | None:
        return self.instructions[-1] if self.instructions else None

    def state_series(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, states) sorted by time; empty arrays when the bag has no usable joint state."""
        if not self.states:
            return np.zeros(0), np.zeros((0, 0))
        order = np.argsort(self.state_times, kind="stable")
        return np.asarray(self.state_times)[order], np.asarray(self.states)[order]


@dataclass(frozen=True)
class BagObservation:
    stamp: float  # s, the scene frame's stamp
    images: dict[str, np.ndarray]
    state: np.ndarray
    ages: dict[str, float]  # s, per stream, from the scene frame's stamp


class BagInputs:
    """The policy's inputs in one bag, for the settings of one policy node."""

    def __init__(self, reader: BagReader, settings: PolicySettings, lag: float = 0.25) -> None:
        self.reader, self.settings, self.lag = reader, settings, lag
        spec = settings.spec
        measured = tuple(pose.arm for pose in settings.poses)
        self.builder = StateBuilder(spec, default_chains(spec, measured))
        self.matcher = JointStateMatcher(self.builder.joint_names)
        streams, topics = input_streams(settings, HISTORY_SCALE)
        self.stream_configs = streams
        self.stream_of = {absolute_topic(topic): stream for stream, topic in topics.items()}
        self.anchor = anchor_stream(settings)
        self.anchor_topic = next(t for t, s in self.stream_of.items() if s == self.anchor)
        self.cameras = {camera_stream(c.role): c for c in settings.cameras}
        self.chunk_topics = {
            absolute_topic(settings.topics[name]) for name in ("chunk_topic", "shadow_chunk_topic")
        }
        self.instruction_topic = absolute_topic(settings.topics["instruction_topic"])
        self._decode_failures: dict[str, int] = {}

    # ------------------------------------------------------------------ pass one

    def scan(self) -> RecordedRun:
        health = StreamHealth()
        run = RecordedRun(problems=list(self.reader.problems), health=health)
        run.problems += missing_topics(self.reader.topics, sorted(self.stream_of))
        typestore = self.reader.typestore  # the bag's own definitions, then the project's
        for message in self.reader.messages():
            health.add(
                message.topic, message.log_time_ns, header_stamp_ns(message.data, message.msgtype, typestore)
            )
            stream = self.stream_of.get(message.topic)
            if message.topic == self.anchor_topic:
                stamp = header_stamp_ns(message.data, message.msgtype, typestore)
                if stamp is not None:
                    run.scene_stamps.append(stamp * 1e-9)
            elif stream == JOINT_STREAM:
                self._scan_joint_state(message, run)
            elif message.topic in self.chunk_topics:
                decoded = self._decode(
                    message, lambda msg: (stamp_to_nanoseconds(msg.header.stamp), msg_to_chunk(msg))
                )
                if decoded is not None:
                    stamp_ns, chunk = decoded
                    run.live_chunks[stamp_ns] = chunk
                    if chunk.instruction and chunk.instruction not in run.instructions[-1:]:
                        run.instructions.append(chunk.instruction)
            elif message.topic == self.instruction_topic:
                text = self._decode(message, lambda msg: msg.data.strip())
                if text and text not in run.instructions[-1:]:
                    run.instructions.append(text)
        run.problems += health.problems() + self.decode_problems()
        run.scene_stamps.sort()
        return run

    def _scan_joint_state(self, message: BagMessage, run: RecordedRun) -> None:
        """The robot's state over time (measured end-effector poses, where configured, are not
        part of it: a state needing them is counted as unusable)."""

        def state(msg: Any) -> tuple[float, np.ndarray]:
            return (stamp_to_seconds(msg.header.stamp), self.builder.build(self.matcher.extract(msg)).vector)

        decoded = self._decode(message, state)
        if decoded is not None:
            run.state_times.append(decoded[0])
            run.states.append(decoded[1])

    # ------------------------------------------------------------------ pass two

    def observations(self, stamps: Sequence[float]) -> Iterator[tuple[float, BagObservation | str]]:
        """(stamp, observation or the reason there is none) for each of ``stamps`` (sorted)."""
        wanted = sorted(stamps)
        assembler = ObservationAssembler(self.stream_configs)
        done = 0
        for message in self.reader.messages(sorted(self.stream_of)):
            now = message.log_time_ns * 1e-9
            while done < len(wanted) and now >= wanted[done] + self.lag:
                yield wanted[done], self._assemble(assembler, wanted[done])
                done += 1
            self._add(assembler, message)
        for stamp in wanted[done:]:
            yield stamp, self._assemble(assembler, stamp)

    def _add(self, assembler: ObservationAssembler, message: BagMessage) -> None:
        stream = self.stream_of[message.topic]
        if stream in self.cameras:
            converted = self._decode(message, self._image)
        elif stream == JOINT_STREAM:
            converted = self._decode(message, lambda msg: (msg.header.stamp, self.matcher.extract(msg)))
        else:
            converted = self._decode(message, lambda msg: (msg.header.stamp, pose_from_message(msg)))
        if converted is not None:
            stamp, value = converted
            assembler.add(stream, stamp_to_seconds(stamp), value)

    def _image(self, msg: Any) -> tuple[Any, np.ndarray]:
        rgb = compressed_to_rgb(msg) if hasattr(msg, "format") else image_to_rgb(msg)
        return msg.header.stamp, rgb

    def _assemble(self, assembler: ObservationAssembler, stamp: float) -> BagObservation | str:
        try:
            observation = assembler.assemble_anchored(stamp, self.anchor)
            poses = {pose.arm: observation.value(pose_stream(pose.arm)) for pose in self.settings.poses}
            state = self.builder.build(observation.value(JOINT_STREAM), poses)
        except (StaleInputError, StateAssemblyError) as error:
            return str(error)
        if not math.isclose(observation.samples[self.anchor].stamp, stamp, abs_tol=1e-6):
            return f"no scene frame stamped {stamp:.6f} s in the bag"
        images = {c.role: observation.value(camera_stream(c.role)) for c in self.cameras.values()}
        return BagObservation(stamp, images, state.vector, dict(observation.ages))

    # ------------------------------------------------------------------ decoding

    def _decode(self, message: BagMessage, convert: Callable[[Any], Any]) -> Any:
        """``convert(decoded message)``, or None (counted per topic) when either step fails: a
        damaged or unusable message is reported, it never ends the check."""
        try:
            return convert(deserialize_message(message.data, message_class(message.msgtype)))
        except Exception as error:  # noqa: BLE001 - see the docstring
            self._decode_failures[message.topic] = self._decode_failures.get(message.topic, 0) + 1
            self._last_decode_error = f"{type(error).__name__}: {error}"
            return None

    def decode_problems(self) -> list[BagProblem]:
        return [
            BagProblem(
                "decode_error", f"{count} messages could not be used (last: {self._last_decode_error})", topic
            )
            for topic, count in sorted(self._decode_failures.items())
        ]


def policy_rate_stamps(scene_stamps: Sequence[float], rate_hz: float) -> list[float]:
    """Scene-frame stamps thinned to the policy rate (the first frame at or after each tick)."""
    chosen: list[float] = []
    for stamp in scene_stamps:
        if not chosen or stamp >= chosen[-1] + 1.0 / rate_hz - 1e-6:
            chosen.append(stamp)
    return chosen


def interpolate_series(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Values linearly interpolated per column at ``at`` (NaN outside the recorded span)."""
    out = np.full((len(at), values.shape[1]), np.nan)
    if len(times) < 2:
        return out
    inside = (at >= times[0]) & (at <= times[-1])
    for column in range(values.shape[1]):
        out[inside, column] = np.interp(at[inside], times, values[:, column])
    return out
