"""lightwam-offline-check on generated bags: a full report from a good one, and a clear message
with a partial report - never a traceback - from damaged or incomplete ones."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from builtin_interfaces.msg import Duration
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from safetensors import safe_open
from std_msgs.msg import String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from lightwam_ros.bags.typestore import project_typestore
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.image_conversion import rgb_to_image
from lightwam_ros.ros.joint_state import make_joint_state
from lightwam_ros.ros.stamps import nanoseconds_to_stamp
from lightwam_ros.tools.assets.model_files import ensure_tiny_package
from lightwam_ros.tools.offline.bag_to_samples import executor_command_topic
from lightwam_ros.tools.offline.bag_to_samples import main as bag_to_samples
from lightwam_ros.tools.offline.offline_check import main as offline_check
from lightwam_ros.train.config import config_from_dict
from lightwam_ros.train.episodes import load_episode
from lightwam_ros.train.loop import Trainer

START_NS = 1_700_000_000_000_000_000
TASK = "beat the block with the hammer"
JOINTS = [f"f{side}_joint{i}" for side in "lr" for i in range(1, 8)]
CAMERAS = ("head", "left_wrist", "right_wrist")
SECONDS = 2.0
COMMAND_TOPIC = executor_command_topic("robotwin_aloha")  # what bag-to-samples reads by default


def scene(t: float, role: str) -> np.ndarray:
    """A synthetic frame that changes over time (the canvas resizes it); 48 KB, so the bag
    spans several 1 MiB MCAP chunks and a cut file keeps its first ones."""
    rgb = np.zeros((128, 128, 3), dtype=np.uint8)
    rgb[..., CAMERAS.index(role)] = 60
    rgb[:, : int(10 + 100 * (t / SECONDS)), 1] = 200
    return rgb


def joints(t: float) -> list[float]:
    q = 0.3 * np.sin(2 * math.pi * 0.5 * t + np.arange(14))
    q[[6, 13]] = 0.02  # gripper joints (m)
    return q.tolist()


def write_bag(
    path: Path,
    *,
    cameras=CAMERAS,
    backwards_at: float | None = None,
    mystery: bool = False,
    commands_from: float | None = None,
) -> Path:
    """Cameras at 10 Hz, joint states at 50 Hz, the instruction once; optionally joint stamps
    that jump back at ``backwards_at``, a topic of a type nobody has installed, and from
    ``commands_from`` (s) on the executor's JointTrajectory commands, one per joint state, each
    naming the next step's joints."""
    store = project_typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        topics = {
            role: bag.add_connection(f"/camera/{role}/image_raw", "sensor_msgs/msg/Image", typestore=store)
            for role in cameras
        }
        state = bag.add_connection("/joint_states", "sensor_msgs/msg/JointState", typestore=store)
        task = bag.add_connection("/lightwam/instruction", "std_msgs/msg/String", typestore=store)
        bag.write(task, START_NS, serialize_message(String(data=TASK)))
        if mystery:
            gizmo = bag.add_connection(
                "/gizmo", "acme_msgs/msg/Gizmo", msgdef="", rihs01="RIHS01_" + "0" * 64
            )
        if commands_from is not None:
            commands = bag.add_connection(
                COMMAND_TOPIC, "trajectory_msgs/msg/JointTrajectory", typestore=store
            )
        for k in range(int(SECONDS * 50)):
            t = k / 50
            stamp_ns = START_NS + int(t * 1e9)
            log_ns = stamp_ns + 2_000_000
            shifted = stamp_ns - (500_000_000 if backwards_at is not None and t >= backwards_at else 0)
            bag.write(
                state,
                log_ns,
                serialize_message(make_joint_state(JOINTS, joints(t), nanoseconds_to_stamp(shifted))),
            )
            if commands_from is not None and t >= commands_from:
                step = JointTrajectoryPoint(
                    positions=joints(t + 0.02), time_from_start=Duration(nanosec=20_000_000)
                )
                command = JointTrajectory(joint_names=JOINTS, points=[step])
                command.header.stamp = nanoseconds_to_stamp(stamp_ns)
                bag.write(commands, log_ns, serialize_message(command))
            if k % 5 == 0:
                for role, connection in topics.items():
                    bag.write(
                        connection,
                        log_ns + 1,
                        serialize_message(
                            rgb_to_image(scene(t, role), nanoseconds_to_stamp(stamp_ns), f"{role}_camera")
                        ),
                    )
                if mystery:
                    bag.write(gizmo, log_ns + 2, b"\x00\x01\x00\x00opaque")
    return path


@pytest.fixture(scope="module")
def model():
    return ensure_tiny_package("robotwin_aloha")


def check(model, bag: Path, out: Path, capsys, observations: int = 1) -> tuple[int, dict, str]:
    code = offline_check(
        [
            str(bag),
            "--checkpoint",
            str(model.checkpoint),
            "--instructions",
            str(model.instruction_cache),
            "--embodiment",
            "robotwin_aloha",
            "--out",
            str(out),
            "--max-observations",
            str(observations),
        ]
    )
    printed = capsys.readouterr()
    return code, json.loads((out / "figures.json").read_text()), printed.out + printed.err


def problem_kinds(figures: dict) -> set[str]:
    return {problem["kind"] for problem in figures["problems"]}


def test_generated_bag_gives_a_full_report(model, tmp_path, capsys):
    bag = write_bag(tmp_path / "good")
    code, figures, printed = check(model, bag, tmp_path / "report", capsys, observations=3)
    assert code == 0, printed
    assert figures["counts"]["chunks"] == 3  # --max-observations
    assert figures["counts"]["chunks_compared_with_reference"] == 3
    assert figures["vs_reference"] is not None
    assert any("live" in line for line in figures["missing"])  # the bag holds no live chunks
    for name in (
        "predicted_vs_recorded.png",
        "error_heatmap.png",
        "latency_histogram.png",
        "report.md",
        "report.html",
    ):
        assert (tmp_path / "report" / name).stat().st_size > 1000, name
    assert not problem_kinds(figures) - {"gap"}


@pytest.mark.parametrize(
    "damage, kind, usable",
    [
        ("truncated", "truncated", True),
        ("mystery", "unknown_type", True),
        ("missing_camera", "missing_topic", False),
        ("backwards", "out_of_order", True),
    ],
)
def test_bad_bag_gives_a_message_and_a_partial_report(model, tmp_path, capsys, damage, kind, usable):
    if damage == "truncated":
        bag = write_bag(tmp_path / "bag")
        mcap = next(bag.glob("*.mcap"))
        data = mcap.read_bytes()
        mcap.write_bytes(data[: int(len(data) * 0.7)])  # a recorder killed mid-write
        (bag / "metadata.yaml").unlink()
    elif damage == "mystery":
        bag = write_bag(tmp_path / "bag", mystery=True)
    elif damage == "missing_camera":
        bag = write_bag(tmp_path / "bag", cameras=("head", "right_wrist"))
    else:
        bag = write_bag(tmp_path / "bag", backwards_at=1.0)
    code, figures, printed = check(model, bag, tmp_path / "report", capsys)
    assert "Traceback" not in printed
    assert kind in problem_kinds(figures), figures["problems"]
    assert f"[{kind}]" in printed  # said on the console too
    assert (tmp_path / "report" / "report.md").is_file()
    assert (code == 0) == usable and (figures["counts"]["chunks"] > 0) == usable


def test_nothing_readable_still_gets_a_report(model, tmp_path, capsys):
    bag = tmp_path / "empty.mcap"
    bag.write_bytes(b"")
    code, figures, printed = check(model, bag, tmp_path / "report", capsys)
    assert code == 1 and "Traceback" not in printed
    assert problem_kinds(figures) == {"unreadable"}


def test_a_model_trained_here_is_checked_offline(model, tmp_path, capsys):
    """Recorded bag -> training episode -> lightwam-train -> export -> lightwam-offline-check:
    the trainer's package is what every tool here loads (tiny preset, two steps)."""
    bag = write_bag(tmp_path / "recorded")
    # The generated bag holds no commands: the reached state is the explicit fallback.
    assert (
        bag_to_samples(
            [
                str(bag),
                "--out",
                str(tmp_path / "episodes"),
                "--embodiment",
                "robotwin_aloha",
                "--actions",
                "state",
            ]
        )
        == 0
    )
    cfg = config_from_dict(
        {
            "data": {
                "episodes": [str(tmp_path / "episodes")],
                "embodiment": "robotwin_aloha",
                "instructions": str(model.instruction_cache),
            },
            "model": {"preset": "tiny", "trainable": "lora"},
            "objective": {"video_weight": 0.0},
            "optim": {"steps": 2, "batch_size": 2, "warmup_steps": 1},
            "run": {
                "out_dir": str(tmp_path / "run"),
                "device": "cpu",
                "progress": False,
                "tensorboard": False,
                "threads": 1,
            },
        }
    )
    exported = Trainer(cfg, log=lambda _: None).run()
    capsys.readouterr()
    code = offline_check(
        [
            str(bag),
            "--checkpoint",
            str(exported),
            "--instructions",
            str(exported.parent / "instructions.safetensors"),
            "--out",
            str(tmp_path / "report"),
            "--max-observations",
            "2",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.out + printed.err
    figures = json.loads((tmp_path / "report" / "figures.json").read_text())
    assert figures["counts"]["chunks"] == 2 and figures["vs_reference"] is not None


def test_frames_recorded_before_the_first_command_are_dropped_not_the_episode(tmp_path, capsys):
    """A recorder that subscribed to the commands late holds scene frames without a label: the
    episode starts at the first labelled frame (said on the console and in its metadata), and
    the trainer's loader takes it."""
    bag = write_bag(tmp_path / "late", commands_from=0.55)
    out = tmp_path / "episodes"
    assert bag_to_samples([str(bag), "--out", str(out), "--embodiment", "robotwin_aloha"]) == 0
    path = out / "episode_0000.safetensors"
    with safe_open(str(path), framework="numpy") as episode:
        problems = json.loads(episode.metadata()["problems"])
        stamps, mask = episode.get_tensor("timestamps"), episode.get_tensor("action_mask")
    # Scene frames every 0.1 s from 0: 0.0 .. 0.5 have no command yet; 0.6 is the first kept.
    assert stamps[0] - START_NS * 1e-9 == pytest.approx(0.6, abs=1e-3) and len(stamps) == 14
    assert mask[:, 0].all()
    assert problems == ["dropped the first 6 observation(s): no commands action yet"]
    assert problems[0] in capsys.readouterr().err
    loaded = load_episode(path, load_embodiment("robotwin_aloha"), [TASK])
    assert len(loaded.state) == 14
    capsys.readouterr()

    no_commands = [
        str(write_bag(tmp_path / "none")),
        "--out",
        str(tmp_path / "no"),
        "--embodiment",
        "robotwin_aloha",
    ]
    assert bag_to_samples(no_commands) == 1
    assert "no JointTrajectory commands recorded" in capsys.readouterr().err
