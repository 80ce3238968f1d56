"""The chunk executor's ROS parameters: declared with descriptions, read once, validated at start.

Every bad value is a ``ValueError`` naming the parameter, so the node refuses to start with a
clear message instead of commanding an arm with a half-understood configuration.  Numeric
parameters accept integers as well as doubles (``-p control_rate:=500`` works); the joint caps
accept a scalar for every joint or a list in the commanded joint order (``joint_names``, or the
embodiment's order when that is empty).
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter

from lightwam_ros.control.executor_core import ExecutorConfig
from lightwam_ros.control.interpolation import INTERPOLATION_KINDS
from lightwam_ros.control.safety import JointSafetyLimits
from lightwam_ros.control.scheduling import BOUNDARY_RULES
from lightwam_ros.ros.parameter_checks import declare_value, finite_number

# joint_trajectory_plan: the whole motion ahead as one JointTrajectory per chunk (and hold), for a
# joint trajectory controller that interpolates at its own rate; nothing is published per tick.
OUTPUT_MODES = ("joint_trajectory", "forward_command", "joint_state", "joint_trajectory_plan")
INTERPOLATION_ALIASES = {"min_jerk": "minimum_jerk"}

# name -> (default, description).  Numbers are dynamically typed (int or double, scalar or list).
_NUMBERS: dict[str, tuple[float, str]] = {
    "control_rate": (500.0, "Command rate [Hz]: the control loop that samples the trajectory."),
    "thread_priority": (
        50,
        "SCHED_FIFO priority (1-99) of the control loop's thread, as "
        "ros2_control's; where the process may not use real-time scheduling "
        "it runs at normal priority (logged). 0: normal scheduling.",
    ),
    "ensemble_k": (
        0.01,
        "Temporal-ensembling weight exp(-k i) over overlapping chunks "
        "(k > 0 favours older predictions, as ACT).",
    ),
    "max_velocity": (1.0, "Velocity cap per joint [rad/s or m/s]: scalar or one per joint."),
    "max_acceleration": (5.0, "Acceleration cap per joint [rad/s^2 or m/s^2]: scalar or list."),
    "max_deviation": (0.3, "Largest |command - measured| per joint: scalar or list."),
    "max_chunk_step": (
        0.5,
        "Largest change between consecutive chunk steps per joint; a chunk "
        "with a bigger jump is refused as a whole: scalar or list.",
    ),
    "limit_margin": (
        0.02,
        "Chunk values up to this far outside the joint limits are clipped, "
        "further out the chunk is refused: scalar or list.",
    ),
    "speed_scaling": (
        1.0,
        "Speed override in [0, 1], changeable at run time (ros2 param set): "
        "chunks are executed with their step time divided by it, so the arm "
        "follows the same path slower; 0 pauses (a brake to a hold, chunks "
        "refused) until it is raised again.",
    ),
    "ramp_time": (1.0, "Seconds for the velocity cap to grow from 0 to 1 after activation."),
    "chunk_timeout": (0.5, "Hold when no chunk was accepted for this long [s]."),
    "joint_state_timeout": (0.1, "Hold when the newest joint state is older than this [s]."),
    "max_clock_skew": (0.1, "Refuse chunks and joint states stamped further in the future [s]."),
    "diagnostics_rate": (2.0, "Rate of the DiagnosticArray on the diagnostics topic [Hz]."),
    "request_lead_time": (
        0.0,
        "> 0: ask the policy (trigger:=request) for a chunk on "
        "chunk_request_topic when the plan ends within this many seconds "
        "(its latency plus transport); 0: never ask (timer policies).",
    ),
    "request_retry": (1.0, "Ask again after this many seconds without a new chunk [s]."),
}
_PER_JOINT = ("max_velocity", "max_acceleration", "max_deviation", "max_chunk_step", "limit_margin")
_STRINGS: dict[str, tuple[str, str]] = {
    "embodiment": ("", "Embodiment name (shipped, e.g. robotwin_aloha) or path to its YAML."),
    "kinematics_file": (
        "",
        "Modified-DH YAML of the arm for delta-EEF chunks (empty: the Panda for Panda joint names).",
    ),
    "boundary_rule": ("latest", f"How overlapping chunks combine: one of {BOUNDARY_RULES}."),
    "interpolation": ("quintic", "Trajectory through the chunk steps: cubic, quintic or min_jerk."),
    "chunk_topic": ("lightwam/action_chunk", "lightwam_ros/ActionChunk input."),
    "joint_state_topic": ("joint_states", "sensor_msgs/JointState input (matched by name)."),
    "estop_topic": ("lightwam/estop", "std_msgs/Bool input: true latches a hold until reset."),
    "estop_service": ("lightwam/estop", "std_srvs/Trigger: latch a hold."),
    "reset_service": ("lightwam/reset", "std_srvs/Trigger: clear the e-stop and the plan."),
    "joint_trajectory_topic": (
        "joint_trajectory_controller/joint_trajectory",
        "trajectory_msgs/JointTrajectory output (output modes joint_trajectory: a point per tick; "
        "joint_trajectory_plan: the whole motion ahead per chunk and hold).",
    ),
    "forward_command_topic": (
        "forward_position_controller/commands",
        "std_msgs/Float64MultiArray output (output mode forward_command).",
    ),
    "joint_command_topic": (
        "lightwam/joint_command",
        "sensor_msgs/JointState output (output mode joint_state).",
    ),
    "target_pose_topic": (
        "lightwam/target_pose",
        "geometry_msgs/PoseStamped end-effector target (delta-EEF embodiments).",
    ),
    "shadow_command_topic": (
        "lightwam/shadow_command",
        "sensor_msgs/JointState of what would be commanded in shadow mode.",
    ),
    "planned_trajectory_topic": (
        "lightwam/planned_trajectory",
        "trajectory_msgs/JointTrajectory of the path the executor will "
        "command, published on each accepted chunk (for RViz).",
    ),
    "planned_path_topic": (
        "lightwam/planned_path",
        "visualization_msgs/MarkerArray: that path's end-effector positions "
        "by forward kinematics (arms with kinematics: delta-EEF).",
    ),
    "diagnostics_topic": ("/diagnostics", "diagnostic_msgs/DiagnosticArray output."),
    "chunk_request_topic": (
        "lightwam/request_chunk",
        "std_msgs/Empty output asking the policy for a chunk (request_lead_time > 0).",
    ),
}
_TOPIC_PARAMETERS = tuple(name for name in _STRINGS if name.endswith(("_topic", "_service")))


@dataclass(frozen=True)
class ExecutorSettings:
    """Validated parameter values; per-joint caps are still scalars or lists (see ``limits``)."""

    embodiment: str
    kinematics_file: str
    joint_names: tuple[str, ...]
    control_rate: float
    thread_priority: float
    boundary_rule: str
    ensemble_k: float
    interpolation: str
    max_velocity: float | tuple[float, ...]
    max_acceleration: float | tuple[float, ...]
    max_deviation: float | tuple[float, ...]
    max_chunk_step: float | tuple[float, ...]
    limit_margin: float | tuple[float, ...]
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
        """Safety limits for the commanded joints; a list cap must have one entry per joint."""
        caps = {}
        for name in _PER_JOINT:
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != len(joint_names):
                raise ValueError(
                    f"parameter {name}: {len(value)} values for {len(joint_names)} joints {list(joint_names)}"
                )
            caps[name] = np.broadcast_to(np.asarray(value, dtype=np.float64), len(joint_names))
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

    def core_config(self, limits: JointSafetyLimits) -> ExecutorConfig:
        return ExecutorConfig(
            limits=limits,
            boundary_rule=self.boundary_rule,
            ensemble_k=self.ensemble_k,
            interpolation=self.interpolation,
            chunk_timeout=self.chunk_timeout,
            measured_timeout=self.joint_state_timeout,
            max_clock_skew=self.max_clock_skew,
        )


def declare_executor_parameters(node: Node) -> ExecutorSettings:
    """Declare every parameter on ``node`` (with its description) and return validated values."""
    values: dict[str, Any] = {}
    for name, (default, description) in _NUMBERS.items():
        values[name] = declare_value(node, name, default, description, dynamic=True)
    for name, (text, description) in _STRINGS.items():
        values[name] = declare_value(node, name, text, description)
    values["joint_names"] = node.declare_parameter(
        "joint_names",
        Parameter.Type.STRING_ARRAY,
        ParameterDescriptor(
            description="Commanded joints in output order (empty: the embodiment's order); "
            "per-joint caps follow this order."
        ),
    ).value
    values["output_modes"] = node.declare_parameter(
        "output_modes",
        ["joint_trajectory"],
        ParameterDescriptor(description=f"Command outputs, any of {list(OUTPUT_MODES)}."),
    ).value
    values["shadow"] = node.declare_parameter(
        "shadow",
        False,
        ParameterDescriptor(
            description="Run everything but command nothing: the would-be command goes to "
            "shadow_command_topic only."
        ),
    ).value
    return validate_settings(values)


def validate_settings(values: dict[str, Any]) -> ExecutorSettings:
    """Check raw parameter values (as rclpy returns them); ValueError names the bad one."""
    numbers = {name: finite_number(name, values[name]) for name in _NUMBERS if name not in _PER_JOINT}
    for name in ("control_rate", "chunk_timeout", "joint_state_timeout", "diagnostics_rate", "request_retry"):
        if numbers[name] <= 0.0:
            raise ValueError(f"parameter {name} must be > 0, got {numbers[name]}")
    for name in ("ramp_time", "max_clock_skew", "request_lead_time"):
        if numbers[name] < 0.0:
            raise ValueError(f"parameter {name} must be >= 0, got {numbers[name]}")
    speed_refusal = speed_scaling_refusal(numbers["speed_scaling"])
    if speed_refusal:
        raise ValueError(f"parameter speed_scaling {speed_refusal}")
    if numbers["thread_priority"] not in range(100):
        raise ValueError(
            f"parameter thread_priority must be an integer in 0..99, got {numbers['thread_priority']}"
        )
    caps: dict[str, Any] = {name: _cap(name, values[name]) for name in _PER_JOINT}
    embodiment = str(values["embodiment"]).strip()
    if not embodiment:
        raise ValueError(
            "parameter embodiment is required (e.g. robotwin_aloha, libero_franka, "
            "or a path to an embodiment YAML)"
        )
    if values["boundary_rule"] not in BOUNDARY_RULES:
        raise ValueError(
            f"parameter boundary_rule must be one of {list(BOUNDARY_RULES)}, got {values['boundary_rule']!r}"
        )
    interpolation = INTERPOLATION_ALIASES.get(values["interpolation"], values["interpolation"])
    if interpolation not in INTERPOLATION_KINDS:
        raise ValueError(
            f"parameter interpolation must be one of cubic, quintic, min_jerk, got "
            f"{values['interpolation']!r}"
        )
    modes = tuple(values["output_modes"] or ())
    unknown = [mode for mode in modes if mode not in OUTPUT_MODES]
    if unknown or len(set(modes)) != len(modes):
        raise ValueError(
            f"parameter output_modes must list distinct entries of {list(OUTPUT_MODES)}, got {list(modes)}"
        )
    if not modes and not values["shadow"]:
        raise ValueError(
            "parameter output_modes is empty: the executor would command nothing (set shadow:=true for that)"
        )
    if {"joint_trajectory", "joint_trajectory_plan"} <= set(modes):
        raise ValueError(
            "parameter output_modes: joint_trajectory and joint_trajectory_plan both publish on "
            "joint_trajectory_topic; choose one"
        )
    topics = {name: str(values[name]).strip() for name in _TOPIC_PARAMETERS}
    empty = [name for name, topic in topics.items() if not topic]
    if empty:
        raise ValueError(f"parameters {empty} must name a topic or service")
    return ExecutorSettings(
        embodiment=embodiment,
        kinematics_file=str(values["kinematics_file"]).strip(),
        joint_names=tuple(values["joint_names"] or ()),
        boundary_rule=values["boundary_rule"],
        interpolation=interpolation,
        output_modes=modes,
        shadow=bool(values["shadow"]),
        topics=topics,
        **numbers,
        **caps,
    )


def _cap(name: str, value: Any) -> float | tuple[float, ...]:
    """A positive scalar or a non-empty list of them (limit_margin may be 0)."""
    scalar = isinstance(value, (int, float)) and not isinstance(value, bool)
    numbers: tuple[float, ...]
    if scalar:
        numbers = (finite_number(name, value),)
    elif isinstance(value, (list, tuple, array.array)) and len(value) > 0:
        numbers = tuple(finite_number(name, item) for item in value)
    else:
        raise ValueError(f"parameter {name} must be a number or a list of numbers, got {value!r}")
    allow_zero = name == "limit_margin"  # the margin may be 0, the caps may not
    if any(v < 0.0 or (v == 0.0 and not allow_zero) for v in numbers):
        raise ValueError(
            f"parameter {name} must be {'>= 0' if allow_zero else '> 0'} for every joint, got {list(numbers)}"
        )
    return numbers[0] if scalar else numbers


def speed_scaling_refusal(value: Any) -> str:
    """Why ``value`` is no speed override ("" when it is one: a number in [0, 1])."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number in [0, 1], got {value!r}"
    if not 0.0 <= float(value) <= 1.0:
        return f"must be in [0, 1], got {value}"
    return ""
