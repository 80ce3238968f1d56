"""Parameters from one table per node: values checked against the table (a bad one named),
per-joint caps keyed by joint name, the generated reference current, and the parameter files
holding only values that differ from the defaults.  No ROS needed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.executor_params import CAPS, EXECUTOR_SCHEMA, settings_from_values
from lightwam_ros.ros.node_registry import CONFIGURED_ROLES, NODE_KINDS, ROBOT
from lightwam_ros.ros.node_schemas import NODE_SCHEMAS
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file, read_params
from lightwam_ros.ros.parameter_schema import ParameterSpec, ValueSource, read_parameters
from lightwam_ros.ros.policy_params import POLICY_SCHEMA
from lightwam_ros.tools.docs.parameter_reference import COMMAND, REFERENCE, reference_text


@pytest.mark.parametrize(
    "values, message",
    [
        ({"control_rate": 0}, "parameter control_rate must be > 0, got 0.0"),
        ({"control_rate": "fast"}, "parameter control_rate must be a finite number, got 'fast'"),
        ({"thread_priority": 100}, r"parameter thread_priority must be in [0, 99], got 100"),
        ({"limit_margin": -0.1}, "parameter limit_margin must be >= 0, got -0.1"),
        ({"speed_scaling": 1.5}, "parameter speed_scaling must be in [0, 1], got 1.5"),
        ({"boundary_rule": "mix"}, "parameter boundary_rule must be one of ['latest', 'blend', 'ensemble']"),
        ({"shadow": "yes"}, "parameter shadow must be true or false, got 'yes'"),
        ({"chunk_topic": " "}, "parameter chunk_topic must name a topic or service"),
        (
            {"output_modes": ["joint_state", "joint_state"]},
            "parameter output_modes must list distinct entries of",
        ),
        ({"joint_limits.left_finger.max_velocity": 0.0}, "joint_limits.left_finger.max_velocity must be > 0"),
        (
            {"joint_limits.left_fingr.max_velocity": 0.2},
            "joint_limits.left_fingr.max_velocity: unknown joint 'left_fingr' (known: ['left_waist'",
        ),
        (
            {"joint_limits.left_finger.top_speed": 0.2},
            "parameter joint_limits.left_finger.top_speed: unknown name",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter(values, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        settings_from_values({"embodiment": "aloha_sim", **values})


def test_per_joint_caps_are_keyed_by_joint_name_over_the_scalar():
    settings = settings_from_values(
        {
            "embodiment": "aloha_sim",
            "max_velocity": 2,  # an integer is a double too
            "joint_limits.right_finger.max_velocity": 0.2,
            "joint_limits.left_waist.limit_margin": 0.0,
        }
    )
    order = ("right_finger", "left_waist", "left_finger")  # any commanded order: looked up by name
    limits = settings.limits(order, np.zeros(3), np.ones(3))
    assert limits.max_velocity.tolist() == [0.2, 2.0, 2.0]
    assert limits.limit_margin.tolist() == [0.02, 0.0, 0.02]
    assert limits.max_acceleration.tolist() == [5.0] * 3  # the schema's default


def test_family_defaults_take_the_key_and_array_values_are_checked():
    spec = POLICY_SCHEMA.spec("cameras.head.topic")
    assert spec.default_of("head") == "camera/head/image_raw"
    size = POLICY_SCHEMA.spec("cameras.<role>.size")
    assert size.checked("cameras.head.size", None) is None  # unset: any size
    assert size.checked("cameras.head.size", [240, 320]) == (240, 320)
    with pytest.raises(ValueError, match=re.escape("parameter cameras.head.size must have 2 entries")):
        size.checked("cameras.head.size", [240])
    with pytest.raises(ValueError, match=re.escape("parameter cameras.head.size must be >= 1, got 0")):
        size.checked("cameras.head.size", [0, 320])


def test_an_unknown_camera_role_is_refused_by_name():
    values = {"cameras.head.topic": "/cam", "cameras.tail.topic": "/tail"}
    with pytest.raises(ValueError, match=re.escape("parameter cameras.tail.topic: unknown role 'tail'")):
        read_parameters(ValueSource(values), POLICY_SCHEMA, {"role": ["head"], "arm": []})


def test_only_speed_scaling_and_instruction_change_at_run_time():
    changeable = {role: schema.runtime_names() for role, schema in NODE_SCHEMAS.items()}
    assert changeable == {
        "policy": ("instruction",),
        "executor": ("speed_scaling",),
        "robot": (),
        "sim": (),
        "recorder": (),
    }


def test_a_spec_refuses_an_unknown_type_or_two_placeholders():
    with pytest.raises(ValueError, match="unknown type 'float'"):
        ParameterSpec("rate", "float", 1.0, "")
    with pytest.raises(ValueError, match="at most one <key> placeholder"):
        ParameterSpec("a.<x>.<y>", "double", 1.0, "")


def test_the_parameter_reference_is_current():
    """docs/parameters.md is generated from the tables; regenerate it after changing one."""
    assert REFERENCE.read_text() == reference_text(), f"{REFERENCE} is stale: run {COMMAND}"
    for schema in NODE_SCHEMAS.values():
        for spec in schema.parameters:
            assert f"| `{spec.name}` |" in REFERENCE.read_text()


def _derived_default(role: str, embodiment: str, name: str, values: dict) -> object:
    """The default of a family member, as the node derives it."""
    if name.startswith("joint_limits."):
        cap = name.rsplit(".", 1)[1]
        return values.get(cap, EXECUTOR_SCHEMA.spec(cap).default)
    spec = load_embodiment(embodiment)
    if name.startswith("initial_positions."):
        return float(np.mean(spec.joint_limit(name.split(".")[1])))
    if role == ROBOT and name.endswith(".size"):
        camera = next(c for c in spec.canvas.cameras if c.role == name.split(".")[1])
        return list(camera.source_size or (camera.height, camera.width))
    schema = NODE_SCHEMAS[role]
    found = schema.spec(name)
    return found.default_of(found.key_of(name))


CONFIG = Path(__file__).resolve().parents[2] / "config"
PARAMETER_FILES = [
    (role, path)
    for role in CONFIGURED_ROLES
    for path in sorted(CONFIG.glob(f"{NODE_KINDS[role].params_prefix}_*.yaml"))
]


def test_every_shipped_parameter_file_is_checked():
    assert {path.name for _, path in PARAMETER_FILES} == {path.name for path in CONFIG.glob("*.yaml")}


@pytest.mark.parametrize("role, path", PARAMETER_FILES, ids=[path.name for _, path in PARAMETER_FILES])
def test_parameter_files_hold_only_declared_values_that_differ_from_the_defaults(role, path):
    embodiment = path.stem.split("_", 1)[1]
    values = read_params(path, NODE_KINDS[role].node_name)
    schema = NODE_SCHEMAS[role]
    assert values, f"{path.name}: empty"
    for name, value in values.items():
        spec = schema.find(name)
        assert spec is not None, f"{path.name}: {name} is no parameter of {schema.node_name}"
        default = spec.default if spec.family is None else _derived_default(role, embodiment, name, values)
        checked = spec.checked(name, value)
        assert checked != (tuple(default) if isinstance(default, list) else default), (
            f"{path.name}: {name}: {value!r} is the default; leave it out"
        )


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_the_shipped_executor_files_give_the_caps_they_always_gave(embodiment):
    """The per-joint maps of the executor files, looked up by the embodiment's joints."""
    path = params_file("executor", embodiment)
    settings = settings_from_values(read_params(path, NODE_KINDS["executor"].node_name))
    joints = load_embodiment(embodiment).robot_joints
    grippers = {j for arm in load_embodiment(embodiment).arms if arm.gripper for j in arm.gripper.joints}
    for cap in CAPS:
        by_joint = settings.joint_caps[cap]
        assert set(by_joint) == set(joints)
        # Arm joints share one cap (the wrist of the Panda aside), the gripper joints another.
        assert len({by_joint[j] for j in grippers}) == 1
        assert max(by_joint[j] for j in grippers) < min(by_joint[j] for j in joints if j not in grippers)
