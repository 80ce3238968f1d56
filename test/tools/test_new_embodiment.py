"""A new embodiment is one YAML file: written to a folder in $LIGHTWAM_EMBODIMENT_PATH (here a
single-arm variant of the simulated ALOHA), it is listed, gets a tiny package and a bring-up plan
whose nodes run on the defaults they derive from it, with no parameter file, RViz edit or code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lightwam_ros.policy.embodiment import (
    EMBODIMENT_PATH_ENV,
    camera_sizes,
    known_embodiments,
    load_embodiment,
)
from lightwam_ros.ros.param_files import EMBODIMENTS, embodiments, optional_params_file
from lightwam_ros.tools.assets.model_files import ModelFiles
from lightwam_ros.tools.launch.bringup_plan import BringupOptions, ParamOverride, build_plan
from lightwam_ros.tools.launch.rviz_config import write_rviz_config

NAME = "aloha_single"
# The right arm of aloha_sim alone, with its head and wrist cameras: the whole definition.
ALOHA_SINGLE = """
schema_version: 1
name: aloha_single
description: One simulated ViperX vx300s (the right arm of aloha_sim) with a head camera.
arms:
  - name: right
    joints: [right_waist, right_shoulder, right_elbow, right_forearm_roll, right_wrist_angle,
             right_wrist_rotate]
    joint_limits:
      right_waist: [-3.14158, 3.14158]
      right_shoulder: [-1.85005, 1.25664]
      right_elbow: [-1.76278, 1.6057]
      right_forearm_roll: [-3.14158, 3.14158]
      right_wrist_angle: [-1.8675, 2.23402]
      right_wrist_rotate: [-3.14158, 3.14158]
    gripper: {joints: [right_finger], open_position: 0.058, closed_position: 0.01844,
              command_open: 1.0, command_close: 0.0}
cameras:
  - {role: head, source_size: [120, 160], center_crop: true,
     placement: {top: 0, left: 0, height: 64, width: 112}}
  - {role: right_wrist, source_size: [120, 160], center_crop: true,
     placement: {top: 0, left: 112, height: 64, width: 112}}
canvas: {height: 64, width: 224, fill_rgb: [0, 0, 0]}
state:
  - {name: right_arm, kind: joint_positions, size: 6,
     joints: [right_waist, right_shoulder, right_elbow, right_forearm_roll, right_wrist_angle,
              right_wrist_rotate]}
  - {name: right_gripper, kind: gripper_normalized, size: 1, arm: right}
action:
  mode: absolute_joints
  fields:
    - {name: right_arm, kind: joint_positions, size: 6,
       joints: [right_waist, right_shoulder, right_elbow, right_forearm_roll, right_wrist_angle,
                right_wrist_rotate]}
    - {name: right_gripper, kind: gripper_normalized, size: 1, arm: right}
  gripper_postprocess: null
normalization: {mode: z_score, clamp: 5.0}
chunk: {length: 32, execute_steps: 24}
policy_rate_hz: 50.0
tasks: ["pick up the red cube"]
"""


def write_embodiment(folder: Path) -> Path:
    """The one file a new embodiment needs."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{NAME}.yaml"
    path.write_text(ALOHA_SINGLE)
    return path


@pytest.fixture
def new_embodiment(tmp_path, monkeypatch):
    write_embodiment(tmp_path / "embodiments")
    monkeypatch.setenv(EMBODIMENT_PATH_ENV, str(tmp_path / "embodiments"))
    return load_embodiment(NAME)


def test_the_shipped_list_is_the_yaml_folder_and_a_new_file_joins_it(new_embodiment):
    shipped = sorted(
        p.stem
        for p in (Path(__file__).resolve().parents[2] / "lightwam_ros" / "config" / "embodiments").glob(
            "*.yaml"
        )
    )
    assert list(EMBODIMENTS) == shipped
    assert NAME not in EMBODIMENTS and NAME in embodiments() and NAME in known_embodiments()
    assert new_embodiment.action_dim == 7 and new_embodiment.tasks == ("pick up the red cube",)


def test_a_new_embodiment_needs_no_parameter_file_to_be_brought_up(new_embodiment, tmp_path):
    for role in ("policy", "executor", "robot"):
        assert optional_params_file(role, NAME) is None
    model = ModelFiles(tmp_path / "m.safetensors", tmp_path / "i.safetensors", tiny=True)
    plan = build_plan(BringupOptions(embodiment=NAME, loopback_robot=True), model)
    assert [node.role for node in plan.nodes] == ["policy", "executor", "robot"]
    for node in plan.nodes:
        assert node.params_file is None and node.overrides["embodiment"] == NAME
    policy, robot = plan.node("policy").overrides, plan.node("robot").overrides
    assert policy["instruction"] == "pick up the red cube"  # the tiny package's first task
    sizes = camera_sizes(new_embodiment)
    assert {role: robot[f"cameras.{role}.size"] for role in sizes} == {
        role: list(size) for role, size in sizes.items()
    }
    assert {k: v for k, v in policy.items() if k.startswith("cameras.")} == {
        f"cameras.{role}.reliable": True for role in sizes
    }
    assert (plan.observed.command_type, plan.observed.command_topic) == (
        "joint_trajectory",
        "joint_trajectory_controller/joint_trajectory",
    )


def test_rviz_shows_the_new_embodiments_cameras_and_the_executors_path(new_embodiment, tmp_path):
    model = ModelFiles(tmp_path / "m.safetensors", tmp_path / "i.safetensors", tiny=True)
    plan = build_plan(
        BringupOptions(
            embodiment=NAME,
            loopback_robot=True,
            params=(ParamOverride.parse("policy:cameras.head.topic:=/cam/top"),),
        ),
        model,
    )
    document = yaml.safe_load(write_rviz_config(plan, NAME, tmp_path).read_text())
    manager = document["Visualization Manager"]
    groups = [d for d in manager["Displays"] if str(d.get("Name", "")).startswith("Cameras")]
    assert [group["Name"] for group in groups] == [f"Cameras ({NAME})"]
    assert {d["Name"]: d["Topic"]["Value"] for d in groups[0]["Displays"]} == {
        "head camera": "/cam/top",
        "right_wrist camera": "/camera/right_wrist/image_raw",
    }
    assert "/lightwam/planned_path" in {d.get("Topic", {}).get("Value") for d in manager["Displays"]}
    assert manager["Global Options"]["Fixed Frame"] == "panda_link0"  # it names no base frame
    aloha_plan = build_plan(BringupOptions(embodiment="aloha_sim", loopback_robot=True), model)
    aloha = yaml.safe_load(write_rviz_config(aloha_plan, "aloha_sim", tmp_path).read_text())
    assert aloha["Visualization Manager"]["Global Options"]["Fixed Frame"] == "vx300s_left"
