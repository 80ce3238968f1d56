"""lightwam-replay over real DDS, on a bag written here with BagWriter (known log times): the
same bytes in the same order at the scaled timing, /clock following the bag time, the
recording's inputs by default, a start offset, looping, and bad bags refused with a message."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")
from bag_messages import CHUNK, IMAGE, JOINTS, STRING, chunk, image, joints, on_the_wire, string  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from ros_harness import fresh_ros_context, spin_in_background, wait_until  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lightwam_ros.bags.reader import BagReader  # noqa: E402
from lightwam_ros.bags.writer import BagWriter  # noqa: E402
from lightwam_ros.msg import ActionChunk  # noqa: E402
from lightwam_ros.nodes import bag_replay  # noqa: E402
from lightwam_ros.nodes.recorder_node import offered_qos_yaml  # noqa: E402
from lightwam_ros.ros.stamps import stamp_to_nanoseconds  # noqa: E402
from lightwam_ros.tools.launch.child_process import ChildProcess  # noqa: E402

ros_context = pytest.fixture(fresh_ros_context)
T0 = 1_700_000_000_000_000_000
S = 1_000_000_000
CAMERA, JOINT_TOPIC, INSTRUCTION, CHUNKS = (
    "/camera/head/image_raw",
    "/joint_states",
    "/lightwam/instruction",
    "/lightwam/action_chunk",
)
CLASSES = {CAMERA: Image, JOINT_TOPIC: JointState, INSTRUCTION: String, CHUNKS: ActionChunk}
# topic -> [(log time, bytes)]: the bytes as a recording from DDS holds them (padded to 4).
MESSAGES = {
    CAMERA: [(T0 + k * S // 5, on_the_wire(image(k))) for k in range(10)],
    JOINT_TOPIC: [(T0 + S // 20 + k * S // 10, on_the_wire(joints(k))) for k in range(20)],
    INSTRUCTION: [(T0, on_the_wire(string("beat the block")))],
    CHUNKS: [(T0 + S // 10 + k * 2 * S // 5, on_the_wire(chunk(k))) for k in range(5)],
}
TYPES = {CAMERA: IMAGE, JOINT_TOPIC: JOINTS, INSTRUCTION: STRING, CHUNKS: CHUNK}
ROLES = {CAMERA: "input", JOINT_TOPIC: "input", INSTRUCTION: "input", CHUNKS: "output"}
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    """A recording as lightwam-record makes one: roles, instruction, a latched output."""
    path = tmp_path_factory.mktemp("replay") / "bag"
    with BagWriter(path) as writer:
        for topic, msgtype in TYPES.items():
            writer.add_topic(
                topic, msgtype, offered_qos=offered_qos_yaml([LATCHED]) if topic == CHUNKS else ""
            )
        writer.set_metadata("topic_roles", json.dumps(ROLES))
        writer.set_metadata("instruction_topic", INSTRUCTION)
        for topic, time_ns, data in sorted(
            (topic, t, data) for topic, items in MESSAGES.items() for t, data in items
        ):
            writer.offer(topic, time_ns, data)
    return path


class Listener:
    """Raw subscriptions to the bag's topics and /clock, with arrival times."""

    def __init__(self, context) -> None:
        self.node = Node("replay_test_listener", context=context)
        self.received: dict[str, list[bytes]] = {topic: [] for topic in CLASSES}
        self.arrivals: list[tuple[float, str]] = []
        self.clock: list[int] = []
        for topic, cls in CLASSES.items():
            self.node.create_subscription(
                cls, topic, lambda data, topic=topic: self._on(topic, data), QoSProfile(depth=1000), raw=True
            )
        self.node.create_subscription(
            Clock,
            "/clock",
            lambda msg: self.clock.append(stamp_to_nanoseconds(msg.clock)),
            QoSProfile(depth=1000),
        )
        self.executor, self.thread = spin_in_background(context, [self.node])

    def _on(self, topic: str, data: bytes) -> None:
        self.received[topic].append(data)
        self.arrivals.append((time.monotonic(), topic))

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=5)
        self.node.destroy_node()


@pytest.fixture
def listener(ros_context):
    listener = Listener(ros_context)
    yield listener
    listener.close()


class Replay(ChildProcess):
    """``python -m lightwam_ros.nodes.bag_replay ARGS`` with its output lines collected."""

    def __init__(self, *args: object) -> None:
        self.lines: list[str] = []
        super().__init__(
            [sys.executable, "-u", "-m", "lightwam_ros.nodes.bag_replay", *map(str, args)],
            self.lines.append,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        self.start_reading()

    def finish(self) -> int:
        """The exit status once it ends by itself (the bag is done)."""
        try:
            self.process.wait(timeout=RUN_TIMEOUT)
        finally:
            code = self.stop()
            print("lightwam-replay output:", *self.lines, sep="\n  ")
        return code


def _bytes(topic: str, since_ns: int = 0) -> list[bytes]:
    return [data for time_ns, data in MESSAGES[topic] if time_ns >= T0 + since_ns]


def test_all_topics_at_rate_two_arrive_byte_for_byte_in_order_with_the_bag_clock(bag, listener):
    code = Replay(bag, "--rate", "2", "--all-topics", "--wait-for-subscribers", "1").finish()
    assert code == 0
    wait_until(
        lambda: all(len(listener.received[t]) == len(MESSAGES[t]) for t in MESSAGES),
        10,
        "every message of the bag",
    )
    assert listener.received == {topic: _bytes(topic) for topic in MESSAGES}
    # Timing: the recorded spacing, halved.
    log_times = sorted(t for items in MESSAGES.values() for t, _ in items)
    expected_span = (log_times[-1] - log_times[0]) * 1e-9 / 2
    arrived = [t for t, _ in listener.arrivals]
    assert expected_span * 0.9 <= arrived[-1] - arrived[0] <= expected_span + 0.5
    # /clock: the bag time, never going back, given before every message.
    wait_until(
        lambda: listener.clock and listener.clock[-1] == log_times[-1], 10, "the clock at the last message"
    )
    assert listener.clock == sorted(listener.clock) and listener.clock[0] >= T0
    assert set(log_times) <= set(listener.clock)
    assert len(listener.clock) > len(set(log_times))  # ticks between the messages too


def test_by_default_the_inputs_from_the_start_offset_and_the_instruction_are_replayed(bag, listener):
    replay = Replay(bag, "--rate", "4", "--start-offset", "1.0", "--wait-for-subscribers", "1", "--no-clock")
    assert replay.finish() == 0
    expected = {
        CAMERA: _bytes(CAMERA, S),
        JOINT_TOPIC: _bytes(JOINT_TOPIC, S),
        INSTRUCTION: _bytes(INSTRUCTION),
        CHUNKS: [],
    }  # the output is not replayed
    wait_until(
        lambda: all(len(listener.received[t]) == len(expected[t]) for t in expected),
        10,
        "the replayed inputs",
    )
    assert listener.received == expected and listener.clock == []
    output = "\n".join(replay.lines)
    assert f"done: {sum(map(len, expected.values()))} messages" in output
    assert CHUNKS not in output


def test_loop_starts_again_until_interrupted(bag, listener):
    replay = Replay(
        bag,
        "--loop",
        "--rate",
        "4",
        "--topics",
        JOINT_TOPIC,
        CHUNKS,
        INSTRUCTION,
        "--no-clock",
        "--wait-for-subscribers",
        "1",
    )
    try:
        count = len(MESSAGES[JOINT_TOPIC])
        wait_until(
            lambda: len(listener.received[JOINT_TOPIC]) >= 2 * count, RUN_TIMEOUT, "two passes over the bag"
        )
        durability = {
            topic: {info.qos_profile.durability for info in listener.node.get_publishers_info_by_topic(topic)}
            for topic in (JOINT_TOPIC, CHUNKS, INSTRUCTION)
        }
    finally:
        code = replay.stop()
        print("lightwam-replay output:", *replay.lines, sep="\n  ")
    received = listener.received[JOINT_TOPIC]
    assert received[:count] == received[count : 2 * count] == _bytes(JOINT_TOPIC)
    assert code == 0
    assert any(re.search(r"loop 2: the bag time jumps back", line) for line in replay.lines)
    assert any("[lightwam-replay] stopped: " in line for line in replay.lines)
    # Recorded from a transient-local publisher, or the instruction: latched; the rest volatile.
    assert durability == {
        JOINT_TOPIC: {DurabilityPolicy.VOLATILE},
        CHUNKS: {DurabilityPolicy.TRANSIENT_LOCAL},
        INSTRUCTION: {DurabilityPolicy.TRANSIENT_LOCAL},
    }


def test_a_damaged_bag_is_replayed_as_far_as_it_is_readable(tmp_path):
    """2.8 MB of images make several 1 MiB chunks; the file is cut inside one of them."""
    damaged = tmp_path / "damaged"
    with BagWriter(damaged) as writer:
        writer.add_topic(CAMERA, IMAGE)
        for k in range(12):
            writer.offer(CAMERA, T0 + k * S // 10, image(k, size=(240, 320)))
    (damaged / "metadata.yaml").unlink()  # as after a kill -9
    mcap = next(damaged.glob("*.mcap"))
    os.truncate(mcap, mcap.stat().st_size * 2 // 3)
    with BagReader(damaged) as reader:
        readable = sum(1 for _ in reader.messages())
    assert 0 < readable < 12
    replay = Replay(damaged, "--rate", "20", "--no-clock")  # no metadata: a foreign bag
    assert replay.finish() == 0
    output = "\n".join(replay.lines)
    assert "bag problem, truncated" in output and "Traceback" not in output
    assert f"done: {readable} messages" in output


@pytest.mark.parametrize(
    "make_args, reason",
    [
        (lambda bag, tmp: [tmp / "missing"], "does not exist"),
        (lambda bag, tmp: [_garbage(tmp)], "not a readable bag"),
        (lambda bag, tmp: [bag, "--topics", "/nope"], r"not in the bag: \['/nope'\]"),
        (lambda bag, tmp: [bag, "--start-offset", "5"], "past the bag's end"),
    ],
)
def test_bags_that_cannot_be_replayed_give_a_message_and_status_2(bag, tmp_path, capsys, make_args, reason):
    assert bag_replay.main([str(arg) for arg in make_args(bag, tmp_path)]) == 2
    captured = capsys.readouterr()
    assert re.search(reason, captured.err), captured
    assert "Traceback" not in captured.err + captured.out


def _garbage(folder: Path) -> Path:
    bad = folder / "garbage"
    bad.mkdir()
    (bad / "x.mcap").write_bytes(os.urandom(4096))
    return bad
