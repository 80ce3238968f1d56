"""A recorded bring-up run, checked offline and replayed through the policy node: the same
observations give the same chunks (the tiny preset is deterministic on the CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from ros_harness import NodeProcess, fresh_ros_context, spin_in_background, wait_until
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Empty

from lightwam_ros.bags.reader import BagReader
from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.policy.runner import PolicyRunner
from lightwam_ros.ros.param_files import params_file
from lightwam_ros.ros.stamps import stamp_to_nanoseconds
from lightwam_ros.tools.assets.model_files import ensure_tiny_package
from lightwam_ros.tools.launch.child_process import ChildProcess
from lightwam_ros.tools.offline.bag_observations import BagInputs, policy_settings

EMBODIMENT = "robotwin_aloha"
TOLERANCE = 1e-5  # same inputs, same threads: the chunks agree to float rounding at most


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, dict[int, np.ndarray], float]:
    """A bring-up run (tiny preset, loopback robot) recorded to a bag: (bag, live chunks by stamp
    [ns], seconds from the bag's start to its first chunk)."""
    bag = tmp_path_factory.mktemp("recording") / "run"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightwam_ros.tools.launch.bringup",
            "--embodiment",
            EMBODIMENT,
            "--loopback-robot",
            "--duration",
            "5",
            "--record",
            str(bag),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    chunks: dict[int, np.ndarray] = {}
    first_chunk_ns = None
    with BagReader(bag) as reader:
        assert not [p for p in reader.problems if p.kind in ("truncated", "unreadable")]
        chunk_topic = next(
            t
            for t, kind in reader.topics.items()
            if kind == "lightwam_ros/msg/ActionChunk" and "shadow" not in t
        )
        for message in reader.messages([chunk_topic]):
            msg = deserialize_message(message.data, ActionChunk)
            chunks[stamp_to_nanoseconds(msg.header.stamp)] = np.asarray(msg.actions).reshape(
                msg.horizon, msg.action_dim
            )
            first_chunk_ns = first_chunk_ns or message.log_time_ns
        start_ns = reader.start_ns
    assert len(chunks) >= 3, f"the recording holds {len(chunks)} chunks"
    return bag, chunks, (first_chunk_ns - start_ns) * 1e-9


def tiny_settings():
    model = ensure_tiny_package(EMBODIMENT)
    settings = policy_settings(
        params_file("policy", EMBODIMENT),
        overrides={
            "checkpoint": str(model.checkpoint),
            "instruction_cache": str(model.instruction_cache),
            "device": "cpu",
        },
    )
    return model, settings


def test_offline_check_rebuilds_every_live_observation_and_its_chunk(recorded, tmp_path):
    bag, live, _ = recorded
    model, settings = tiny_settings()
    runner = PolicyRunner.from_files(
        model.checkpoint, model.instruction_cache, EMBODIMENT, device="cpu", warmup=1
    )
    with BagReader(bag) as reader:
        inputs = BagInputs(reader, settings)
        run = inputs.scan()
        assert run.instruction == settings.instruction
        observed = dict(inputs.observations([ns * 1e-9 for ns in live]))
    assert len(observed) == len(live)
    # The bring-up starts the policy once the recorder records its inputs (recording_gate):
    # every live chunk's observation is in the bag.
    problems = {ns: observation for ns, observation in observed.items() if isinstance(observation, str)}
    assert not problems, problems
    for stamp_ns, actions in live.items():
        observation = observed[stamp_ns * 1e-9]
        assert not isinstance(observation, str)
        predicted = runner.predict(observation.images, observation.state, run.instruction).chunk.actions
        np.testing.assert_allclose(predicted, actions, atol=TOLERANCE)

    from lightwam_ros.tools.offline.offline_check import main as offline_check

    out = tmp_path / "report"
    assert (
        offline_check(
            [
                str(bag),
                "--checkpoint",
                str(model.checkpoint),
                "--instructions",
                str(model.instruction_cache),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    figures = json.loads((out / "figures.json").read_text())
    assert figures["counts"]["chunks"] == len(live)
    assert {"report.md", "report.html"} <= {path.name for path in out.iterdir()}
    assert len(list(out.glob("*.png"))) >= 3


class FrameRequester:
    """Asks the policy for a chunk for each scene frame the live run used, once the frame's
    joint state is in too (the first joint state stamped after the frame: the bag plays them in
    recorded order, which may put a joint state just before the frame after it), and before the
    next frame; so the replayed policy works on exactly the live run's observations.  Collects
    the chunks."""

    def __init__(self, node, live_stamps: set[int]) -> None:
        self.live_stamps = live_stamps
        self.pending: int | None = None
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.ready = threading.Event()
        self._request = node.create_publisher(Empty, "lightwam/request_chunk", 10)
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(Image, "camera/head/image_raw", self._on_frame, reliable)
        node.create_subscription(JointState, "joint_states", self._on_joint_state, reliable)
        node.create_subscription(ActionChunk, "lightwam/action_chunk", self._on_chunk, 10)
        # Latched: with use_sim_time and no /clock yet, the status timer does not run, so the
        # READY published on the state change is the only one.
        node.create_subscription(
            PolicyStatus,
            "lightwam/policy_status",
            self._on_status,
            QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL),
        )

    def _on_frame(self, msg: Image) -> None:
        stamp = stamp_to_nanoseconds(msg.header.stamp)
        self.pending = stamp if stamp in self.live_stamps else None

    def _on_joint_state(self, msg: JointState) -> None:
        if self.pending is not None and stamp_to_nanoseconds(msg.header.stamp) > self.pending:
            self.pending = None
            self._request.publish(Empty())

    def _on_chunk(self, msg: ActionChunk) -> None:
        self.chunks.append(
            (
                stamp_to_nanoseconds(msg.header.stamp),
                np.asarray(msg.actions).reshape(msg.horizon, msg.action_dim),
            )
        )

    def _on_status(self, msg: PolicyStatus) -> None:
        if msg.state in (PolicyStatus.READY, PolicyStatus.WAITING_FOR_INPUT):
            self.ready.set()


@pytest.fixture
def ros_context():
    yield from fresh_ros_context()


def test_replayed_bag_gives_the_live_chunks_again_also_after_a_loop(recorded, ros_context):
    bag, live, first_chunk_offset = recorded
    model, settings = tiny_settings()
    policy = NodeProcess(
        "policy_node",
        {
            "checkpoint": model.checkpoint,
            "instruction_cache": model.instruction_cache,
            "embodiment": EMBODIMENT,
            "device": "cpu",
            "warmup": 1,
            "trigger": "request",
            "instruction": settings.instruction,
            "use_sim_time": True,
            "cameras.head.reliable": True,
            "cameras.left_wrist.reliable": True,
            "cameras.right_wrist.reliable": True,
        },
        params_file=params_file("policy", EMBODIMENT),
    )
    import rclpy

    node = rclpy.create_node("replay_check", context=ros_context)
    requester = FrameRequester(node, set(live))
    executor, _ = spin_in_background(ros_context, [node])
    replay = None
    try:
        assert requester.ready.wait(120), "the policy did not become ready"
        replay = ChildProcess(
            [
                sys.executable,
                "-m",
                "lightwam_ros.nodes.bag_replay",
                str(bag),
                "--rate",
                "0.5",
                "--loop",
                "--start-offset",
                f"{max(0.0, first_chunk_offset - 1.0):.3f}",
            ],
            lambda line: None,
        )
        replay.start_reading()

        def matched() -> list[int]:
            return [stamp for stamp, _ in requester.chunks if stamp in live]

        # Two passes: stamps seen twice come from the loop's second pass (time jumped back).
        wait_until(
            lambda: len(matched()) >= 3 and len(set(matched())) < len(matched()),
            150,
            "replayed chunks for live frames in both passes of the loop",
        )
        for stamp, actions in requester.chunks:
            if stamp in live:
                np.testing.assert_allclose(actions, live[stamp], atol=TOLERANCE)
    finally:
        if replay is not None:
            replay.stop()
        executor.shutdown()
        node.destroy_node()
        policy.stop()


def test_recording_becomes_a_training_episode(recorded, tmp_path):
    bag, _, _ = recorded
    from safetensors import safe_open

    from lightwam_ros.tools.offline.bag_to_samples import main as bag_to_samples

    assert bag_to_samples([str(bag), "--out", str(tmp_path)]) == 0
    with safe_open(str(tmp_path / "episode_0000.safetensors"), framework="numpy") as episode:
        meta = episode.metadata()
        tensors = {key: episode.get_tensor(key) for key in episode.keys()}
    steps = len(tensors["timestamps"])
    _, settings = tiny_settings()
    dt = 1.0 / settings.spec.policy_rate_hz
    assert meta["embodiment"] == EMBODIMENT and meta["instruction"] == settings.instruction
    assert np.all(np.diff(tensors["timestamps"]) >= dt - 1e-6)  # thinned to the policy rate
    assert steps >= 10
    for camera in settings.cameras:
        assert tensors[f"images.{camera.role}"].shape[0] == steps
        assert tensors[f"images.{camera.role}"].dtype == np.uint8
    assert tensors["state"].shape == (steps, settings.spec.state_dim)
    chunks, mask = tensors["action_chunks"], tensors["action_mask"]
    assert chunks.shape == (steps, settings.spec.chunk.length, settings.spec.action_dim)
    # Absolute joints: step i of the chunk at t is the state recorded at t + (i+1) dt, so the
    # chunk at step k, i steps on, agrees with the state observed i+1 steps later (same frames).
    valid = mask[:-1, 0]
    assert valid.any() and not mask[-1].all()  # the end of the episode is masked out
    np.testing.assert_allclose(chunks[:-1, 0][valid], tensors["state"][1:][valid], atol=0.1)
