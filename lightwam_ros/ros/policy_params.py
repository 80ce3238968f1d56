"""The policy node's ROS parameters: declared with descriptions, read once, validated at start.

Every bad value is a ``ValueError`` naming the parameter, raised before the (slow) model load, so a
mistyped topic or an unknown instruction stops the node at once with a clear message.

Per-input parameters are grouped by camera role and arm, e.g. in a parameter file::

    cameras:
      head: {topic: /head_cam/color/image_raw, compressed: false, max_age: 0.5}

The roles (and the arms whose end-effector pose the state holds) come from the embodiment, which
is the ``embodiment`` parameter or, when that is empty, the one recorded in the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.parameter import Parameter
from safetensors import SafetensorError, safe_open

from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.policy.device import resolve_device, resolve_dtype
from lightwam_ros.policy.embodiment import (
    EmbodimentSpec,
    default_camera_topic,
    load_embodiment,
    transport_topic,
)
from lightwam_ros.policy.runner import COMPILE_MODES
from lightwam_ros.policy.state_builder import pose_arms
from lightwam_ros.ros.parameter_checks import declare_value, finite_number

TRIGGERS = ("timer", "request")
DEFAULT_CAMERA_MAX_AGE = 0.5  # s
DEFAULT_STATE_MAX_AGE = 0.25  # s

_STRINGS: dict[str, tuple[str, str]] = {
    "checkpoint": ("", "Light-WAM package checkpoint (.safetensors), required."),
    "instruction_cache": ("", "Instruction-embedding cache (.safetensors), required."),
    "embodiment": ("", "Embodiment name or YAML path; empty: the checkpoint's."),
    "device": ("auto", "auto (GPU when present), cpu, cuda or cuda:N."),
    "dtype": ("", "Weights dtype (bf16, fp16, fp32); empty: bf16 on a GPU, fp32 on a CPU."),
    "trigger": (
        "timer",
        "timer: infer at 'rate'; request: infer once per message on "
        "request_topic or call of request_service.",
    ),
    "instruction": (
        "",
        "Initial task (must be in the instruction cache); empty: wait for one on instruction_topic.",
    ),
    "joint_state_topic": ("joint_states", "sensor_msgs/JointState input (joints matched by name)."),
    "instruction_topic": ("lightwam/instruction", "std_msgs/String: switch to another cached task."),
    "request_topic": ("lightwam/request_chunk", "std_msgs/Empty: request one chunk (trigger request)."),
    "request_service": (
        "lightwam/request_chunk",
        "std_srvs/Trigger: request one chunk (trigger request); answers at once, the chunk follows.",
    ),
    "chunk_topic": ("lightwam/action_chunk", "lightwam_ros/ActionChunk output (executable)."),
    "shadow_chunk_topic": (
        "lightwam/shadow_chunk",
        "ActionChunk output in shadow mode, instead of chunk_topic.",
    ),
    "status_topic": ("lightwam/policy_status", "lightwam_ros/PolicyStatus output."),
    "diagnostics_topic": ("/diagnostics", "diagnostic_msgs/DiagnosticArray output."),
}
_TOPICS = tuple(name for name in _STRINGS if name.endswith(("_topic", "_service")))
# name -> (default, description); numbers accept int or double.
_NUMBERS: dict[str, tuple[float, str]] = {
    "rate": (
        0.0,
        "Inference rate [Hz] with trigger timer; 0: the embodiment's policy rate. "
        "Ticks that find inference still running are skipped, never queued.",
    ),
    "tolerance": (0.0, "Accept samples stamped up to this far after 'now' (clock skew) [s]."),
    "joint_state_max_age": (DEFAULT_STATE_MAX_AGE, "Refuse joint states older than this [s]."),
    "frozen_after": (
        0.0,
        "Refuse a camera whose image has not changed for this long [s]; 0: "
        "off (simulated static scenes repeat frames).",
    ),
    "status_rate": (1.0, "PolicyStatus rate [Hz] (also published on every state change)."),
    "diagnostics_rate": (1.0, "DiagnosticArray rate [Hz]."),
}


@dataclass(frozen=True)
class CameraInput:
    role: str
    topic: str
    compressed: bool
    max_age: float
    size: tuple[int, int] | None  # (height, width) every frame must have; None: any
    reliable: bool  # reliable QoS subscription instead of best effort


@dataclass(frozen=True)
class PoseInput:
    """A measured end-effector pose (geometry_msgs/PoseStamped in the arm's base frame)."""

    arm: str
    topic: str
    max_age: float


@dataclass(frozen=True)
class PolicySettings:
    checkpoint: Path
    instruction_cache: Path
    spec: EmbodimentSpec
    model_id: str
    device: str
    dtype: str | None
    compile: bool | str
    cuda_graphs: bool
    warmup: int
    trigger: str
    rate: float
    instruction: str
    tasks: tuple[str, ...]
    shadow: bool
    tolerance: float
    frozen_after: float | None
    joint_state_max_age: float
    cameras: tuple[CameraInput, ...]
    poses: tuple[PoseInput, ...]  # arms whose pose is measured; the others use kinematics
    status_rate: float
    diagnostics_rate: float
    topics: dict[str, str]


def declare_policy_parameters(node: Node) -> PolicySettings:
    """Declare every parameter on ``node`` (with its description) and return validated values."""
    values: dict[str, Any] = {}
    for name, (text, description) in _STRINGS.items():
        values[name] = declare_value(node, name, text, description)
    for name, (default, description) in _NUMBERS.items():
        values[name] = declare_value(node, name, default, description, dynamic=True)
    values["compile"] = declare_value(
        node,
        "compile",
        False,
        f"torch.compile the model stages: false, true or a mode of {list(COMPILE_MODES)}.",
        dynamic=True,
    )
    values["cuda_graphs"] = declare_value(
        node, "cuda_graphs", False, "Capture the model pass as one CUDA graph (GPU only)."
    )
    values["warmup"] = declare_value(
        node, "warmup", 3, "Warm-up passes before READY (excluded from the latency statistics)."
    )
    values["shadow"] = declare_value(
        node,
        "shadow",
        False,
        "Publish chunks on shadow_chunk_topic only, where no executor listens: predict without commanding.",
    )
    checkpoint, cache, spec, model_id = _model_files(values)
    cameras = tuple(_declare_camera(node, camera.role) for camera in spec.canvas.cameras)
    poses = tuple(pose for pose in (_declare_pose(node, arm) for arm in pose_arms(spec)) if pose)
    return validate_settings(values, checkpoint, cache, spec, model_id, cameras, poses)


class ParameterValues:
    """Stands in for a node where settings are needed without one (the offline check): serves
    ``declare_parameter`` from a dict of values (dotted names, as in a parameter file)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)

    def declare_parameter(self, name: str, default: Any, _descriptor: Any = None) -> Parameter:
        if name in self._values:
            return Parameter(name, value=self._values[name])
        if isinstance(default, Parameter.Type):
            return Parameter(name)  # a typed declaration without a value: unset
        return Parameter(name, value=default)


def settings_from_values(values: dict[str, Any]) -> PolicySettings:
    """Validated settings from parameter values (dotted names, e.g. from
    ``bringup_plan.read_params``), exactly as the node would read them."""
    return declare_policy_parameters(ParameterValues(values))  # type: ignore[arg-type]


def validate_settings(
    values: dict[str, Any],
    checkpoint: Path,
    cache: InstructionCache,
    spec: EmbodimentSpec,
    model_id: str,
    cameras: tuple[CameraInput, ...],
    poses: tuple[PoseInput, ...],
) -> PolicySettings:
    """Check the raw values of the general parameters; ValueError names the bad one."""
    numbers = {name: finite_number(name, values[name]) for name in _NUMBERS}
    for name in ("status_rate", "diagnostics_rate", "joint_state_max_age"):
        if numbers[name] <= 0.0:
            raise ValueError(f"parameter {name} must be > 0, got {numbers[name]}")
    for name in ("rate", "tolerance", "frozen_after"):
        if numbers[name] < 0.0:
            raise ValueError(f"parameter {name} must be >= 0, got {numbers[name]}")
    trigger = values["trigger"]
    if trigger not in TRIGGERS:
        raise ValueError(f"parameter trigger must be one of {list(TRIGGERS)}, got {trigger!r}")
    try:
        device = resolve_device(values["device"])
        dtype = values["dtype"].strip() or None
        resolve_dtype(dtype, device)
    except ValueError as error:
        raise ValueError(f"parameter device/dtype: {error}") from None
    compile_mode = values["compile"]
    if not (isinstance(compile_mode, bool) or compile_mode in COMPILE_MODES):
        raise ValueError(
            f"parameter compile must be true, false or one of {list(COMPILE_MODES)}, got {compile_mode!r}"
        )
    if values["cuda_graphs"] and device.type != "cuda":
        raise ValueError(f"parameter cuda_graphs needs a CUDA device, the device is {device}")
    warmup = values["warmup"]
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"parameter warmup must be an integer >= 0, got {warmup!r}")
    instruction = values["instruction"].strip()
    tasks = tuple(cache.tasks())
    if instruction and instruction not in cache:
        raise ValueError(
            f"parameter instruction {instruction!r} is not in the instruction cache "
            f"{values['instruction_cache']} (tasks: {list(tasks)})"
        )
    topics = {name: values[name].strip() for name in _TOPICS}
    empty = [name for name, topic in topics.items() if not topic]
    if empty:
        raise ValueError(f"parameters {empty} must name a topic or service")
    return PolicySettings(
        checkpoint=checkpoint,
        instruction_cache=Path(values["instruction_cache"]),
        spec=spec,
        model_id=model_id,
        device=values["device"],
        dtype=dtype,
        compile=compile_mode,
        cuda_graphs=bool(values["cuda_graphs"]),
        warmup=warmup,
        trigger=trigger,
        rate=numbers["rate"] or spec.policy_rate_hz,
        instruction=instruction,
        tasks=tasks,
        shadow=bool(values["shadow"]),
        tolerance=numbers["tolerance"],
        frozen_after=numbers["frozen_after"] or None,
        joint_state_max_age=numbers["joint_state_max_age"],
        cameras=cameras,
        poses=poses,
        status_rate=numbers["status_rate"],
        diagnostics_rate=numbers["diagnostics_rate"],
        topics=topics,
    )


def _model_files(values: dict[str, Any]) -> tuple[Path, InstructionCache, EmbodimentSpec, str]:
    """Checkpoint identity, instruction cache and embodiment, read without loading weights."""
    for name in ("checkpoint", "instruction_cache"):
        if not values[name].strip():
            raise ValueError(f"parameter {name} is required (make a test package with lightwam-make-tiny)")
        if not Path(values[name]).expanduser().is_file():
            raise ValueError(f"parameter {name}: no such file {values[name]!r}")
    checkpoint = Path(values["checkpoint"]).expanduser()
    recorded_embodiment, model_id = checkpoint_identity(checkpoint)
    try:
        cache = InstructionCache.load(Path(values["instruction_cache"]).expanduser())
        spec = load_embodiment(values["embodiment"].strip() or recorded_embodiment)
    except (ValueError, FileNotFoundError) as error:
        raise ValueError(f"parameter instruction_cache/embodiment: {error}") from None
    if spec.name != recorded_embodiment:
        raise ValueError(
            f"parameter embodiment: {spec.name!r}, but the checkpoint was trained for {recorded_embodiment!r}"
        )
    return checkpoint, cache, spec, model_id


def checkpoint_identity(path: Path) -> tuple[str, str]:
    """(embodiment, model_id) from the checkpoint's header; the weights are read later."""
    try:
        with safe_open(str(path), framework="numpy") as reader:
            metadata = reader.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"parameter checkpoint: {path} is not a safetensors checkpoint ({error})") from None
    missing = [key for key in ("embodiment", "model_id") if not metadata.get(key)]
    if missing:
        raise ValueError(
            f"parameter checkpoint: {path} records no {missing}; convert it with lightwam-convert"
        )
    return metadata["embodiment"], metadata["model_id"]


def _declare_camera(node: Node, role: str) -> CameraInput:
    prefix = f"cameras.{role}."
    compressed = declare_value(
        node,
        prefix + "compressed",
        False,
        "Subscribe to "
        "sensor_msgs/CompressedImage (JPEG/PNG) on <topic>/compressed, "
        "image_transport's name, instead of Image on <topic>.",
    )
    image_topic = declare_value(
        node, prefix + "topic", "", f"Camera '{role}' image topic; empty: {default_camera_topic(role)}."
    ).strip()
    topic = transport_topic(image_topic or default_camera_topic(role), compressed)
    max_age = finite_number(
        prefix + "max_age",
        declare_value(
            node,
            prefix + "max_age",
            DEFAULT_CAMERA_MAX_AGE,
            f"Refuse camera '{role}' frames older than this [s].",
            dynamic=True,
        ),
    )
    if max_age <= 0.0:
        raise ValueError(f"parameter {prefix}max_age must be > 0, got {max_age}")
    size: Any = node.declare_parameter(
        prefix + "size",
        Parameter.Type.INTEGER_ARRAY,
        ParameterDescriptor(
            description=f"[height, width] every '{role}' frame must have, and the "
            "size the warm-up prepares for (unset: any size; the "
            "warm-up prepares the embodiment's source_size)"
        ),
    ).value
    if size is not None:
        size = tuple(int(v) for v in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"parameter {prefix}size must be [height, width] > 0, got {list(size)}")
    reliable = declare_value(
        node,
        prefix + "reliable",
        False,
        (
            f"Subscribe to camera '{role}' with reliable QoS: no frame lost to a burst of large "
            "images, but only reliable publishers match; false (best effort) matches every driver."
        ),
    )
    return CameraInput(role, topic, bool(compressed), max_age, size, bool(reliable))


def _declare_pose(node: Node, arm: str) -> PoseInput | None:
    prefix = f"eef_pose.{arm}."
    topic = declare_value(
        node,
        prefix + "topic",
        "",
        f"geometry_msgs/PoseStamped of arm "
        f"'{arm}''s end effector in its base frame; empty: forward kinematics "
        "of the joint states (Franka Panda only).",
    ).strip()
    max_age = finite_number(
        prefix + "max_age",
        declare_value(
            node,
            prefix + "max_age",
            DEFAULT_STATE_MAX_AGE,
            f"Refuse arm '{arm}' poses older than this [s].",
            dynamic=True,
        ),
    )
    if max_age <= 0.0:
        raise ValueError(f"parameter {prefix}max_age must be > 0, got {max_age}")
    return PoseInput(arm, topic, max_age) if topic else None
