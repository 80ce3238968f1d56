"""The chunk executor's ROS parameters: one table (``EXECUTOR_SCHEMA``) that the node declares,
validates and documents from, read once and validated at start.

Every bad value is a ``ValueError`` naming the parameter, so the node refuses to start with a
clear message instead of commanding an arm with a half-understood configuration.  Numeric
parameters accept integers as well as doubles (``-p control_rate:=500`` works).

Each joint cap (``max_velocity``, ``max_acceleration``, ``max_deviation``, ``max_chunk_step``,
``limit_margin``) is a scalar for every joint, overridden per joint by name as ros2_control's
joint limits are: ``joint_limits.<joint>.max_velocity``, e.g. in a parameter file::

    max_velocity: 2.0
    joint_limits:
      left_finger: {max_velocity: 0.2}

A joint the embodiment does not have is refused by name.  No ROS imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightwam_ros.control.command_layout import CommandLayout
from lightwam_ros.control.executor_core import ExecutorConfig
from lightwam_ros.control.interpolation import INTERPOLATION_KINDS
from lightwam_ros.control.safety import JointSafetyLimits
from lightwam_ros.control.scheduling import BOUNDARY_RULES
from lightwam_ros.policy.embodiment import EmbodimentSpec, load_embodiment
from lightwam_ros.ros.parameter_schema import (
    AUTOSTART,
    NodeSchema,
    ParameterSource,
    ParameterSpec,
    ValueSource,
    read_parameters,
)

# joint_trajectory_plan: the whole motion ahead as one JointTrajectory per chunk (and hold), for a
# joint trajectory controller that interpolates at its own rate; nothing is published per tick.
OUTPUT_MODES = ("joint_trajectory", "forward_command", "joint_state", "joint_trajectory_plan")
INTERPOLATION_ALIASES = {"min_jerk": "minimum_jerk"}
# Cap -> (default, description): a scalar for every joint, and joint_limits.<joint>.<cap> per joint.
_CAPS: dict[str, tuple[float, str]] = {
    "max_velocity": (1.0, "Velocity cap [rad/s or m/s]"),
    "max_acceleration": (5.0, "Acceleration cap [rad/s^2 or m/s^2]"),
    "max_deviation": (0.3, "Largest |command - measured| [rad or m]"),
    "max_chunk_step": (
        0.5,
        "Largest change between consecutive chunk steps [rad or m]; a chunk with a bigger jump is "
        "refused as a whole",
    ),
    "limit_margin": (
        0.02,
        "Chunk values up to this far outside the joint limits are clipped, further out the chunk is "
        "refused [rad or m]",
    ),
}
CAPS = tuple(_CAPS)


def _positive(name: str, default: float, description: str, **more: Any) -> ParameterSpec:
    return ParameterSpec(name, "double", default, description, minimum=0.0, exclusive_minimum=True, **more)


def _topic(name: str, default: str, description: str) -> ParameterSpec:
    return ParameterSpec(name, "string", default, description, nonempty=True)


def _cap_specs() -> tuple[ParameterSpec, ...]:
    scalars = tuple(
        ParameterSpec(
            cap,
            "double",
            default,
            f"{text}; for every joint without its joint_limits.<joint>.{cap}.",
            minimum=0.0,
            exclusive_minimum=cap != "limit_margin",  # the margin may be 0, the caps may not
        )
        for cap, (default, text) in _CAPS.items()
    )
    per_joint = tuple(
        ParameterSpec(
            f"joint_limits.<joint>.{cap}",
            "double",
            default,
            f"{cap} of joint <joint> (by name, any joint of the embodiment), instead of the scalar.",
            minimum=0.0,
            exclusive_minimum=cap != "limit_margin",
            default_text=f"the scalar {cap}",
        )
        for cap, (default, text) in _CAPS.items()
    )
    return scalars + per_joint


EXECUTOR_SCHEMA = NodeSchema(
    "lightwam_executor",
    "The chunk executor (`lightwam-executor`): action chunks in, joint commands out at the control "
    "rate, through the safety filter (joint limits and caps) and the watchdog.",
    (
        AUTOSTART,
        ParameterSpec(
            "embodiment",
            "string",
            "",
            "Embodiment name (shipped, e.g. robotwin_aloha) or path to its YAML; required.",
        ),
        ParameterSpec(
            "kinematics_file",
            "string",
            "",
            "YAML of the arm's chain for delta-EEF chunks, as SerialChain reads it: a URDF-style joint "
            "chain (convention: urdf) or modified-DH rows (empty: the kinematics section of the arm's "
            "embodiment).",
        ),
        ParameterSpec(
            "joint_names",
            "string_array",
            None,
            "Commanded joints in output order (unset: the embodiment's order).",
        ),
        _positive("control_rate", 500.0, "Command rate [Hz]: the control loop that samples the trajectory."),
        ParameterSpec(
            "thread_priority",
            "integer",
            50,
            "SCHED_FIFO priority (1-99) of the control loop's thread, as ros2_control's; where the "
            "process may not use real-time scheduling it runs at normal priority (logged). 0: normal "
            "scheduling.",
            minimum=0,
            maximum=99,
        ),
        ParameterSpec(
            "boundary_rule", "string", "latest", "How overlapping chunks combine.", choices=BOUNDARY_RULES
        ),
        ParameterSpec(
            "ensemble_k",
            "double",
            0.01,
            "Temporal-ensembling weight exp(-k i) over overlapping chunks (k > 0 favours older "
            "predictions, as ACT).",
        ),
        ParameterSpec(
            "interpolation",
            "string",
            "quintic",
            "Trajectory through the chunk steps.",
            choices=(*INTERPOLATION_KINDS, *INTERPOLATION_ALIASES),
        ),
        *_cap_specs(),
        ParameterSpec(
            "speed_scaling",
            "double",
            1.0,
            "Speed override, changeable at run time (ros2 param set): chunks are executed with their "
            "step time divided by it, so the arm follows the same path slower; 0 pauses (a brake to a "
            "hold, chunks refused) until it is raised again.",
            minimum=0.0,
            maximum=1.0,
            runtime=True,
        ),
        ParameterSpec(
            "ramp_time",
            "double",
            1.0,
            "Seconds for the velocity cap to grow from 0 to 1 after activation.",
            minimum=0.0,
        ),
        _positive("chunk_timeout", 0.5, "Hold when no chunk was accepted for this long [s]."),
        _positive("joint_state_timeout", 0.1, "Hold when the newest joint state is older than this [s]."),
        ParameterSpec(
            "max_clock_skew",
            "double",
            0.1,
            "Refuse chunks and joint states stamped further in the future [s].",
            minimum=0.0,
        ),
        _positive("diagnostics_rate", 2.0, "Rate of the DiagnosticArray on the diagnostics topic [Hz]."),
        ParameterSpec(
            "request_lead_time",
            "double",
            0.0,
            "> 0: ask the policy (trigger:=request) for a chunk on chunk_request_topic when the plan "
            "ends within this many seconds (its latency plus transport); 0: never ask (timer policies).",
            minimum=0.0,
        ),
        _positive("request_retry", 1.0, "Ask again after this many seconds without a new chunk [s]."),
        ParameterSpec(
            "output_modes",
            "string_array",
            ("joint_trajectory",),
            "Command outputs.",
            choices=OUTPUT_MODES,
        ),
        ParameterSpec(
            "shadow",
            "bool",
            False,
            "Run everything but command nothing: the would-be command goes to shadow_command_topic only.",
        ),
        _topic("chunk_topic", "lightwam/action_chunk", "lightwam_ros/ActionChunk input."),
        _topic("joint_state_topic", "joint_states", "sensor_msgs/JointState input (matched by name)."),
        _topic("estop_topic", "lightwam/estop", "std_msgs/Bool input: true latches a hold until reset."),
        _topic("estop_service", "lightwam/estop", "std_srvs/Trigger: latch a hold."),
        _topic("reset_service", "lightwam/reset", "std_srvs/Trigger: clear the e-stop and the plan."),
        _topic(
            "joint_trajectory_topic",
            "joint_trajectory_controller/joint_trajectory",
            "trajectory_msgs/JointTrajectory output (output modes joint_trajectory: a point per tick; "
            "joint_trajectory_plan: the whole motion ahead per chunk and hold).",
        ),
        _topic(
            "forward_command_topic",
            "forward_position_controller/commands",
            "std_msgs/Float64MultiArray output (output mode forward_command).",
        ),
        _topic(
            "joint_command_topic",
            "lightwam/joint_command",
            "sensor_msgs/JointState output (output mode joint_state).",
        ),
        _topic(
            "target_pose_topic",
            "lightwam/target_pose",
            "geometry_msgs/PoseStamped end-effector target (delta-EEF embodiments).",
        ),
        _topic(
            "shadow_command_topic",
            "lightwam/shadow_command",
            "sensor_msgs/JointState of what would be commanded in shadow mode.",
        ),
        _topic(
            "planned_trajectory_topic",
            "lightwam/planned_trajectory",
            "trajectory_msgs/JointTrajectory of the path the executor will command, published on "
            "each accepted chunk (for RViz).",
        ),
        _topic(
            "planned_path_topic",
            "lightwam/planned_path",
            "visualization_msgs/MarkerArray: that path's end-effector positions by forward kinematics "
            "(arms with kinematics: delta-EEF).",
        ),
        _topic("diagnostics_topic", "/diagnostics", "diagnostic_msgs/DiagnosticArray output."),
        _topic(
            "chunk_request_topic",
            "lightwam/request_chunk",
            "std_msgs/Empty output asking the policy for a chunk (request_lead_time > 0).",
        ),
    ),
)
_TOPIC_PARAMETERS = tuple(
    spec.name for spec in EXECUTOR_SCHEMA.parameters if spec.family is None and spec.nonempty
)


@dataclass(frozen=True)
class ExecutorSettings:
    """Validated parameter values; ``joint_caps`` holds each cap of every joint, by name."""

    embodiment: str
    spec: EmbodimentSpec
    kinematics_file: str
    joint_names: tuple[str, ...]
    control_rate: float
    thread_priority: int
    boundary_rule: str
    ensemble_k: float
    interpolation: str
    joint_caps: dict[str, dict[str, float]]  # cap -> joint -> value
    speed_scaling: float
    ramp_time: float
    chunk_timeout: float
    joint_state_timeout: float
    max_clock_skew: float
    diagnostics_rate: float
    request_lead_time: float
    request_retry: float
    output_modes: tuple[str, ...]
    shadow: bool
    topics: dict[str, str]

    def limits(self, joint_names: Sequence[str], lower: np.ndarray, upper: np.ndarray) -> JointSafetyLimits:
        """Safety limits for the commanded joints, each cap looked up by joint name."""
        caps = {
            cap: np.array([self.joint_caps[cap][joint] for joint in joint_names], dtype=np.float64)
            for cap in CAPS
        }
        return JointSafetyLimits(
            lower=lower,
            upper=upper,
            max_velocity=caps["max_velocity"],
            max_acceleration=caps["max_acceleration"],
            max_deviation=caps["max_deviation"],
            max_jump=caps["max_chunk_step"],
            limit_margin=caps["limit_margin"],
            ramp_time=self.ramp_time,
        )

    def command_layout(self) -> CommandLayout:
        """The joints the executor commands, in their order, and how chunks map onto them."""
        return CommandLayout(self.spec, self.joint_names, self.kinematics_file)

    def core_config(self, layout: CommandLayout) -> ExecutorConfig:
        """The executor core's configuration for the joints ``layout`` commands."""
        return ExecutorConfig(
            limits=self.limits(layout.joint_names, layout.lower, layout.upper),
            boundary_rule=self.boundary_rule,
            ensemble_k=self.ensemble_k,
            interpolation=self.interpolation,
            chunk_timeout=self.chunk_timeout,
            measured_timeout=self.joint_state_timeout,
            max_clock_skew=self.max_clock_skew,
        )


def read_executor_settings(source: ParameterSource) -> ExecutorSettings:
    """Read (on a node: declare) every parameter of ``EXECUTOR_SCHEMA`` and return validated
    values; the per-joint caps default to the scalar cap."""
    values = read_parameters(source, EXECUTOR_SCHEMA)
    if not values["embodiment"]:
        raise ValueError(
            "parameter embodiment is required (e.g. robotwin_aloha, libero_franka, "
            "or a path to an embodiment YAML)"
        )
    try:
        spec = load_embodiment(values["embodiment"])
    except FileNotFoundError as error:
        raise ValueError(f"parameter embodiment: {error}") from None
    joints = spec.robot_joints
    per_joint = read_parameters(
        source,
        EXECUTOR_SCHEMA,
        {"joint": joints},
        {f"joint_limits.{joint}.{cap}": values[cap] for cap in CAPS for joint in joints},
    )
    joint_caps = {cap: {joint: per_joint[f"joint_limits.{joint}.{cap}"] for joint in joints} for cap in CAPS}
    return validate_settings(values, spec, joint_caps)


def settings_from_values(values: Mapping[str, Any]) -> ExecutorSettings:
    """Validated settings from parameter values (dotted names, e.g. a parameter file's), as the
    node would read them."""
    return read_executor_settings(ValueSource(values))


def validate_settings(
    values: Mapping[str, Any], spec: EmbodimentSpec, joint_caps: dict[str, dict[str, float]]
) -> ExecutorSettings:
    """What the schema cannot check alone, on values ``read_parameters`` checked; ValueError
    names the bad parameter."""
    modes = values["output_modes"]
    if not modes and not values["shadow"]:
        raise ValueError(
            "parameter output_modes is empty: the executor would command nothing (set shadow:=true for that)"
        )
    if {"joint_trajectory", "joint_trajectory_plan"} <= set(modes):
        raise ValueError(
            "parameter output_modes: joint_trajectory and joint_trajectory_plan both publish on "
            "joint_trajectory_topic; choose one"
        )
    return ExecutorSettings(
        embodiment=values["embodiment"],
        spec=spec,
        kinematics_file=values["kinematics_file"],
        joint_names=tuple(values["joint_names"] or ()),
        control_rate=values["control_rate"],
        thread_priority=values["thread_priority"],
        boundary_rule=values["boundary_rule"],
        ensemble_k=values["ensemble_k"],
        interpolation=INTERPOLATION_ALIASES.get(values["interpolation"], values["interpolation"]),
        joint_caps=joint_caps,
        speed_scaling=values["speed_scaling"],
        ramp_time=values["ramp_time"],
        chunk_timeout=values["chunk_timeout"],
        joint_state_timeout=values["joint_state_timeout"],
        max_clock_skew=values["max_clock_skew"],
        diagnostics_rate=values["diagnostics_rate"],
        request_lead_time=values["request_lead_time"],
        request_retry=values["request_retry"],
        output_modes=tuple(modes),
        shadow=values["shadow"],
        topics={name: values[name] for name in _TOPIC_PARAMETERS},
    )
