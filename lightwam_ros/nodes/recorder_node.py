"""lightwam-record: the inputs and outputs of a Light-WAM run, into an MCAP rosbag2 bag.

    lightwam-record --ros-args -p embodiment:=robotwin_aloha -p output:=run1 \\
        -p instruction:="beat the block with the hammer"

What is recorded comes from the embodiment's policy and executor parameter files (the files
``lightwam-bringup`` and the launch file start the nodes with): inputs - camera images, joint
states, the instruction, measured end-effector poses; outputs - chunks, status, predicted
trajectory or path, diagnostics, the executor's commands, its e-stop and its chunk requests.
``topics`` adds more, ``exclude`` leaves some out; ``input_topics`` / ``output_topics``
replace the derived sets (the bring-up passes the topics its nodes really use).  The bag's
custom metadata holds the embodiment, the instruction and each topic's role, which
``lightwam-replay`` and the offline check read.

Recording must never slow the control path: a topic is subscribed once it has a publisher, with
QoS that matches every publisher (reliable only when they all are, transient-local when they all
are), as serialized bytes (``raw=True``, written byte for byte), and the callback only offers
the bytes to the BagWriter's bounded queue (a full queue drops and counts, never waits).  The
log time is the node clock at receipt, so ``use_sim_time`` records simulated time.  SIGINT and
SIGTERM close the bag completely; after a kill -9 the reader recovers all but the last
``flush_period``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rclpy.clock import Clock, ClockType
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rclpy.subscription import Subscription
from std_msgs.msg import String

from lightwam_ros.bags.metadata import (
    METADATA_EMBODIMENT,
    METADATA_INSTRUCTION,
    METADATA_INSTRUCTION_TOPIC,
    METADATA_TOPIC_ROLES,
    TOPIC_ROLES,
    topic_roles_text,
)
from lightwam_ros.bags.writer import BagWriteError, BagWriter, WriterStats
from lightwam_ros.nodes.node_main import ConfiguredNode, run_node, teardown_deadline
from lightwam_ros.ros import qos
from lightwam_ros.ros.message_types import message_class
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS, POLICY, RECORDER
from lightwam_ros.ros.param_files import params_file, read_params
from lightwam_ros.ros.parameter_checks import NodeSource
from lightwam_ros.ros.parameter_schema import read_parameters
from lightwam_ros.ros.recorder_params import RECORDER_SCHEMA
from lightwam_ros.ros.run_topics import RecordedTopics, recorded_topics

NODE_NAME = NODE_KINDS[RECORDER].node_name
STRING_TYPE = "std_msgs/msg/String"
_QUEUE_DEPTH = 100  # DDS history per subscription; the callbacks empty it at once
_MIB = 1 << 20


@dataclass(frozen=True)
class RecorderSettings:
    output: Path
    embodiment: str
    instruction: str
    instruction_topic: str  # resolved; "" when unknown
    roles: dict[str, str]  # resolved topic -> input | output | other
    max_queue_messages: int
    max_queue_bytes: int
    flush_period: float
    discovery_period: float
    stats_period: float


@dataclass
class _Recording:
    """One subscribed topic."""

    msgtype: str
    qos: QoSProfile
    subscription: Subscription


def adapted_qos(publishers: Sequence[QoSProfile]) -> QoSProfile:
    """A subscription QoS that matches every one of ``publishers``: reliable only if they all
    offer reliable, transient-local only if they all are (then their kept messages arrive too)."""
    return qos.profile(
        _QUEUE_DEPTH,
        reliable=all(qos.is_reliable(p) for p in publishers),
        latched=all(qos.is_latched(p) for p in publishers),
    )


def _weaker(new: QoSProfile, old: QoSProfile) -> bool:
    """Whether ``new`` must replace ``old`` because a publisher that ``old`` misses appeared."""
    return (qos.is_reliable(old) and not qos.is_reliable(new)) or (
        qos.is_latched(old) and not qos.is_latched(new)
    )


def offered_qos_yaml(publishers: Sequence[QoSProfile]) -> str:
    """The publishers' QoS profiles as rosbag2 keeps them in a bag (``offered_qos_profiles``),
    so a player - ros2 bag or lightwam-replay - can offer the same durability again."""

    def seconds(duration: Duration) -> dict[str, int]:
        sec, nsec = divmod(duration.nanoseconds, 1_000_000_000)
        return {"sec": sec, "nsec": nsec}

    return (
        yaml.safe_dump(
            [
                {
                    "history": p.history.name.lower(),
                    "depth": p.depth,
                    "reliability": p.reliability.name.lower(),
                    "durability": p.durability.name.lower(),
                    "deadline": seconds(p.deadline),
                    "lifespan": seconds(p.lifespan),
                    "liveliness": p.liveliness.name.lower(),
                    "liveliness_lease_duration": seconds(p.liveliness_lease_duration),
                    "avoid_ros_namespace_conventions": p.avoid_ros_namespace_conventions,
                }
                for p in publishers
            ]
        )
        if publishers
        else ""
    )


def _describe_qos(profile: QoSProfile) -> str:
    return f"{profile.reliability.name.lower()}, {profile.durability.name.lower()}"


class RecorderNode(ConfiguredNode):
    """The recorder; build it with ``create_recorder_node`` (or run ``main``)."""

    _writer: BagWriter | None = None  # set once configured: destroy_node closes it

    def _configure(self) -> None:
        settings = self._read_settings()
        self.settings = settings
        self._recordings: dict[str, _Recording] = {}
        self._unseen: list[str] | None = None  # wanted topics without a publisher, as logged
        self._warned: set[str] = set()
        self.before_clock = 0  # messages received while a simulated clock had not started
        try:
            self._writer = BagWriter(
                settings.output,
                max_queue_messages=settings.max_queue_messages,
                max_queue_bytes=settings.max_queue_bytes,
                flush_period=settings.flush_period,
            )
        except (BagWriteError, OSError) as error:
            raise ValueError(f"parameter output: cannot write a bag at {settings.output}: {error}") from None
        self._writer.set_metadata(METADATA_EMBODIMENT, settings.embodiment)
        self._writer.set_metadata(METADATA_INSTRUCTION, settings.instruction)
        self._writer.set_metadata(METADATA_INSTRUCTION_TOPIC, settings.instruction_topic)
        self._writer.set_metadata(METADATA_TOPIC_ROLES, topic_roles_text(settings.roles))
        # Written at the first time the node clock tells (a simulated clock may not run yet).
        self._instruction = String(data=settings.instruction) if settings.instruction else None
        self._error_reported = False
        self.get_logger().info(
            f"recording into {settings.output}: "
            + ", ".join(
                f"{role}s {sorted(t for t, r in settings.roles.items() if r == role)}"
                for role in TOPIC_ROLES
                if role in settings.roles.values()
            )
        )
        self._discover()
        # Steady timers: with use_sim_time they go on while /clock has not started or stopped.
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(settings.discovery_period, self._discover, clock=steady)
        self.create_timer(settings.stats_period, self._log_stats, clock=steady)

    # ---------------------------------------------------------------- parameters

    def _topics(self, values: dict[str, Any], name: str) -> list[str]:
        return [self._resolve(name, topic) for topic in values[name] or () if topic.strip()]

    def _resolve(self, parameter: str, topic: str) -> str:
        try:
            return self.resolve_topic_name(topic.strip())
        except RuntimeError as error:  # rclpy's RCLError
            raise ValueError(f"parameter {parameter}: invalid topic name {topic!r}: {error}") from None

    def _read_settings(self) -> RecorderSettings:
        values = read_parameters(NodeSource(self), RECORDER_SCHEMA)
        output_path = Path(values["output"] or time.strftime("lightwam_%Y%m%d_%H%M%S")).expanduser()
        if output_path.exists():
            raise ValueError(
                f"parameter output: {output_path.absolute()} already exists; name a new bag directory"
            )
        embodiment = values["embodiment"]
        derived = self._derived_topics(
            embodiment, values["policy_params_file"], values["executor_params_file"]
        )
        exclude = set(self._topics(values, "exclude"))
        roles: dict[str, str] = {}
        for role, topics in zip(
            TOPIC_ROLES,
            (
                self._topics(values, "input_topics") or self._derived(derived, "inputs"),
                self._topics(values, "output_topics") or self._derived(derived, "outputs"),
                self._topics(values, "topics"),
            ),
            strict=True,
        ):
            for topic in topics:
                roles.setdefault(topic, role)
        roles = {topic: role for topic, role in roles.items() if topic not in exclude}
        if not roles:
            raise ValueError(
                "nothing to record: set embodiment, input_topics/output_topics or "
                "topics (and not everything in exclude)"
            )
        instruction = values["instruction"]
        instruction_topic = values["instruction_topic"] or (derived.instruction if derived else "")
        if instruction and not instruction_topic:
            raise ValueError("parameter instruction needs instruction_topic or an embodiment")
        return RecorderSettings(
            output=output_path,
            embodiment=embodiment,
            instruction=instruction,
            instruction_topic=(
                self._resolve("instruction_topic", instruction_topic) if instruction_topic else ""
            ),
            roles=roles,
            max_queue_messages=values["max_queue_messages"],
            max_queue_bytes=int(values["max_queue_mb"] * _MIB),
            flush_period=values["flush_period"],
            discovery_period=values["discovery_period"],
            stats_period=values["stats_period"],
        )

    def _derived_topics(self, embodiment: str, policy_file: str, executor_file: str) -> RecordedTopics | None:
        """The topics in the embodiment's (or the given) policy and executor parameter files."""
        files = [policy_file, executor_file]
        if not embodiment and not all(files):
            if any(files):
                raise ValueError(
                    "parameters policy_params_file and executor_params_file: give both, or an embodiment"
                )
            return None
        policy, executor = (
            read_params(Path(path) if path else params_file(role, embodiment), NODE_KINDS[role].node_name)
            for role, path in zip((POLICY, EXECUTOR), files, strict=True)
        )
        return recorded_topics(policy, executor)

    def _derived(self, derived: RecordedTopics | None, kind: str) -> list[str]:
        topics = getattr(derived, kind) if derived is not None else ()
        return [self._resolve(f"{kind} of the parameter files", topic) for topic in topics]

    # ---------------------------------------------------------------- recording

    def _bag(self) -> BagWriter:
        """The open bag (set in __init__, dropped by destroy_node)."""
        if self._writer is None:
            raise RuntimeError("the recorder's bag is closed")
        return self._writer

    def _now_ns(self) -> int | None:
        """Node-clock time, or None while a simulated clock has not started; the instruction
        goes into the bag at the first time known."""
        now = self.get_clock().now().nanoseconds
        if now <= 0:
            return None
        if self._instruction is not None:
            self._bag().add_topic(
                self.settings.instruction_topic, STRING_TYPE, offered_qos=offered_qos_yaml([qos.LATCHED])
            )
            self._bag().offer(self.settings.instruction_topic, now, serialize_message(self._instruction))
            self._instruction = None
        return now

    def _discover(self) -> None:
        """Subscribe to wanted topics that have publishers now; weaken a subscription's QoS
        when a publisher it cannot match has appeared."""
        for topic, types in self.get_topic_names_and_types():
            if topic not in self.settings.roles or not types:
                continue
            publishers = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
            if not publishers:
                continue  # subscribers only so far: wait to see the publishers' QoS
            wanted = adapted_qos(publishers)
            current = self._recordings.get(topic)
            if current is None:
                self._subscribe(topic, types, wanted, offered_qos_yaml(publishers))
            elif _weaker(wanted, current.qos):
                self.destroy_subscription(current.subscription)
                del self._recordings[topic]
                self.get_logger().info(f"{topic}: a publisher offers less; resubscribing")
                self._subscribe(topic, [current.msgtype], wanted, "")
        self._now_ns()  # writes the instruction once the clock runs
        unseen = sorted(set(self.settings.roles) - set(self._recordings))
        if unseen != self._unseen:
            self._unseen = unseen
            if unseen:
                self.get_logger().info(f"no publisher yet on {unseen}")

    def _subscribe(self, topic: str, types: Sequence[str], profile: QoSProfile, offered_qos: str) -> None:
        msgtype = types[0]
        if len(types) > 1:
            self._warn_once(topic, f"{topic} has several types {list(types)}: recording {msgtype}")
        try:
            cls = message_class(msgtype)
            self._bag().add_topic(topic, msgtype, offered_qos=offered_qos)
        except (ValueError, BagWriteError) as error:
            self._warn_once(topic, f"not recording {topic}: {error}")
            return
        subscription = self.create_subscription(
            cls, topic, lambda data, topic=topic: self._on_message(topic, data), profile, raw=True
        )
        self._recordings[topic] = _Recording(msgtype, profile, subscription)
        self.get_logger().info(
            f"recording {topic} ({msgtype}, {_describe_qos(profile)}, {self.settings.roles[topic]})"
        )

    def _warn_once(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.get_logger().warning(text)

    def _on_message(self, topic: str, data: bytes) -> None:
        now = self._now_ns()
        if now is None:
            self.before_clock += 1
            return
        self._bag().offer(topic, now, data)

    # ---------------------------------------------------------------- reporting

    def _log_stats(self) -> None:
        stats = self._bag().stats()
        self.get_logger().info(
            f"recorded {stats.written} messages ({stats.bytes_written / _MIB:.1f} MiB) on "
            f"{len(self._recordings)} topics, dropped {stats.dropped}"
            + _dropped_text(stats)
            + (f"; {self.before_clock} before /clock started" if self.before_clock else "")
        )
        if self._bag().error and not self._error_reported:
            self._error_reported = True
            self.get_logger().error(f"the bag is no longer written: {self._bag().error}")

    def destroy_node(self) -> None:
        """Close the bag completely (queue drained, summary and metadata written) first."""
        writer, self._writer = self._writer, None
        if writer is None:
            super().destroy_node()
            return
        stats = writer.close()
        self.get_logger().info(_summary(self.settings.output, stats, writer.error))
        with teardown_deadline(self.get_name(), 0):  # the bag is complete
            super().destroy_node()


def _dropped_text(stats: WriterStats) -> str:
    dropped = {topic: count for topic, count in stats.dropped_per_topic.items() if count}
    return f" {dropped}" if dropped else ""


def _summary(output: Path, stats: WriterStats, error: str | None) -> str:
    lines = [
        f"bag {output} closed: {stats.written} messages "
        f"({stats.bytes_written / _MIB:.1f} MiB), {stats.dropped} dropped"
        + (f"; WRITING FAILED: {error}" if error else "")
    ]
    for topic in sorted(set(stats.per_topic) | set(stats.dropped_per_topic)):
        dropped = stats.dropped_per_topic.get(topic, 0)
        lines.append(
            f"  {topic}: {stats.per_topic.get(topic, 0)}" + (f" ({dropped} dropped)" if dropped else "")
        )
    return "\n".join(lines)


def create_recorder_node(
    node_name: str = NODE_NAME,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    parameter_overrides: Sequence[Parameter] | None = None,
) -> RecorderNode:
    """Build a configured recorder (rclpy must be initialised on ``context``); bad parameters
    raise ValueError (or rclpy's ParameterException) and leave no bag behind."""
    return RecorderNode(
        node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides
    )


def main(args: list[str] | None = None) -> int:
    """Record until SIGINT or SIGTERM, then close the bag; exit status 2 when the configuration
    is invalid."""
    return run_node(create_recorder_node, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
