"""Embodiment YAML loading: shipped specs, derived sizes, validation errors, YAML-only additions."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from lightwam_ros.policy.canvas import build_canvas
from lightwam_ros.policy.embodiment import (
    SHIPPED_DIR,
    EmbodimentSpecError,
    default_camera_topic,
    load_embodiment,
    shipped_embodiments,
    transport_topic,
)


def shipped_dict(name: str) -> dict:
    return yaml.safe_load((SHIPPED_DIR / f"{name}.yaml").read_text())


def write_yaml(tmp_path: Path, data, name: str = "robot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_shipped_embodiments_are_listed_and_load_by_name_and_path():
    assert set(shipped_embodiments()) >= {"libero_franka", "robotwin_aloha"}
    by_name = load_embodiment("libero_franka")
    by_path = load_embodiment(SHIPPED_DIR / "libero_franka.yaml")
    assert by_name == by_path
    assert by_name.name == "libero_franka"


def test_libero_spec_matches_the_model_spec():
    spec = load_embodiment("libero_franka")
    assert (spec.state_dim, spec.action_dim) == (8, 7)
    assert [f.size for f in spec.state.fields] == [3, 3, 2]
    assert (spec.canvas_height, spec.canvas_width) == (224, 448)
    assert spec.latent_size == (28, 56)
    assert spec.token_grid == (14, 28) and spec.token_count == 392
    agentview, wrist = spec.canvas.cameras
    assert (agentview.role, agentview.left, agentview.rotation_deg) == ("agentview", 0, 180)
    assert (wrist.role, wrist.left, wrist.rotation_deg) == ("wrist", 224, 180)
    assert spec.action.mode == "delta_eef"
    assert spec.action.delta_eef.translation_m_per_unit == 0.05
    assert spec.action.delta_eef.rotation_rad_per_unit == 0.5
    post = spec.action.gripper_postprocess
    assert (post.dims, post.scale, post.offset, post.negate, post.binarize) == (
        ("gripper",),
        2.0,
        -1.0,
        True,
        True,
    )
    assert (spec.normalization.mode, spec.normalization.clamp) == ("min_max", 5.0)
    assert (spec.chunk.length, spec.chunk.execute_steps, spec.policy_rate_hz) == (32, 10, 20.0)
    gripper = spec.arm("arm").gripper
    assert gripper.close_sign == 1  # +1 closes in robosuite
    assert spec.joint_limit("panda_joint4") == (-3.0718, -0.0698)


def test_robotwin_spec_matches_the_model_spec():
    spec = load_embodiment("robotwin_aloha")
    assert (spec.state_dim, spec.action_dim) == (14, 14)
    assert (spec.canvas_height, spec.canvas_width) == (384, 320)
    assert spec.latent_size == (48, 40)
    assert spec.token_grid == (24, 20) and spec.token_count == 480
    cells = {c.role: (c.top, c.left, c.height, c.width) for c in spec.canvas.cameras}
    assert cells == {
        "head": (0, 0, 256, 320),
        "left_wrist": (256, 0, 128, 160),
        "right_wrist": (256, 160, 128, 160),
    }
    # Absolute joint actions use the state's order, dimension by dimension.
    assert spec.action.layout.dim_names == spec.state.dim_names
    assert spec.state.field_slice("left_gripper") == slice(6, 7)
    assert spec.state.field_slice("right_arm") == slice(7, 13)
    assert spec.state.dim_names[7] == "fr_joint1"
    assert spec.action.gripper_postprocess is None
    assert spec.normalization.mode == "z_score"
    assert (spec.chunk.length, spec.chunk.execute_steps) == (32, 24)
    assert spec.arm("left").gripper.close_sign == -1  # normalised gripper: 1 open, 0 closed


def test_gripper_joint_and_command_scales_are_inverse_linear_maps():
    gripper = load_embodiment("robotwin_aloha").arm("right").gripper
    assert gripper.joint_to_command(gripper.open_position) == pytest.approx(gripper.command_open)
    assert gripper.joint_to_command(gripper.closed_position) == pytest.approx(gripper.command_close)
    for command in (0.0, 0.3, 1.0):
        assert gripper.joint_to_command(gripper.command_to_joint(command)) == pytest.approx(command)
    assert gripper.command_to_joint(0.5) == pytest.approx(
        (gripper.open_position + gripper.closed_position) / 2
    )


def test_unknown_name_and_missing_path_are_reported():
    with pytest.raises(FileNotFoundError, match="libero_franka"):
        load_embodiment("no_such_robot")
    with pytest.raises(FileNotFoundError, match=r"missing\.yaml"):
        load_embodiment("/nonexistent/missing.yaml")


def _set(data: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        data = data[key]
    if value is _DELETE:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


_DELETE = object()

BROKEN = [
    ("chunk", _DELETE, "missing required field 'chunk'"),
    ("schema_version", 2, "schema_version: unsupported"),
    ("cameras.1.placement.width", 300, r"cameras\[1\]\.placement: cell"),
    ("cameras.1.placement.left", 100, "overlap"),
    ("cameras.0.rotation_deg", 45, r"cameras\[0\]\.rotation_deg"),
    ("cameras.0.rotaton_deg", 180, r"cameras\[0\]: unknown field\(s\) \['rotaton_deg'\]"),
    ("cameras.1.role", "agentview", "duplicate camera role 'agentview'"),
    ("canvas.height", 230, "canvas.height: 230 is not a multiple of 16"),
    ("state.2.joints", ["panda_finger_joint1", "ghost_joint"], "ghost_joint"),
    ("state.0.size", 4, r"state\[0\]\.size"),
    ("state.0.kind", "eef_delta_position", r"state\[0\]\.kind"),
    ("action.mode", "velocity", "action.mode"),
    ("action.gripper_postprocess.dims", ["grip"], "action.gripper_postprocess.dims"),
    ("action.gripper_postprocess.tie_value", 0.5, "tie_value"),
    ("action.delta_eef", _DELETE, "missing required field 'delta_eef'"),
    ("normalization.mode", "robust", "normalization.mode"),
    ("chunk.execute_steps", 33, "chunk.execute_steps: 33 exceeds"),
    ("policy_rate_hz", -5, "policy_rate_hz: expected a positive number"),
    ("arms.0.joint_limits.panda_joint2", [1.0, -1.0], "panda_joint2: lower limit"),
    ("arms.0.joint_limits.panda_joint7", _DELETE, "missing required field 'panda_joint7'"),
    ("arms.0.gripper.command_close", -1.0, "must differ from command_open"),
    ("arms.0.joints", "panda_joint1", r"arms\[0\]\.joints: expected a list"),
]


@pytest.mark.parametrize("path, value, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_yaml_names_file_and_field(tmp_path, path, value, message):
    data = shipped_dict("libero_franka")
    _set(data, path, value)
    file = write_yaml(tmp_path, data, "broken_robot.yaml")
    with pytest.raises(EmbodimentSpecError, match=message) as error:
        load_embodiment(file)
    assert "broken_robot.yaml" in str(error.value)


def test_malformed_documents_are_rejected(tmp_path):
    with pytest.raises(EmbodimentSpecError, match="not valid YAML"):
        load_embodiment(write_yaml(tmp_path, "name: [unclosed\n", "a.yaml"))
    with pytest.raises(EmbodimentSpecError, match="expected a mapping"):
        load_embodiment(write_yaml(tmp_path, "- just\n- a list\n", "b.yaml"))


def test_duplicate_joint_names_across_arms_are_rejected(tmp_path):
    data = shipped_dict("robotwin_aloha")
    data["arms"][1]["gripper"]["joints"] = ["fl_joint7"]
    with pytest.raises(EmbodimentSpecError, match="duplicate joint name 'fl_joint7'"):
        load_embodiment(write_yaml(tmp_path, data))


THIRD_EMBODIMENT = """
schema_version: 1
name: tabletop_ur5
arms:
  - name: ur5
    joints: [shoulder_pan_joint, shoulder_lift_joint, elbow_joint,
             wrist_1_joint, wrist_2_joint, wrist_3_joint]
    joint_limits:
      shoulder_pan_joint: [-6.28, 6.28]
      shoulder_lift_joint: [-6.28, 6.28]
      elbow_joint: [-3.14, 3.14]
      wrist_1_joint: [-6.28, 6.28]
      wrist_2_joint: [-6.28, 6.28]
      wrist_3_joint: [-6.28, 6.28]
    gripper: {joints: [finger_joint], open_position: 0.0, closed_position: 0.8,
              command_open: 0.0, command_close: 1.0}
cameras:
  - {role: front, rotation_deg: 90, placement: {top: 0, left: 0, height: 160, width: 160}}
  - {role: side, center_crop: true, placement: {top: 0, left: 160, height: 160, width: 160}}
  - {role: wrist, placement: {top: 160, left: 0, height: 160, width: 160}}
canvas: {height: 320, width: 320, fill_rgb: [7, 8, 9]}
state:
  - {name: arm, kind: joint_positions,
     joints: [shoulder_pan_joint, shoulder_lift_joint, elbow_joint,
              wrist_1_joint, wrist_2_joint, wrist_3_joint]}
  - {name: gripper, kind: gripper_normalized, arm: ur5}
action:
  mode: absolute_joints
  fields:
    - {name: arm, kind: joint_positions,
       joints: [shoulder_pan_joint, shoulder_lift_joint, elbow_joint,
                wrist_1_joint, wrist_2_joint, wrist_3_joint]}
    - {name: gripper, kind: gripper_normalized, arm: ur5}
normalization: {mode: z_score, clamp: 3.0}
chunk: {length: 16, execute_steps: 8}
policy_rate_hz: 10
"""


def test_third_embodiment_from_yaml_alone_loads_and_builds_a_canvas(tmp_path):
    spec = load_embodiment(write_yaml(tmp_path, THIRD_EMBODIMENT, "tabletop_ur5.yaml"))
    assert (spec.state_dim, spec.action_dim, spec.token_count) == (7, 7, 400)
    assert spec.state.dim_names[-1] == "gripper"
    colours = {"front": (200, 0, 0), "side": (0, 200, 0), "wrist": (0, 0, 200)}
    images = {role: np.full((90, 120, 3), rgb, np.uint8) for role, rgb in colours.items()}
    canvas = build_canvas(images, spec)
    assert canvas.shape == (320, 320, 3)
    assert (canvas[:160, :160] == colours["front"]).all()
    assert (canvas[:160, 160:] == colours["side"]).all()
    assert (canvas[160:, :160] == colours["wrist"]).all()
    assert (canvas[160:, 160:] == (7, 8, 9)).all()  # no camera there: fill colour


def test_loaded_spec_is_immutable():
    spec = load_embodiment("libero_franka")
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        spec.chunk.length = 3  # type: ignore[misc]


def test_scale_belongs_to_the_state_only(tmp_path):
    data = shipped_dict("robotwin_aloha")
    data["action"]["fields"][0]["scale"] = [1.0] * 6
    with pytest.raises(EmbodimentSpecError, match=r"action.fields\[0\].scale: .*actions take none"):
        load_embodiment(write_yaml(tmp_path, data))


def test_a_compressed_camera_is_its_image_topics_compressed_transport():
    """image_transport's naming: switching a role to compressed needs no new topic."""
    assert default_camera_topic("head") == "camera/head/image_raw"
    assert transport_topic("camera/head/image_raw", False) == "camera/head/image_raw"
    assert transport_topic("/cam/color/image_raw", True) == "/cam/color/image_raw/compressed"
    # A topic that names the compressed transport already is kept, not suffixed twice.
    assert transport_topic("/cam/image_raw/compressed", True) == "/cam/image_raw/compressed"
