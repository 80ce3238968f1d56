"""What a Light-WAM bring-up starts, and with which parameters: one plan for every launcher.

``lightwam-bringup`` (no launch_ros needed) and ``launch/lightwam.launch.py`` both build their
nodes from ``build_plan``, so the parameter files, the overrides and the wiring of the loopback
robot cannot drift apart.  No ROS imports: the plan is plain data, tested without rclpy.

A plan is one ``NodePlan`` per node, of a kind in ``ros.node_registry``: the node's parameter file
(``ros.param_files``: ``config/<prefix>_<embodiment>.yaml``) plus overrides that win over it
(model files, shadow, use_sim_time, ``--params`` pass-through) and environment variables for its
process (the policy's CPU thread count).  The loopback robot is wired from
the *effective* policy and executor parameters: it publishes joint states where both listen,
camera images where the policy expects them and at the size it requires, and follows whichever
command output of the executor it understands.

Two nodes have no parameter file: the recorder (``lightwam-record``: inputs and outputs of the
run, from the same effective parameters, into a bag) and the bag player (``lightwam-replay``:
a recording provides the inputs and ``/clock``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lightwam_ros.policy.embodiment import camera_sizes, load_embodiment
from lightwam_ros.policy.state_builder import pose_arms
from lightwam_ros.ros.executor_params import settings_from_values as executor_settings
from lightwam_ros.ros.node_registry import CONFIGURED_ROLES, EXECUTOR, NODE_KINDS, POLICY, RECORDER, REPLAY
from lightwam_ros.ros.node_schemas import NODE_SCHEMAS
from lightwam_ros.ros.param_files import DEFAULT_EMBODIMENT, embodiments, optional_params_file, read_params
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.ros.run_topics import RecordedTopics, absolute_topic, recorded_topics
from lightwam_ros.sim.base import SimError
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.assets.model_files import ModelFiles, ensure_tiny_package, tiny_with_instruction

# Executor output mode -> (topic parameter, message type the loopback robot follows), by
# preference: a trajectory is what a real ros2_control arm gets.
_FOLLOWED_OUTPUTS = (("joint_trajectory", "joint_trajectory_topic"), ("joint_state", "joint_command_topic"))


class PlanError(ValueError):
    """The requested bring-up is inconsistent or incomplete; the message says how to fix it."""


# --------------------------------------------------------------------------------------------
# Overrides
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamOverride:
    """``[role:]name:=value`` from the command line; without a role it goes to every started node
    that declares ``name`` (``_route``)."""

    role: str | None
    name: str
    value: Any

    @classmethod
    def parse(cls, text: str) -> ParamOverride:
        target, sep, raw = text.partition(":=")
        if not sep or not target:
            raise PlanError(
                f"--params {text!r}: expected [ROLE:]NAME:=VALUE, e.g. rate:=5 or "
                f"executor:boundary_rule:=blend"
            )
        role, _, name = target.rpartition(":")
        if role and role not in (*CONFIGURED_ROLES, RECORDER):
            raise PlanError(
                f"--params {text!r}: unknown node {role!r}; nodes: {[*CONFIGURED_ROLES, RECORDER]}"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as error:
            raise PlanError(f"--params {text!r}: value is not valid YAML: {error}") from None
        return cls(role or None, name, _parameter_value(text, value))


def _parameter_value(text: str, value: Any) -> Any:
    """The value if a ROS parameter can hold it (a scalar or a non-empty uniform list); a list
    mixing integers and doubles becomes doubles, as ROS arrays are uniform."""
    scalar = (bool, int, float, str)
    if isinstance(value, scalar):
        return value
    if isinstance(value, list) and value and all(isinstance(v, scalar) for v in value):
        kinds = {type(v) for v in value}
        if kinds == {int, float}:
            return [float(v) for v in value]
        if len(kinds) == 1:
            return value
    raise PlanError(
        f"--params {text!r}: a parameter value must be a bool, number, string or a "
        f"non-empty list of one of those, got {value!r}"
    )


def ros_value_text(value: Any) -> str:
    """The value as ``-p name:=TEXT`` needs it: ROS parses TEXT as YAML, and JSON is YAML whose
    strings stay strings (a path or an instruction that looks like a number or a bool too)."""
    return json.dumps(value)


# --------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------


def resolve_model(
    embodiment: str,
    checkpoint: str | Path | None,
    instruction_cache: str | Path | None,
    *,
    tiny: bool,
    safe_target: bool,
    cache_dir: Path | None = None,
) -> ModelFiles:
    """The checkpoint and instruction cache to run.

    Without a checkpoint a random-weight tiny package is used (built once into ``cache_dir``),
    but only when asked for (``tiny``) or when nothing real can move (``safe_target``: the
    loopback robot, or shadow mode): random weights must never drive an arm by default.
    """
    if tiny and (checkpoint or instruction_cache):
        raise PlanError(
            "tiny uses a random-weight package: give either it or a checkpoint and "
            "instruction cache, not both"
        )
    if checkpoint or instruction_cache:
        if not (checkpoint and instruction_cache):
            raise PlanError("a checkpoint needs its instruction cache and vice versa")
        files = ModelFiles(Path(checkpoint).expanduser(), Path(instruction_cache).expanduser(), tiny=False)
        for path in (files.checkpoint, files.instruction_cache):
            if not path.is_file():
                raise PlanError(f"no such file: {path}")
        return files
    if not (tiny or safe_target):
        raise PlanError(
            "no checkpoint given: a random-weight tiny package is only used with the "
            "loopback robot, in shadow mode, or when asked for explicitly (tiny); "
            "pass a checkpoint and instruction cache to drive a robot"
        )
    return ensure_tiny_package(embodiment, cache_dir)


# --------------------------------------------------------------------------------------------
# Plan
# --------------------------------------------------------------------------------------------


def default_policy_threads() -> int:
    """CPU threads for the policy's torch: every core but one, which the executor's control loop
    and the other nodes need on time.  OpenMP threads that share their cores with other busy
    processes collapse: a tiny-model inference took 6 s instead of 0.24 s on two busy cores with
    two threads, 0.24 s with one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass(frozen=True)
class BringupOptions:
    embodiment: str = DEFAULT_EMBODIMENT
    shadow: bool = False
    use_sim_time: bool = False
    replay: bool = False  # inputs come from a recording: implies use_sim_time
    loopback_robot: bool = False
    params: tuple[ParamOverride, ...] = ()
    policy_threads: int | None = None  # None: default_policy_threads()
    record: str | None = None  # bag directory (must not exist) the recorder writes
    replay_bag: str | None = None  # a bag that lightwam-replay plays: implies replay
    sim: str | None = None  # SIMULATOR[:TASK]: a simulator bridge is the robot


@dataclass(frozen=True)
class NodePlan:
    role: str
    node_name: str
    module: str
    executable: str
    params_file: Path | None  # None: a kind without a parameter file (recorder, replay)
    overrides: dict[str, Any]  # win over the parameter file
    env: dict[str, str] = field(default_factory=dict)  # for the node's process
    arguments: tuple[str, ...] = ()  # before the ROS arguments (the bag player's options)

    @classmethod
    def of_kind(
        cls,
        role: str,
        params_file: Path | None,
        overrides: dict[str, Any],
        env: dict[str, str] | None = None,
        arguments: tuple[str, ...] = (),
    ) -> NodePlan:
        """A node of a registered kind (``node_registry.NODE_KINDS``)."""
        kind = NODE_KINDS[role]
        return cls(
            role,
            kind.node_name,
            kind.module,
            kind.executable,
            params_file,
            overrides,
            dict(env or {}),
            arguments,
        )

    def values(self) -> dict[str, Any]:
        """The parameter values the node starts with: its parameter file's, the overrides winning."""
        from_file = {} if self.params_file is None else read_params(self.params_file, self.node_name)
        return {**from_file, **self.overrides}

    def command(self, python: str = sys.executable) -> list[str]:
        """The command line that runs this node in its own process."""
        ros_args = [] if self.params_file is None else ["--params-file", str(self.params_file)]
        for name, value in self.overrides.items():
            ros_args += ["-p", f"{name}:={ros_value_text(value)}"]
        return [
            python,
            "-u",
            "-m",
            self.module,
            *self.arguments,
            *(["--ros-args", *ros_args] if ros_args else []),
        ]


@dataclass(frozen=True)
class ObservedTopics:
    """What the bring-up observer watches, from the effective parameters."""

    chunk_topic: str
    command_type: str  # joint_trajectory | joint_state
    command_topic: str
    joint_state_topic: str
    status_topic: str
    diagnostics_topic: str
    executor_name: str
    max_velocity: dict[str, float] | None  # the executor's caps by joint name (None: unknown)
    max_acceleration: dict[str, float] | None


@dataclass(frozen=True)
class BringupPlan:
    nodes: tuple[NodePlan, ...]
    observed: ObservedTopics | None  # with the loopback robot or a simulator only
    use_sim_time: bool
    shadow: bool
    # Recording (not a replay): the policy starts once the recorder subscribes to these (absolute
    # names; tools.launch.recording_gate), so no chunk is recorded without its inputs.
    recording_gate: tuple[str, ...] = ()

    def node(self, role: str) -> NodePlan:
        return next(node for node in self.nodes if node.role == role)


def build_plan(options: BringupOptions, model: ModelFiles) -> BringupPlan:
    """The nodes to start and their parameters; PlanError when the combination cannot work."""
    replay = options.replay or options.replay_bag is not None
    sim = _sim_task(options.sim, options.embodiment)
    if (replay, options.loopback_robot, sim is not None).count(True) > 1:
        raise PlanError("replay, loopback_robot and sim each provide the robot's inputs: choose one")
    robot = "robot" if options.loopback_robot else "sim" if sim is not None else None
    roles = (POLICY, EXECUTOR) + ((robot,) if robot else ())
    # A node without a parameter file for the embodiment runs on its defaults, which it derives
    # from the embodiment: it only needs to be told which one.
    files = {role: optional_params_file(role, options.embodiment) for role in roles}
    from_files = {
        role: {} if (path := files[role]) is None else read_params(path, NODE_KINDS[role].node_name)
        for role in roles
    }
    overrides: dict[str, dict[str, Any]] = {
        role: {"embodiment": options.embodiment} if files[role] is None and role != "sim" else {}
        for role in roles
    }
    if options.record is not None:
        overrides[RECORDER] = {}
    use_sim_time = options.use_sim_time or replay or sim is not None
    overrides["policy"].update(
        checkpoint=str(model.checkpoint), instruction_cache=str(model.instruction_cache)
    )
    if model.tiny and not from_files[POLICY].get("instruction"):
        # A tiny package knows its embodiment's tasks: start on the first.
        tasks = load_embodiment(options.embodiment).tasks
        if tasks:
            overrides["policy"]["instruction"] = tasks[0]
    for role in (POLICY, EXECUTOR):
        if options.shadow:
            overrides[role]["shadow"] = True
        if use_sim_time:
            overrides[role]["use_sim_time"] = True
    if options.loopback_robot and use_sim_time:
        overrides["robot"]["use_sim_time"] = True
    for override in options.params:
        _route(override, from_files, overrides)
    policy, executor = (
        NODE_SCHEMAS[role].effective({**from_files[role], **overrides[role]}) for role in (POLICY, EXECUTOR)
    )
    shadow = bool(policy["shadow"])
    observed = None
    if robot is not None:
        observed = _observed_topics(policy, executor, shadow)
        wiring = _robot_wiring(policy, executor, observed, options.embodiment)
        # The robot publishes every camera in one burst from one participant, which best-effort
        # readers here lose frames of (lightwam-bench-ros measured it); it publishes reliably.
        wired_policy = {
            f"cameras.{role}.reliable": True for role in camera_sizes(load_embodiment(options.embodiment))
        }
        if sim is not None:
            wiring, sim_policy = _sim_wiring(wiring, sim, policy, from_files["sim"])
            wired_policy.update(sim_policy)
        overrides[robot] = {**wiring, **overrides[robot]}  # the user's overrides win
        overrides["policy"] = {**wired_policy, **overrides["policy"]}
    threads = default_policy_threads() if options.policy_threads is None else options.policy_threads
    if threads < 1:
        raise PlanError(f"policy threads must be >= 1, got {threads}")
    env: dict[str, dict[str, str]] = {role: {} for role in roles}
    env["policy"]["OMP_NUM_THREADS"] = str(threads)
    nodes = tuple(NodePlan.of_kind(role, files[role], overrides[role], env[role]) for role in roles)
    gate: tuple[str, ...] = ()
    if options.record is not None:
        recorded = recorded_topics(policy, executor)
        recorder = _recorder_parameters(options.record, options.embodiment, policy, recorded, use_sim_time)
        nodes = (NodePlan.of_kind(RECORDER, None, {**recorder, **overrides[RECORDER]}), *nodes)
        if not replay:  # a replay's inputs wait for the policy (lightwam-replay)
            gate = tuple(absolute_topic(t) for t in recorded.predicted_from)
    if options.replay_bag is not None:
        nodes += (_replay_node(options.replay_bag),)
    return BringupPlan(nodes, observed, use_sim_time, shadow, gate)


def _route(
    override: ParamOverride, from_files: Mapping[str, Mapping[str, Any]], overrides: dict[str, dict[str, Any]]
) -> None:
    """Add an override to its node, or to every started node that declares the name."""
    targets = (
        [override.role]
        if override.role
        else [role for role in from_files if NODE_SCHEMAS[role].find(override.name) is not None]
    )
    if not targets:
        raise PlanError(
            f"--params {override.name}: no started node declares it (docs/parameters.md); prefix "
            f"the node to pass it anyway (e.g. policy:{override.name}:=...)"
        )
    if any(target not in overrides for target in targets):
        raise PlanError(
            f"--params for {override.role}: that node is not started (the robot "
            "runs only with the loopback robot, sim only with a simulator, the "
            "recorder only when recording)"
        )
    for target in targets:
        overrides[target][override.name] = override.value


def _observed_topics(policy: Mapping[str, Any], executor: Mapping[str, Any], shadow: bool) -> ObservedTopics:
    command_type, command_topic = _followed_output(executor)
    try:
        caps: dict[str, dict[str, float]] | None = executor_settings(executor).joint_caps
    except ValueError:
        caps = None  # the executor will refuse its parameters, with the reason
    return ObservedTopics(
        chunk_topic=policy["shadow_chunk_topic" if shadow else "chunk_topic"],
        command_type=command_type,
        command_topic=command_topic,
        joint_state_topic=executor["joint_state_topic"],
        status_topic=policy["status_topic"],
        diagnostics_topic=executor["diagnostics_topic"],
        executor_name=NODE_KINDS[EXECUTOR].node_name,
        max_velocity=caps["max_velocity"] if caps else None,
        max_acceleration=caps["max_acceleration"] if caps else None,
    )


def _followed_output(executor: Mapping[str, Any]) -> tuple[str, str]:
    modes = executor.get("output_modes") or [_FOLLOWED_OUTPUTS[0][0]]  # the executor's default
    for mode, topic_parameter in _FOLLOWED_OUTPUTS:
        if mode in modes:
            return mode, executor[topic_parameter]  # effective: the table's default when unset
    raise PlanError(
        f"executor output_modes {list(modes)}: the loopback robot and the observer "
        f"follow {[mode for mode, _ in _FOLLOWED_OUTPUTS]}; enable one of them"
    )


def _sim_task(text: str | None, embodiment: str) -> SimTask | None:
    if text is None:
        return None
    try:
        task = SimTask.parse(text)
    except SimError as error:
        raise PlanError(f"sim: {error}") from None
    if task.embodiment != embodiment:
        raise PlanError(f"sim {task} simulates embodiment {task.embodiment}, not {embodiment}")
    return task


def _sim_wiring(
    robot_wiring: Mapping[str, Any], task: SimTask, policy: Mapping[str, Any], bridge: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bridge parameters, policy parameters) that connect the simulator bridge: the robot's
    topics as for the loopback robot, one camera size for all, the task and its instruction, and
    each end-effector pose the policy reads from the bridge (LIBERO's state is the simulator's
    world-frame pose)."""
    wiring = {
        name: value
        for name, value in robot_wiring.items()
        if name != "embodiment" and not name.endswith(".size")
    }
    sizes = {tuple(value) for name, value in robot_wiring.items() if name.endswith(".size")}
    if len(sizes) > 1:
        raise PlanError(
            f"the policy requires camera sizes {sorted(sizes)}: the simulator "
            "renders every camera at one size"
        )
    if sizes:
        wiring["camera_size"] = list(sizes.pop())
    wiring["task"] = str(task)
    policy_wiring = {"instruction": task.instruction()}
    pose = SIM_SCHEMA.spec("eef_pose.<arm>.topic")
    for arm in pose_arms(load_embodiment(task.embodiment)):
        name = pose.named(arm)
        policy_wiring[name] = bridge.get(name) or pose.default_of(arm)
    return wiring, policy_wiring


def _robot_wiring(
    policy: Mapping[str, Any], executor: Mapping[str, Any], observed: ObservedTopics, embodiment: str
) -> dict[str, Any]:
    """Loopback-robot parameters that connect it to the policy and the executor; its cameras
    render at the sizes the policy warms up for (its ``cameras.<role>.size``, else the
    embodiment's)."""
    sizes = camera_sizes(load_embodiment(embodiment))
    joint_topics = {
        policy["joint_state_topic"],
        executor["joint_state_topic"],
    }
    if len(joint_topics) != 1:
        raise PlanError(
            f"the policy and the executor read joint states from different topics "
            f"{sorted(joint_topics)}: the loopback robot publishes one"
        )
    wiring: dict[str, Any] = {
        "embodiment": embodiment,
        "joint_state_topic": joint_topics.pop(),
        "command_type": observed.command_type,
        "command_topic": observed.command_topic,
    }
    for role in sizes:
        prefix = f"cameras.{role}."
        if policy.get(prefix + "compressed", False):
            raise PlanError(
                f"policy camera {role!r} is compressed: the loopback robot publishes "
                f"raw sensor_msgs/Image only (set {prefix}compressed:=false)"
            )
        if policy.get(prefix + "topic"):
            wiring[prefix + "topic"] = policy[prefix + "topic"]
        size = policy.get(prefix + "size") or sizes.get(role)
        if size:
            wiring[prefix + "size"] = [int(v) for v in size]
    return wiring


# --------------------------------------------------------------------------------------------
# Recording and replay
# --------------------------------------------------------------------------------------------


def _recorder_parameters(
    path: str, embodiment: str, policy: Mapping[str, Any], recorded: RecordedTopics, use_sim_time: bool
) -> dict[str, Any]:
    """The recorder records what the started nodes really use: the effective topics."""
    output = Path(path).expanduser().absolute()
    if output.exists():
        raise PlanError(f"record: {output} already exists; name a new bag directory")
    parameters: dict[str, Any] = {
        "output": str(output),
        "embodiment": embodiment,
        "instruction": str(policy.get("instruction", "")),
        "instruction_topic": recorded.instruction,
        "input_topics": list(recorded.inputs),
        "output_topics": list(recorded.outputs),
    }
    if use_sim_time:
        parameters["use_sim_time"] = True
    return parameters


def _replay_node(bag: str) -> NodePlan:
    """lightwam-replay of ``bag``, once every replayed topic has a subscriber (the policy's)."""
    path = Path(bag).expanduser().absolute()
    if not path.exists():
        raise PlanError(f"bag: no such bag {path}")
    return NodePlan.of_kind(REPLAY, None, {}, arguments=(str(path), "--wait-for-subscribers", "1"))


# --------------------------------------------------------------------------------------------
# Launch arguments (launch/lightwam.launch.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] = field(default=())


_BOOL_CHOICES = ("true", "false")
LAUNCH_ARGUMENTS = (
    LaunchArgument(
        "embodiment",
        DEFAULT_EMBODIMENT,
        "Robot: config/embodiments/<embodiment>.yaml "
        "(or one in $LIGHTWAM_EMBODIMENT_PATH) and its config/*_<embodiment>.yaml.",
        embodiments(),
    ),
    LaunchArgument(
        "checkpoint",
        "",
        "Light-WAM checkpoint (.safetensors); empty: a random-weight "
        "tiny package, allowed only with loopback_robot or shadow.",
    ),
    LaunchArgument("instruction_cache", "", "Instruction cache (.safetensors) of the checkpoint."),
    LaunchArgument("shadow", "false", "Predict and plan without commanding the arm.", _BOOL_CHOICES),
    LaunchArgument("use_sim_time", "false", "Every node follows /clock.", _BOOL_CHOICES),
    LaunchArgument("replay", "false", "Inputs come from a recording (implies use_sim_time).", _BOOL_CHOICES),
    LaunchArgument("loopback_robot", "false", "Start the stand-in robot (no hardware).", _BOOL_CHOICES),
    LaunchArgument(
        "sim",
        "",
        "A simulator as the robot: aloha[:TASK] (embodiment aloha_sim) or "
        "libero[:SUITE/INDEX] (libero_franka); empty: none.",
    ),
    LaunchArgument("rviz", "false", "Start rviz2 with config/lightwam.rviz.", _BOOL_CHOICES),
    LaunchArgument(
        "record",
        "",
        "Record the run's inputs and outputs into this bag directory "
        "(must not exist yet); empty: no recording.",
    ),
    LaunchArgument(
        "bag",
        "",
        "Play this bag with lightwam-replay as the inputs and /clock "
        "(implies replay); empty: none is played here.",
    ),
    LaunchArgument(
        "autostart",
        "true",
        "Configure and activate the managed nodes (policy, executor) once started; false: they "
        "wait in 'unconfigured' for 'ros2 lifecycle set <node> configure', then activate.",
        _BOOL_CHOICES,
    ),
)


def launch_flag(values: Mapping[str, str], name: str) -> bool:
    text = values[name].strip().lower()
    if text not in _BOOL_CHOICES:
        raise PlanError(f"launch argument {name} must be true or false, got {values[name]!r}")
    return text == "true"


def plan_from_launch_arguments(values: Mapping[str, str], cache_dir: Path | None = None) -> BringupPlan:
    """The plan for the launch file's argument values (strings, as launch gives them)."""
    options = BringupOptions(
        embodiment=values["embodiment"],
        shadow=launch_flag(values, "shadow"),
        use_sim_time=launch_flag(values, "use_sim_time"),
        replay=launch_flag(values, "replay"),
        loopback_robot=launch_flag(values, "loopback_robot"),
        sim=values["sim"].strip() or None,
        record=values["record"].strip() or None,
        replay_bag=values["bag"].strip() or None,
    )
    if options.embodiment not in embodiments():
        raise PlanError(
            f"launch argument embodiment must be one of {list(embodiments())}, got {options.embodiment!r}"
        )
    model = resolve_model(
        options.embodiment,
        values["checkpoint"].strip() or None,
        values["instruction_cache"].strip() or None,
        tiny=False,
        safe_target=(options.loopback_robot or options.shadow or options.sim is not None),
        cache_dir=cache_dir,
    )
    return build_plan(options, model_for_sim(model, options))


def model_for_sim(model: ModelFiles, options: BringupOptions) -> ModelFiles:
    """With a simulator and a tiny package: the package with the simulated task's instruction."""
    task = _sim_task(options.sim, options.embodiment)
    return model if task is None else tiny_with_instruction(model, task.instruction())
