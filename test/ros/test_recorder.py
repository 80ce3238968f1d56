"""lightwam-record over real DDS: what a test-side node publishes arrives in the bag byte for
byte; SIGINT closes a bag that rosbags itself reads; after a kill -9 the project's reader
recovers all but the last flush period; a bring-up with --record records inputs and outputs
with their roles."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

rclpy = pytest.importorskip("rclpy")
from bag_messages import chunk, image, joints, on_the_wire, string  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, qos_profile_sensor_data  # noqa: E402
from ros_harness import ALOHA_TASK, NodeProcess, fresh_ros_context, wait_until  # noqa: E402
from rosbags.rosbag2 import Reader  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from lightwam_ros.bags.reader import BagReader  # noqa: E402
from lightwam_ros.msg import ActionChunk  # noqa: E402
from lightwam_ros.nodes import recorder_node  # noqa: E402
from lightwam_ros.policy.embodiment import default_camera_topic, load_embodiment  # noqa: E402
from lightwam_ros.ros.param_files import params_file  # noqa: E402

ros_context = pytest.fixture(fresh_ros_context)
BRINGUP = Path(sys.executable).with_name("lightwam-bringup")
FAST = {"discovery_period": 0.2, "stats_period": 0.2}
COUNT = 8  # messages per topic
LATCHED_TASK = "stack the cups"  # published transient-local before the recorder starts
CAMERA, JOINTS, INSTRUCTION, CHUNKS = (
    "/camera/head/image_raw",
    "/joint_states",
    "/lightwam/instruction",
    "/lightwam/action_chunk",
)


class Source:
    """The test's publishers (reliable; the instruction transient-local), which publish
    serialized messages, and the bytes DDS carried to other processes."""

    def __init__(self, context) -> None:
        self.node = Node("recorder_test_source", context=context)
        reliable = QoSProfile(depth=100)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.publishers = {
            CAMERA: self.node.create_publisher(Image, CAMERA, reliable),
            JOINTS: self.node.create_publisher(JointState, JOINTS, reliable),
            CHUNKS: self.node.create_publisher(ActionChunk, CHUNKS, reliable),
            INSTRUCTION: self.node.create_publisher(String, INSTRUCTION, latched),
        }
        self.sent: dict[str, list[bytes]] = {topic: [] for topic in self.publishers}

    def publish(self, topic: str, data: bytes) -> None:
        self.sent[topic].append(on_the_wire(data))
        self.publishers[topic].publish(data)

    def wait_for_recorder(self) -> None:
        wait_until(
            lambda: all(p.get_subscription_count() for p in self.publishers.values()),
            15,
            "the recorder's subscriptions to every topic",
        )


@pytest.mark.parametrize(
    "parameters, reason",
    [
        ({"output": "{tmp}"}, "already exists; name a new bag directory"),
        ({}, "nothing to record"),
        ({"embodiment": "ur5"}, "unknown embodiment 'ur5'"),
        ({"policy_params_file": "p.yaml"}, "give both, or an embodiment"),
        ({"topics": ["bad topic"]}, "parameter topics: invalid topic name 'bad topic'"),
        ({"topics": ["/a"], "flush_period": 0.0}, "flush_period must be > 0"),
        ({"topics": ["/a"], "instruction": "go"}, "instruction needs instruction_topic"),
    ],
)
def test_a_bad_configuration_is_refused_with_its_reason_and_writes_nothing(
    tmp_path, ros_context, parameters, reason
):
    overrides = [
        Parameter(name, value=str(value).format(tmp=tmp_path) if isinstance(value, str) else value)
        for name, value in {"output": str(tmp_path / "bag"), **parameters}.items()
    ]
    with pytest.raises(ValueError, match=re.escape(reason)):
        recorder_node.create_recorder_node(context=ros_context, parameter_overrides=overrides)
    assert not (tmp_path / "bag").exists()


def _written(recorder: NodeProcess) -> int:
    counts = [
        int(m.group(1)) for line in recorder.lines if (m := re.search(r"recorded (\d+) messages", line))
    ]
    return counts[-1] if counts else 0


def test_sigint_closes_a_complete_bag_holding_the_published_bytes(tmp_path, ros_context):
    bag = tmp_path / "bag"
    source = Source(ros_context)
    source.publish(INSTRUCTION, string(LATCHED_TASK))  # before the recorder exists
    recorder = NodeProcess(
        "recorder_node", {"embodiment": "robotwin_aloha", "output": bag, "instruction": ALOHA_TASK, **FAST}
    )
    try:
        source.wait_for_recorder()
        for i in range(COUNT):
            source.publish(CAMERA, image(i))
            source.publish(JOINTS, joints(i))
            source.publish(CHUNKS, chunk(i))
        # The recorder's own instruction, the latched one and COUNT of each of the others.
        wait_until(
            lambda: _written(recorder) == 2 + 3 * COUNT, 15, "the recorder to have written every message"
        )
    finally:
        code = recorder.stop()
        source.node.destroy_node()
    assert code == 0
    assert any(re.search(rf"bag .* closed: {2 + 3 * COUNT} messages", line) for line in recorder.lines)
    assert any(
        f"recording {INSTRUCTION} (std_msgs/msg/String, reliable, transient_local" in line
        for line in recorder.lines
    )  # so the latched instruction sent before it came too

    with Reader(bag) as reader:  # rosbags' own reader: the bag is complete
        recorded = {topic: [] for topic in source.sent}
        for connection, _, data in reader.messages():
            recorded[connection.topic].append(bytes(data))
        types = {c.topic: c.msgtype for c in reader.connections}
        latched_qos = next(c.ext.offered_qos_profiles for c in reader.connections if c.topic == INSTRUCTION)
    # The recorder's own instruction first, as it serialized it; the rest as DDS carried it.
    expected = {**source.sent, INSTRUCTION: [string(ALOHA_TASK), *source.sent[INSTRUCTION]]}
    assert recorded == expected
    assert types[CHUNKS] == "lightwam_ros/msg/ActionChunk"
    assert [qos.durability.name for qos in latched_qos] == ["TRANSIENT_LOCAL"]
    with BagReader(bag) as reader:
        custom = reader.metadata
    assert custom["embodiment"] == "robotwin_aloha" and custom["instruction"] == ALOHA_TASK
    roles = json.loads(custom["topic_roles"])
    assert {topic: roles[topic] for topic in source.sent} == {
        CAMERA: "input",
        JOINTS: "input",
        INSTRUCTION: "input",
        CHUNKS: "output",
    }
    assert roles["/joint_trajectory_controller/joint_trajectory"] == "output"
    assert roles["/diagnostics"] == "output"


def test_a_killed_recorder_leaves_all_but_the_last_flush_period(tmp_path, ros_context):
    bag, flush_period = tmp_path / "bag", 0.3
    source = Source(ros_context)
    sent_at: list[float] = []
    recorder = NodeProcess(
        "recorder_node", {"topics": f"[{JOINTS}]", "output": bag, "flush_period": flush_period, **FAST}
    )
    running = threading.Event()
    running.set()

    def publish_forever() -> None:
        i = 0
        while running.is_set():
            source.publish(JOINTS, joints(i))
            sent_at.append(time.monotonic())
            i += 1
            time.sleep(0.01)

    wait_until(lambda: source.publishers[JOINTS].get_subscription_count(), 15, "the recorder's subscription")
    publisher = threading.Thread(target=publish_forever, daemon=True)
    publisher.start()
    try:
        wait_until(lambda: _written(recorder) >= 250, 20, "250 messages written")
        recorder.process.kill()
        killed_at = time.monotonic()
        recorder.process.wait(timeout=10)
    finally:
        running.clear()
        publisher.join(timeout=5)
        recorder.stop()
        source.node.destroy_node()

    with BagReader(bag) as reader:
        recovered = [message.data for message in reader.messages([JOINTS])]
        kinds = {problem.kind for problem in reader.problems}
        assert reader.recovered and kinds & {"truncated", "unreadable"}, reader.problems
    sent = source.sent[JOINTS]
    assert recovered == sent[: len(recovered)]  # a prefix, byte for byte
    # Everything received a flush period (and a margin for a busy machine) before the kill.
    settled = sum(t < killed_at - flush_period - 1.0 for t in sent_at)
    assert len(recovered) >= settled >= 50


def test_a_best_effort_publisher_appearing_later_is_recorded_too(tmp_path, ros_context):
    """The recorder subscribed reliably to a reliable publisher; a best-effort one that comes
    later would never reach that subscription, so the recorder subscribes again."""
    bag = tmp_path / "bag"
    source = Source(ros_context)
    recorder = NodeProcess("recorder_node", {"topics": f"[{JOINTS}]", "output": bag, **FAST})
    try:
        recorder.wait_for_log(rf"recording {JOINTS} .*reliable, volatile", timeout=15)
        late = source.node.create_publisher(JointState, JOINTS, qos_profile_sensor_data)
        recorder.wait_for_log(f"{JOINTS}: a publisher offers less; resubscribing", timeout=15)
        recorder.wait_for_log(rf"recording {JOINTS} .*best_effort, volatile", timeout=15)
        wait_until(lambda: late.get_subscription_count(), 15, "the new subscription")
        late.publish(joints(7))
        wait_until(lambda: _written(recorder) >= 1, 15, "the best-effort message written")
    finally:
        code = recorder.stop()
        source.node.destroy_node()
    assert code == 0
    with BagReader(bag) as reader:
        assert [m.data for m in reader.messages()] == [on_the_wire(joints(7))]


def test_bringup_with_record_records_inputs_and_outputs_with_their_roles(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("bringup_record")
    bag = workdir / "run"
    result = subprocess.run(
        [
            str(BRINGUP),
            "--processes",
            "separate",
            "--tiny",
            "--loopback-robot",
            "--duration",
            "3",
            "--startup-timeout",
            "120",
            "--workdir",
            str(workdir),
            "--record",
            str(bag),
            # Fewer camera frames: 20 MB/s of images would only slow the 2-core machine down.
            "--params",
            "policy:warmup:=1",
            "robot:camera_rate:=10",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(result.stdout[-5000:], result.stderr[-3000:])
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"started recorder \(pid \d+\)", result.stdout)
    assert re.search(r"recorder \(pid \d+\) exited with status 0", result.stdout)

    policy_file = params_file("policy", "robotwin_aloha")
    policy = yaml.safe_load(policy_file.read_text())["lightwam_policy"]["ros__parameters"]
    with BagReader(bag) as reader:
        assert reader.problems == [] and not reader.recovered
        roles = json.loads(reader.metadata["topic_roles"])
        assert reader.metadata["instruction"] == policy["instruction"]
        inputs = {t for t, role in roles.items() if role == "input"}
        # The policy file leaves the cameras on their default topics.
        cameras = load_embodiment("robotwin_aloha").canvas.cameras
        assert inputs == {"/" + default_camera_topic(camera.role) for camera in cameras} | {
            JOINTS,
            INSTRUCTION,
        }
        for topic in (
            *inputs,
            CHUNKS,
            "/joint_trajectory_controller/joint_trajectory",
            "/lightwam/policy_status",
            "/diagnostics",
        ):
            assert reader.counts.get(topic, 0) > 0, (topic, reader.counts)
        assert roles[CHUNKS] == roles["/joint_trajectory_controller/joint_trajectory"] == "output"
        chunk = reader.decode(next(reader.messages([CHUNKS])))
        assert chunk.embodiment == "robotwin_aloha"
        instruction = reader.decode(next(reader.messages([INSTRUCTION])))
        assert instruction.data == policy["instruction"]
