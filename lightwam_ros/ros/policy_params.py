"""The policy node's ROS parameters: one table (``POLICY_SCHEMA``) that the node declares,
validates and documents from, read once and validated at start.

Every bad value is a ``ValueError`` naming the parameter, raised before the (slow) model load, so a
mistyped topic or an unknown instruction stops the node at once with a clear message.

Per-input parameters are grouped by camera role and arm, e.g. in a parameter file::

    cameras:
      head: {topic: /head_cam/color/image_raw, compressed: true}

The roles (and the arms whose end-effector pose the state holds) come from the embodiment, which
is the ``embodiment`` parameter or, when that is empty, the one recorded in the checkpoint; a
role or arm the embodiment lacks is refused by name.  No ROS imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from lightwam_ros.ros.parameter_schema import (
    AUTOSTART,
    NodeSchema,
    ParameterSource,
    ParameterSpec,
    ValueSource,
    read_parameters,
)

TRIGGERS = ("timer", "request")
DEFAULT_STATE_MAX_AGE = 0.25  # s


def _topic(name: str, default: str, description: str) -> ParameterSpec:
    return ParameterSpec(name, "string", default, description, nonempty=True)


POLICY_SCHEMA = NodeSchema(
    "lightwam_policy",
    "The Light-WAM policy (`lightwam-policy`): cameras, joint states and an instruction in, "
    "action chunks out.",
    (
        AUTOSTART,
        ParameterSpec("checkpoint", "string", "", "Light-WAM package checkpoint (.safetensors), required."),
        ParameterSpec(
            "instruction_cache", "string", "", "Instruction-embedding cache (.safetensors), required."
        ),
        ParameterSpec("embodiment", "string", "", "Embodiment name or YAML path; empty: the checkpoint's."),
        ParameterSpec("device", "string", "auto", "auto (GPU when present), cpu, cuda or cuda:N."),
        ParameterSpec(
            "dtype", "string", "", "Weights dtype (bf16, fp16, fp32); empty: bf16 on a GPU, fp32 on a CPU."
        ),
        ParameterSpec(
            "compile",
            "bool_or_string",
            False,
            "torch.compile the model stages: false, true or a torch.compile mode.",
            choices=COMPILE_MODES,
        ),
        ParameterSpec("cuda_graphs", "bool", False, "Capture the model pass as one CUDA graph (GPU only)."),
        ParameterSpec(
            "warmup",
            "integer",
            3,
            "Warm-up passes before READY (excluded from the latency statistics).",
            minimum=0,
        ),
        ParameterSpec(
            "trigger",
            "string",
            "timer",
            "timer: infer at 'rate'; request: infer once per message on request_topic or call of "
            "request_service.",
            choices=TRIGGERS,
        ),
        ParameterSpec(
            "rate",
            "double",
            0.0,
            "Inference rate [Hz] with trigger timer; 0: the embodiment's policy rate. Ticks that find "
            "inference still running are skipped, never queued.",
            minimum=0.0,
        ),
        ParameterSpec(
            "instruction",
            "string",
            "",
            "Task (must be in the instruction cache); empty: wait for one on instruction_topic. "
            "Changeable at run time (ros2 param set).",
            runtime=True,
        ),
        ParameterSpec(
            "shadow",
            "bool",
            False,
            "Publish chunks on shadow_chunk_topic only, where no executor listens: predict without "
            "commanding.",
        ),
        ParameterSpec(
            "tolerance",
            "double",
            0.0,
            "Accept samples stamped up to this far after 'now' (clock skew) [s].",
            minimum=0.0,
        ),
        ParameterSpec(
            "frozen_after",
            "double",
            0.0,
            "Refuse a camera whose image has not changed for this long [s]; 0: off (simulated static "
            "scenes repeat frames).",
            minimum=0.0,
        ),
        ParameterSpec(
            "joint_state_max_age",
            "double",
            DEFAULT_STATE_MAX_AGE,
            "Refuse joint states older than this [s].",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        ParameterSpec(
            "status_rate",
            "double",
            1.0,
            "PolicyStatus rate [Hz] (also published on every state change).",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        ParameterSpec(
            "diagnostics_rate",
            "double",
            1.0,
            "DiagnosticArray rate [Hz].",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        _topic("joint_state_topic", "joint_states", "sensor_msgs/JointState input (joints matched by name)."),
        _topic(
            "instruction_topic", "lightwam/instruction", "std_msgs/String: switch to another cached task."
        ),
        _topic(
            "request_topic", "lightwam/request_chunk", "std_msgs/Empty: request one chunk (trigger request)."
        ),
        _topic(
            "request_service",
            "lightwam/request_chunk",
            "std_srvs/Trigger: request one chunk (trigger request); answers at once, the chunk follows.",
        ),
        _topic("chunk_topic", "lightwam/action_chunk", "lightwam_ros/ActionChunk output (executable)."),
        _topic(
            "shadow_chunk_topic",
            "lightwam/shadow_chunk",
            "ActionChunk output in shadow mode, instead of chunk_topic.",
        ),
        _topic("status_topic", "lightwam/policy_status", "lightwam_ros/PolicyStatus output."),
        _topic("diagnostics_topic", "/diagnostics", "diagnostic_msgs/DiagnosticArray output."),
        # One per camera role of the embodiment.
        _topic("cameras.<role>.topic", default_camera_topic("<role>"), "Image topic of camera <role>."),
        ParameterSpec(
            "cameras.<role>.compressed",
            "bool",
            False,
            "Subscribe to sensor_msgs/CompressedImage (JPEG/PNG) on <topic>/compressed, image_transport's "
            "name, instead of Image on <topic>.",
        ),
        ParameterSpec(
            "cameras.<role>.max_age",
            "double",
            0.5,
            "Refuse camera <role>'s frames older than this [s].",
            minimum=0.0,
            exclusive_minimum=True,
        ),
        ParameterSpec(
            "cameras.<role>.size",
            "integer_array",
            None,
            "[height, width] every frame of camera <role> must have, and the size the warm-up prepares "
            "for; unset: any size, the warm-up prepares the embodiment's source_size.",
            minimum=1,
            length=2,
        ),
        ParameterSpec(
            "cameras.<role>.reliable",
            "bool",
            False,
            "Subscribe to camera <role> with reliable QoS: no frame lost to a burst of large images, but "
            "only reliable publishers match; false (best effort) matches every driver.",
        ),
        # One per arm whose end-effector pose the state holds (delta-EEF embodiments).
        ParameterSpec(
            "eef_pose.<arm>.topic",
            "string",
            "",
            "geometry_msgs/PoseStamped of arm <arm>'s end effector in its base frame; empty: forward "
            "kinematics of the joint states.",
        ),
        ParameterSpec(
            "eef_pose.<arm>.max_age",
            "double",
            DEFAULT_STATE_MAX_AGE,
            "Refuse arm <arm>'s poses older than this [s].",
            minimum=0.0,
            exclusive_minimum=True,
        ),
    ),
)
_TOPICS = tuple(spec.name for spec in POLICY_SCHEMA.parameters if spec.family is None and spec.nonempty)


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


def read_policy_settings(source: ParameterSource) -> PolicySettings:
    """Read (on a node: declare) every parameter of ``POLICY_SCHEMA`` and return validated
    values; the camera and pose families follow the embodiment."""
    values = read_parameters(source, POLICY_SCHEMA)
    checkpoint, cache, spec, model_id = _model_files(values)
    roles = [camera.role for camera in spec.canvas.cameras]
    arms = list(pose_arms(spec))
    members = read_parameters(source, POLICY_SCHEMA, {"role": roles, "arm": arms})
    cameras = tuple(
        CameraInput(
            role,
            transport_topic(members[f"cameras.{role}.topic"], members[f"cameras.{role}.compressed"]),
            members[f"cameras.{role}.compressed"],
            members[f"cameras.{role}.max_age"],
            _size(members[f"cameras.{role}.size"]),
            members[f"cameras.{role}.reliable"],
        )
        for role in roles
    )
    poses = tuple(
        PoseInput(arm, members[f"eef_pose.{arm}.topic"], members[f"eef_pose.{arm}.max_age"])
        for arm in arms
        if members[f"eef_pose.{arm}.topic"]
    )
    return validate_settings(values, checkpoint, cache, spec, model_id, cameras, poses)


def settings_from_values(values: dict[str, Any]) -> PolicySettings:
    """Validated settings from parameter values (dotted names, e.g. from
    ``param_files.read_params``), exactly as the node would read them."""
    return read_policy_settings(ValueSource(values))


def _size(size: tuple[int, ...] | None) -> tuple[int, int] | None:
    return None if size is None else (size[0], size[1])


def validate_settings(
    values: dict[str, Any],
    checkpoint: Path,
    cache: InstructionCache,
    spec: EmbodimentSpec,
    model_id: str,
    cameras: tuple[CameraInput, ...],
    poses: tuple[PoseInput, ...],
) -> PolicySettings:
    """What the schema cannot check alone (the device, the instruction against the cache), on
    values ``read_parameters`` checked; ValueError names the bad one."""
    try:
        device = resolve_device(values["device"])
        dtype = values["dtype"] or None
        resolve_dtype(dtype, device)
    except ValueError as error:
        raise ValueError(f"parameter device/dtype: {error}") from None
    if values["cuda_graphs"] and device.type != "cuda":
        raise ValueError(f"parameter cuda_graphs needs a CUDA device, the device is {device}")
    instruction = values["instruction"]
    tasks = tuple(cache.tasks())
    if instruction and instruction not in cache:
        raise ValueError(
            f"parameter instruction {instruction!r} is not in the instruction cache "
            f"{values['instruction_cache']} (tasks: {list(tasks)})"
        )
    return PolicySettings(
        checkpoint=checkpoint,
        instruction_cache=Path(values["instruction_cache"]),
        spec=spec,
        model_id=model_id,
        device=values["device"],
        dtype=dtype,
        compile=values["compile"],
        cuda_graphs=values["cuda_graphs"],
        warmup=values["warmup"],
        trigger=values["trigger"],
        rate=values["rate"] or spec.policy_rate_hz,
        instruction=instruction,
        tasks=tasks,
        shadow=values["shadow"],
        tolerance=values["tolerance"],
        frozen_after=values["frozen_after"] or None,
        joint_state_max_age=values["joint_state_max_age"],
        cameras=cameras,
        poses=poses,
        status_rate=values["status_rate"],
        diagnostics_rate=values["diagnostics_rate"],
        topics={name: values[name] for name in _TOPICS},
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
