"""The bring-up plan shared by lightwam-bringup and launch/lightwam.launch.py: overrides routed
to the right nodes, the loopback robot
wired from the effective policy/executor parameters, model files resolved safely, and the launch
file and RViz config consistent with it.  No ROS needed (the launch test runs where launch_ros
is installed)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

from lightwam_ros.policy.embodiment import camera_sizes, default_camera_topic, load_embodiment
from lightwam_ros.ros.node_registry import NODE_KINDS
from lightwam_ros.ros.node_schemas import NODE_SCHEMAS
from lightwam_ros.ros.param_files import EMBODIMENTS, ParamFileError, params_file, rviz_config
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.assets.model_files import ModelFiles, default_cache_dir
from lightwam_ros.tools.launch import bringup_plan as bp
from lightwam_ros.tools.launch.bringup_plan import BringupOptions, ParamOverride, PlanError, build_plan

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = ROOT / "launch" / "lightwam.launch.py"
MODEL = ModelFiles(Path("/models/m.safetensors"), Path("/models/i.safetensors"), tiny=False)


def plan(**options):
    params = tuple(ParamOverride.parse(text) for text in options.pop("params", ()))
    return build_plan(BringupOptions(params=params, **options), MODEL)


def file_params(role, embodiment="robotwin_aloha"):
    """A node's values with its parameter file: the file's over the schema's defaults."""
    document = yaml.safe_load(params_file(role, embodiment).read_text())
    return NODE_SCHEMAS[role].effective(document[NODE_KINDS[role].node_name]["ros__parameters"])


# ------------------------------------------------------------------ overrides


def test_overrides_parse_role_name_and_a_yaml_value():
    assert ParamOverride.parse("rate:=5") == ParamOverride(None, "rate", 5)
    assert ParamOverride.parse("executor:boundary_rule:=blend") == ParamOverride(
        "executor", "boundary_rule", "blend"
    )
    assert ParamOverride.parse("policy:cameras.head.size:=[120, 160]").value == [120, 160]
    assert ParamOverride.parse("max_velocity:=[1, 2.5]").value == [1.0, 2.5]  # uniform doubles
    assert ParamOverride.parse("instruction:=").value == ""


@pytest.mark.parametrize(
    "text, reason",
    [
        ("rate=5", "expected"),
        (":=5", "expected"),
        ("arm:rate:=5", "unknown node"),
        ("rate:=[1, a]", "must be"),
        ("rate:=[]", "must be"),
        ("rate:={a: 1}", "must be"),
        ("rate:=[unclosed", "not valid YAML"),
    ],
)
def test_bad_overrides_are_refused_with_the_reason(text, reason):
    with pytest.raises(PlanError, match=reason):
        ParamOverride.parse(text)


def test_values_reach_ros_as_the_same_type():
    """-p values are parsed as YAML by ROS: strings that look like numbers stay strings."""
    assert bp.ros_value_text("1.5") == '"1.5"'
    assert bp.ros_value_text("true") == '"true"'
    assert bp.ros_value_text(True) == "true"
    assert bp.ros_value_text([1.0, 2.0]) == "[1.0, 2.0]"
    assert yaml.safe_load(bp.ros_value_text("/a b/c.safetensors")) == "/a b/c.safetensors"


# ------------------------------------------------------------------ plans


def test_plan_without_robot_runs_policy_and_executor_on_their_files():
    result = plan()
    assert [node.role for node in result.nodes] == ["policy", "executor"]
    policy, executor = result.nodes
    assert policy.params_file.name == "policy_robotwin_aloha.yaml"
    assert policy.overrides == {
        "checkpoint": str(MODEL.checkpoint),
        "instruction_cache": str(MODEL.instruction_cache),
    }
    assert executor.overrides == {}
    assert result.observed is None and not result.shadow and not result.use_sim_time


def test_shadow_and_sim_time_reach_the_nodes_that_have_them():
    result = plan(shadow=True, use_sim_time=True, loopback_robot=True)
    overrides = {node.role: node.overrides for node in result.nodes}
    assert overrides["policy"]["shadow"] is overrides["executor"]["shadow"] is True
    assert "shadow" not in overrides["robot"]
    assert all(o["use_sim_time"] is True for o in overrides.values())
    assert result.observed.chunk_topic == file_params("policy")["shadow_chunk_topic"]
    assert plan(replay=True).use_sim_time
    with pytest.raises(PlanError, match="choose one"):
        plan(replay=True, loopback_robot=True)
    with pytest.raises(PlanError, match="choose one"):
        plan(embodiment="aloha_sim", sim="aloha", loopback_robot=True)


@pytest.mark.parametrize(
    "task, embodiment", [("aloha", "aloha_sim"), ("libero:libero_spatial/3", "libero_franka")]
)
def test_a_simulator_is_the_robot_on_sim_time_with_its_task_and_poses_wired(task, embodiment):
    result = plan(embodiment=embodiment, sim=task)
    assert [node.role for node in result.nodes] == ["policy", "executor", "sim"]
    overrides = {node.role: node.overrides for node in result.nodes}
    assert overrides["policy"]["use_sim_time"] is overrides["executor"]["use_sim_time"] is True
    assert "use_sim_time" not in overrides["sim"]  # the bridge publishes /clock
    parsed = SimTask.parse(task)
    assert overrides["sim"]["task"] == str(parsed)
    assert overrides["policy"]["instruction"] == parsed.instruction()
    assert overrides["sim"]["command_topic"] == result.observed.command_topic
    policy = {**file_params("policy", embodiment), **overrides["policy"]}
    for camera in load_embodiment(embodiment).canvas.cameras:  # the sim publishes where the policy reads
        topic = NODE_SCHEMAS["sim"].spec("cameras.<role>.topic").named(camera.role)
        default = NODE_SCHEMAS["sim"].spec(topic).default_of(camera.role)
        assert overrides["sim"].get(topic, default) == policy.get(topic, default)
    # The bridge renders the embodiment's camera size, the one the policy warms up for.
    assert {tuple(overrides["sim"]["camera_size"])} == set(camera_sizes(load_embodiment(embodiment)).values())
    poses = {k: v for k, v in overrides["policy"].items() if k.startswith("eef_pose.")}
    # LIBERO's state is the simulator's world-frame pose: the policy reads it from the bridge.
    assert poses == ({"eef_pose.arm.topic": "sim/eef_pose/arm"} if embodiment == "libero_franka" else {})


def test_a_simulator_must_simulate_the_embodiment():
    with pytest.raises(PlanError, match="simulates embodiment aloha_sim, not robotwin_aloha"):
        plan(sim="aloha")
    with pytest.raises(PlanError, match="unknown simulator"):
        plan(sim="gazebo")
    with pytest.raises(ParamFileError, match="no simulator for embodiment"):
        params_file("sim", "robotwin_aloha")


def test_bare_overrides_go_to_every_started_node_that_declares_them():
    result = plan(params=["rate:=5", "shadow:=true", "control_rate:=100", "executor:joint_names:=[a, b]"])
    policy, executor = result.nodes
    assert policy.overrides["rate"] == 5 and "rate" not in executor.overrides
    assert policy.overrides["shadow"] is executor.overrides["shadow"] is True
    assert executor.overrides["control_rate"] == 100  # a default, in no file
    assert executor.overrides["joint_names"] == ["a", "b"]
    assert result.shadow
    with pytest.raises(PlanError, match="no started node declares it"):
        plan(params=["rat:=5"])
    with pytest.raises(PlanError, match="not started"):
        plan(params=["robot:state_rate:=50"])


def test_node_command_lines_pass_the_file_then_the_overrides():
    node = plan(params=["instruction:='1'"]).node("policy")  # quoted: a string
    command = node.command("/venv/bin/python")
    assert command[:8] == [
        "/venv/bin/python",
        "-u",
        "-m",
        "lightwam_ros.nodes.policy_node",
        "--ros-args",
        "--params-file",
        str(node.params_file),
        "-p",
    ]
    pairs = dict(arg.split(":=", 1) for arg in command[8::2])
    assert set(command[7::2]) == {"-p"}
    assert pairs == {
        "checkpoint": f'"{MODEL.checkpoint}"',
        "instruction_cache": f'"{MODEL.instruction_cache}"',
        "instruction": '"1"',
    }


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_loopback_robot_is_wired_from_the_policy_and_executor_files(embodiment):
    result = plan(embodiment=embodiment, loopback_robot=True)
    robot = result.node("robot")
    policy, executor = file_params("policy", embodiment), file_params("executor", embodiment)
    assert robot.params_file.name == f"loopback_{embodiment}.yaml"
    assert robot.overrides["embodiment"] == embodiment
    assert robot.overrides["joint_state_topic"] == executor["joint_state_topic"]
    assert robot.overrides["command_type"] == "joint_trajectory"
    assert robot.overrides["command_topic"] == executor["joint_trajectory_topic"]
    cameras = {name: value for name, value in robot.overrides.items() if name.startswith("cameras.")}
    # It renders what the policy warms up for: the embodiment's camera sizes.
    sizes = camera_sizes(load_embodiment(embodiment))
    # The policy's files keep the default topics, which are the robot's defaults too.
    assert cameras == {f"cameras.{role}.size": list(sizes[role]) for role in sizes}
    topic = NODE_SCHEMAS["policy"].spec("cameras.<role>.topic")
    assert topic.default == NODE_SCHEMAS["robot"].spec(topic.name).default
    # The robot publishes all cameras in one burst: the policy subscribes reliably to it.
    assert {
        name: value for name, value in result.node("policy").overrides.items() if name.startswith("cameras.")
    } == {f"cameras.{role}.reliable": True for role in sizes}
    observed = result.observed
    assert (observed.chunk_topic, observed.command_topic) == (
        policy["chunk_topic"],
        executor["joint_trajectory_topic"],
    )
    # The caps by joint name, as the executor reads them: the scalar, or the joint's own.
    joints = load_embodiment(embodiment).robot_joints
    assert observed.max_velocity == {
        joint: executor.get("joint_limits", {}).get(joint, {}).get("max_velocity", executor["max_velocity"])
        for joint in joints
    }
    assert len(set(observed.max_velocity.values())) > 1  # the grippers have their own cap


def test_robot_follows_what_the_executor_outputs_and_shows_what_the_policy_expects():
    result = plan(
        loopback_robot=True,
        params=[
            "executor:output_modes:=[forward_command, joint_state]",
            "policy:cameras.head.size:=[120, 160]",
            "cameras.head.topic:=/cam/head",
        ],
    )
    robot = result.node("robot").overrides
    assert (robot["command_type"], robot["command_topic"]) == (
        "joint_state",
        file_params("executor")["joint_command_topic"],
    )
    assert robot["cameras.head.size"] == [120, 160]
    assert robot["cameras.head.topic"] == "/cam/head"
    explicit = plan(
        loopback_robot=True, params=["robot:command_topic:=/mine", "policy:cameras.head.reliable:=false"]
    )
    assert explicit.node("robot").overrides["command_topic"] == "/mine"
    assert explicit.node("policy").overrides["cameras.head.reliable"] is False


@pytest.mark.parametrize(
    "override, reason",
    [
        ("executor:output_modes:=[forward_command]", "enable one of them"),
        ("policy:joint_state_topic:=/other", "different topics"),
        ("cameras.head.compressed:=true", "raw sensor_msgs/Image only"),
    ],
)
def test_a_loopback_robot_that_could_not_close_the_loop_is_refused(override, reason):
    with pytest.raises(PlanError, match=reason):
        plan(loopback_robot=True, params=[override])


# ------------------------------------------------------------------ recording and replay


def test_a_recording_plan_starts_the_recorder_on_the_effective_topics(tmp_path):
    bag = tmp_path / "run1"
    result = plan(
        record=str(bag),
        loopback_robot=True,
        use_sim_time=True,
        params=["cameras.head.topic:=/cam/head", "instruction:=stack the cups", "recorder:max_queue_mb:=64"],
    )
    recorder = result.nodes[0]  # first: it listens before the nodes it records start
    assert (recorder.role, recorder.node_name, recorder.executable) == (
        "recorder",
        "lightwam_recorder",
        "lightwam-record",
    )
    assert recorder.params_file is None
    overrides = recorder.overrides
    assert overrides["output"] == str(bag) and overrides["embodiment"] == "robotwin_aloha"
    assert overrides["instruction"] == "stack the cups"
    assert overrides["max_queue_mb"] == 64 and overrides["use_sim_time"] is True
    assert overrides["input_topics"][0] == "/cam/head"
    assert "lightwam/action_chunk" in overrides["output_topics"]
    command = recorder.command("/venv/bin/python")
    assert command[:6] == [
        "/venv/bin/python",
        "-u",
        "-m",
        "lightwam_ros.nodes.recorder_node",
        "--ros-args",
        "-p",
    ]
    assert "--params-file" not in command
    assert dict(arg.split(":=", 1) for arg in command[6::2])["input_topics"].startswith('["/cam/head", ')
    # The policy waits for the recorder to record what it predicts from: its cameras and joints.
    cameras = ["/" + t.lstrip("/") for t in overrides["input_topics"] if "cam" in t]
    assert result.recording_gate == (*cameras, "/joint_states") and "/cam/head" in cameras
    assert plan(loopback_robot=True).recording_gate == ()


def test_a_recorded_replay_has_no_recording_gate(tmp_path):
    result = plan(record=str(tmp_path / "again"), replay_bag=str(tmp_path))
    assert [n.role for n in result.nodes] == ["recorder", "policy", "executor", "replay"]
    assert result.recording_gate == ()  # lightwam-replay waits for the policy instead


def test_a_recording_never_overwrites_and_its_parameters_need_it(tmp_path):
    with pytest.raises(PlanError, match="already exists"):
        plan(record=str(tmp_path))
    with pytest.raises(PlanError, match="not started"):
        plan(params=["recorder:flush_period:=2.0"])
    with pytest.raises(PlanError, match="unknown node"):
        ParamOverride.parse("replay:rate:=2")


def test_a_bag_to_replay_starts_the_player_in_replay_mode(tmp_path):
    result = plan(replay_bag=str(tmp_path))
    player = result.nodes[-1]
    assert result.use_sim_time and [n.role for n in result.nodes] == ["policy", "executor", "replay"]
    assert player.command("/py") == [
        "/py",
        "-u",
        "-m",
        "lightwam_ros.nodes.bag_replay",
        str(tmp_path),
        "--wait-for-subscribers",
        "1",
    ]
    assert player.executable == "lightwam-replay" and player.params_file is None
    with pytest.raises(PlanError, match="choose one"):
        plan(replay_bag=str(tmp_path), loopback_robot=True)
    with pytest.raises(PlanError, match="no such bag"):
        plan(replay_bag=str(tmp_path / "missing"))


# ------------------------------------------------------------------ model files


def test_model_files_must_exist_and_come_in_pairs(tmp_path):
    checkpoint = tmp_path / "m.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(PlanError, match="vice versa"):
        bp.resolve_model("robotwin_aloha", checkpoint, None, tiny=False, safe_target=False)
    with pytest.raises(PlanError, match="no such file"):
        bp.resolve_model("robotwin_aloha", checkpoint, tmp_path / "i", tiny=False, safe_target=False)
    with pytest.raises(PlanError, match="not both"):
        bp.resolve_model("robotwin_aloha", checkpoint, checkpoint, tiny=True, safe_target=True)
    files = bp.resolve_model("robotwin_aloha", checkpoint, checkpoint, tiny=False, safe_target=False)
    assert files == ModelFiles(checkpoint, checkpoint, tiny=False)


def test_random_weights_never_drive_a_robot_unless_asked_for(tmp_path):
    with pytest.raises(PlanError, match="no checkpoint given"):
        bp.resolve_model("robotwin_aloha", None, None, tiny=False, safe_target=False, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())


def test_tiny_package_is_built_once_into_the_cache_and_reused(tmp_path):
    files = bp.resolve_model("libero_franka", None, None, tiny=False, safe_target=True, cache_dir=tmp_path)
    assert files.tiny and files.checkpoint.is_file() and files.instruction_cache.is_file()
    assert [p.name for p in tmp_path.iterdir()] == [files.checkpoint.parent.name]  # no scratch
    assert files.checkpoint.parent.name.startswith("tiny-libero_franka-")
    built = files.checkpoint.stat().st_mtime_ns
    again = bp.resolve_model("libero_franka", None, None, tiny=True, safe_target=False, cache_dir=tmp_path)
    assert again == files and files.checkpoint.stat().st_mtime_ns == built


def test_default_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "lightwam_ros"


# ------------------------------------------------------------------ launch file and RViz


def test_launch_arguments_are_the_documented_ones():
    assert [a.name for a in bp.LAUNCH_ARGUMENTS] == [
        "embodiment",
        "checkpoint",
        "instruction_cache",
        "shadow",
        "use_sim_time",
        "replay",
        "loopback_robot",
        "sim",
        "rviz",
        "record",
        "bag",
        "autostart",
    ]
    flags = {a.name: a.default for a in bp.LAUNCH_ARGUMENTS if a.choices == ("true", "false")}
    assert flags == {
        "shadow": "false",
        "use_sim_time": "false",
        "replay": "false",
        "loopback_robot": "false",
        "rviz": "false",
        "autostart": "true",
    }


def _launch_values(**values):
    return {**{a.name: a.default for a in bp.LAUNCH_ARGUMENTS}, **values}


def test_launch_argument_values_make_the_same_plan_as_the_options(tmp_path):
    checkpoint = tmp_path / "m.safetensors"
    checkpoint.write_bytes(b"")
    from_launch = bp.plan_from_launch_arguments(
        _launch_values(
            embodiment="libero_franka",
            checkpoint=str(checkpoint),
            instruction_cache=str(checkpoint),
            replay="true",
            shadow="True",
        )
    )
    model = ModelFiles(checkpoint, checkpoint, tiny=False)
    assert from_launch == build_plan(
        BringupOptions(embodiment="libero_franka", replay=True, shadow=True), model
    )
    with pytest.raises(PlanError, match="true or false"):
        bp.plan_from_launch_arguments(_launch_values(shadow="yes"))
    with pytest.raises(PlanError, match="embodiment must be one of"):
        bp.plan_from_launch_arguments(_launch_values(embodiment="ur5"))
    with pytest.raises(PlanError, match="no checkpoint given"):
        bp.plan_from_launch_arguments(_launch_values(), cache_dir=tmp_path)


def test_launch_arguments_record_and_play_bags(tmp_path):
    checkpoint = tmp_path / "m.safetensors"
    checkpoint.write_bytes(b"")
    model = ModelFiles(checkpoint, checkpoint, tiny=False)
    record, bag = tmp_path / "new", tmp_path / "old"
    bag.mkdir()
    from_launch = bp.plan_from_launch_arguments(
        _launch_values(
            checkpoint=str(checkpoint), instruction_cache=str(checkpoint), record=str(record), bag=f" {bag} "
        )
    )
    assert from_launch == build_plan(BringupOptions(record=str(record), replay_bag=str(bag)), model)
    assert [node.role for node in from_launch.nodes] == ["recorder", "policy", "executor", "replay"]


def test_launch_file_builds_its_nodes_from_the_plan_only():
    """Without launch_ros here, check the source: the package's modules provide the arguments,
    the nodes and the RViz file; no topic, file or parameter name is spelled in the launch file."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module.startswith("lightwam_ros.")
        for alias in node.names
    }
    assert {"LAUNCH_ARGUMENTS", "plan_from_launch_arguments", "write_rviz_config"} <= imported
    functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    }
    assert not [s for s in strings if s.endswith((".yaml", ".rviz")) or "/" in s]


def test_launch_description_starts_the_planned_nodes(tmp_path, monkeypatch):
    pytest.importorskip(
        "launch_ros", reason="launch_ros is not installable from PyPI: this runs on a ROS 2 installation"
    )
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
    from launch_ros.actions import LifecycleNode, Node

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # rviz:=true needs rviz2 in the ament index (test_launch_real: what happens without it).
    marker = tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "rviz2"
    marker.parent.mkdir(parents=True)
    marker.touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    spec = importlib.util.spec_from_file_location("lightwam_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    assert [a.name for a in declared] == [a.name for a in bp.LAUNCH_ARGUMENTS]
    function = next(e for e in description.entities if isinstance(e, OpaqueFunction))
    for autostart in ("true", "false"):
        context = LaunchContext()
        values = _launch_values(loopback_robot="true", rviz="true", autostart=autostart)
        context.launch_configurations.update(values)
        actions = function.execute(context)
        nodes = [action for action in actions if isinstance(action, Node)]
        assert [node.node_executable for node in nodes] == [
            "lightwam-policy",
            "lightwam-executor",
            "lightwam-loopback-robot",
            "rviz2",
        ]
        # The managed nodes: lifecycle nodes that wait for launch's transitions (configure when
        # started, activate when configured), or for the user's with autostart:=false.
        assert [isinstance(node, LifecycleNode) for node in nodes] == [True, True, False, False]
        handlers = [action for action in actions if isinstance(action, RegisterEventHandler)]
        assert len(handlers) == (4 if autostart == "true" else 0)
        assert len(actions) == len(nodes) + len(handlers)


def test_rviz_config_shows_the_cameras_and_the_path_the_executor_plans():
    config = yaml.safe_load(rviz_config().read_text())
    manager = config["Visualization Manager"]

    def displays(items):
        for item in items:
            yield item
            yield from displays(item.get("Displays") or [])

    shown = {d["Class"]: set() for d in displays(manager["Displays"])}
    for display in displays(manager["Displays"]):
        topic = display.get("Topic") or display.get("Description Topic") or {}
        shown[display["Class"]].add(topic.get("Value"))
    for embodiment in EMBODIMENTS:
        # The shipped policy files read every camera on its default topic.
        assert "cameras" not in file_params("policy", embodiment)
        cameras = {"/" + default_camera_topic(c.role) for c in load_embodiment(embodiment).canvas.cameras}
        assert cameras <= shown["rviz_default_plugins/Image"], embodiment
    # The executor's planned end-effector path (its default planned_path_topic), not a preview.
    assert shown["rviz_default_plugins/MarkerArray"] == {"/lightwam/planned_path"}
    assert {"rviz_default_plugins/TF", "rviz_default_plugins/RobotModel"} <= set(shown)
    assert manager["Global Options"]["Fixed Frame"] == "panda_link0"  # LIBERO's path frame
