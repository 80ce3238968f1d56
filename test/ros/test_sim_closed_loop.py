"""The whole stack in real simulators through ROS 2: lightwam-sim-eval runs one short ALOHA and
one short LIBERO episode (simulator bridge -> policy -> executor -> simulator, on the tiny
preset) and its report must show that commands reached the simulator and that the arm moved
within its joint limits; lightwam-sim-demos records a scripted ALOHA demonstration as a bag that
the simulator judges a success."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
from lightwam_ros.sim.base import configure_offscreen_rendering

configure_offscreen_rendering()
pytest.importorskip("gym_aloha", reason="the simulators are not installed (requirements/sim.txt)")
pytest.importorskip("libero", reason="the simulators are not installed (requirements/sim.txt)")

from lightwam_ros.bags.reader import BagReader  # noqa: E402

BIN = Path(sys.executable).parent
RUN_TIMEOUT = 420  # s: model build, LIBERO's scene build and reset, inference on 2 busy cores


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Tiny packages shared by the module's runs."""
    return tmp_path_factory.mktemp("tiny")


def _run(*command: str) -> subprocess.CompletedProcess:
    result = subprocess.run([*command, "--isolated"], capture_output=True, text=True, timeout=RUN_TIMEOUT)
    print(result.stdout[-6000:], result.stderr[-3000:], sep="\n")
    return result


@pytest.mark.parametrize("task", ["aloha:transfer_cube", "libero:libero_spatial/0"])
def test_one_episode_drives_the_simulated_arm_within_its_limits(task, workdir, tmp_path):
    out = tmp_path / "eval"
    result = _run(
        str(BIN / "lightwam-sim-eval"),
        "--sim",
        task,
        "--tiny",
        "--workdir",
        str(workdir),
        "--episodes",
        "1",
        "--episode-seconds",
        "2",
        "--out",
        str(out),
        "--params",
        "policy:warmup:=1",
    )
    assert result.returncode == 0
    assert "untrained" in result.stdout  # the tiny preset says what it is
    report = json.loads((out / "report.json").read_text())
    summary, (episode,) = report["summary"], report["per_episode"]
    assert report["task"] == task and report["tiny"]
    assert episode["chunks"] > 0 and episode["commands_sent"] > 0
    assert summary["commands_reached_sim"] and episode["commands_refused_by_sim"] == 0
    assert summary["arm_moved"] and episode["largest_travel"]["value"] > 1e-3
    assert summary["within_limits"] and episode["outside_limits"] == {}
    assert episode["length_s"] >= 2.0 and not episode["success"]  # random weights
    assert (out / episode["strip"]).stat().st_size > 0 and (out / "report.md").is_file()


def test_a_scripted_demonstration_is_recorded_and_succeeds(tmp_path):
    out = tmp_path / "demos"
    result = _run(
        str(BIN / "lightwam-sim-demos"),
        "--episodes",
        "1",
        "--first-episode",
        "3",
        "--perturbation",
        "0.05",
        "--out",
        str(out),
    )
    assert result.returncode == 0
    demos = json.loads((out / "demos.json").read_text())
    (demo,) = demos["demos"]
    assert demo["success"] and demo["episode"] == 3 and demos["success_rate"] == 1.0
    assert demos["seeds"] == [3] and demos["perturbation"] == 0.05  # a perturbed demo succeeds
    reader = BagReader(out / demo["bag"])
    assert not reader.problems
    steps = round(demo["seconds"] / 0.02)
    # Every 50 Hz step's joint state and command, an image per camera every second step.
    assert reader.counts["/joint_states"] >= steps
    assert reader.counts["/joint_trajectory_controller/joint_trajectory"] >= steps
    assert all(
        reader.counts[f"/camera/{role}/image_raw"] >= steps // 2
        for role in ("head", "left_wrist", "right_wrist")
    )


def test_the_committed_trained_package_reaches_for_the_cube(tmp_path, learned_package_episode):
    """The learned small package the repository ships, through the real nodes for the first 4 s of
    a training seed: chunks are executed and the right gripper closes in on the cube (the
    approach takes the scripted demonstrations about 2 s); success itself is not asserted."""
    out = tmp_path / "eval"
    result = _run(
        str(BIN / "lightwam-sim-eval"),
        "--sim",
        "aloha:transfer_cube",
        *learned_package_episode,
        "--out",
        str(out),
        "--params",
        "policy:warmup:=1",
    )
    assert result.returncode == 0
    report = json.loads((out / "report.json").read_text())
    (episode,) = report["per_episode"]
    assert not report["tiny"] and episode["chunks"] > 0 and episode["commands_applied_by_sim"] > 0
    reach = episode["object_distance_m"]
    assert reach["closest"] < reach["start"] - 0.03, reach
    assert report["summary"]["within_limits"]
