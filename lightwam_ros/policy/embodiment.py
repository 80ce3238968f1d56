"""Declarative embodiment specifications: one YAML file describes one robot for Light-WAM.

Everything the pre- and post-processing needs (camera canvas, state and action layout, gripper
convention, normalisation, chunking, rate, joint limits) lives in the YAML, so a new robot is added
by writing a file, not code.  Joints are referred to by *name* everywhere; the order of the state
and action vectors is the order of the fields listed in the file.

Shipped files live in ``lightwam_ros/config/embodiments/`` (inside the package, so they travel
with any installation); ``load_embodiment("libero_franka")`` finds them by file stem, and
``load_embodiment("/path/to/my_robot.yaml")`` loads any other file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from lightwam_ros.policy.urdf_chain import (
    IDENTITY,
    Origin,
    UrdfChainError,
    UrdfJoint,
    joint_from_mapping,
    origin_from_mapping,
    read_urdf_chain,
)

SCHEMA_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "config" / "embodiments"
# Folders (os.pathsep-separated) of more embodiment YAML files, searched before the shipped ones:
# a new robot is one file there, named <name>.yaml.
EMBODIMENT_PATH_ENV = "LIGHTWAM_EMBODIMENT_PATH"

VAE_STRIDE = 8  # Wan2.1 VAE spatial downsampling
PATCH_SIZE = 2  # DiT spatial patch (1, 2, 2)
TOKEN_STRIDE = VAE_STRIDE * PATCH_SIZE

ACTION_MODES = ("delta_eef", "absolute_joints")
NORMALIZATION_MODES = ("min_max", "z_score")
ROTATIONS_DEG = (0, 90, 180, 270)

# Field kinds: how a slice of the state/action vector relates to the robot.
# Fixed-size kinds; "joint_positions" takes its size from its joint list.
_FIXED_KIND_SIZES = {
    "gripper_normalized": 1,  # gripper on the arm's command scale (see GripperSpec)
    "eef_position": 3,  # end-effector position in the arm's base frame
    "eef_axis_angle": 3,  # end-effector orientation as an axis-angle vector
    "eef_delta_position": 3,  # delta-EEF action: translation (scaled, see DeltaEefScaling)
    "eef_delta_axis_angle": 3,  # delta-EEF action: rotation (scaled)
    "gripper_command": 1,  # delta-EEF action: gripper command after post-processing
}
STATE_KINDS = ("joint_positions", "gripper_normalized", "eef_position", "eef_axis_angle")
ACTION_KINDS = {
    "absolute_joints": ("joint_positions", "gripper_normalized"),
    "delta_eef": ("eef_delta_position", "eef_delta_axis_angle", "gripper_command"),
}
_KINDS_NEEDING_GRIPPER = ("gripper_normalized", "gripper_command")


class EmbodimentSpecError(ValueError):
    """An embodiment YAML file is malformed; the message names the file and the field."""


# --------------------------------------------------------------------------------------------
# Typed specification
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JointLimit:
    name: str
    lower: float
    upper: float


@dataclass(frozen=True)
class GripperSpec:
    """Gripper joints and the convention that links their positions to action/state values.

    ``command_open``/``command_close`` are the values the *action* (and a ``gripper_normalized``
    state field) uses for a fully open/closed gripper; ``open_position``/``closed_position`` are
    the corresponding joint positions.  The mapping between the two is linear.
    """

    joints: tuple[str, ...]
    open_position: float
    closed_position: float
    command_open: float
    command_close: float

    @property
    def close_sign(self) -> int:
        """+1 when a larger command closes the gripper, -1 when a smaller one does."""
        return 1 if self.command_close > self.command_open else -1

    def joint_to_command(self, position: float) -> float:
        """Joint position -> value on the command scale (not clipped)."""
        frac = (position - self.open_position) / (self.closed_position - self.open_position)
        return self.command_open + frac * (self.command_close - self.command_open)

    def command_to_joint(self, command: float) -> float:
        """Command-scale value -> joint position (not clipped)."""
        frac = (command - self.command_open) / (self.command_close - self.command_open)
        return self.open_position + frac * (self.closed_position - self.open_position)


@dataclass(frozen=True)
class DHRow:
    """One modified (Craig) Denavit-Hartenberg row: ``RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``,
    the joint angle added to ``theta`` for a joint row."""

    a: float
    d: float
    alpha: float
    theta: float = 0.0


@dataclass(frozen=True)
class ArmKinematics:
    """An arm's serial chain from ``base_frame`` to ``ee_frame``, in one of two conventions:
    ``modified_dh``: one row per arm joint (in the order of ``joints``), then the fixed frames
    after the last joint; ``urdf``: the URDF joints base to tip (the moving ones are the arm's
    joints, in order), then the tool frame in the last link's frame."""

    convention: str  # one of KINEMATICS_CONVENTIONS
    joints: tuple[DHRow, ...] = ()
    fixed: tuple[DHRow, ...] = ()
    chain: tuple[UrdfJoint, ...] = ()
    tool: Origin = IDENTITY


KINEMATICS_CONVENTIONS = ("modified_dh", "urdf")


@dataclass(frozen=True)
class ArmSpec:
    name: str
    joints: tuple[str, ...]
    joint_limits: tuple[JointLimit, ...]  # one per arm joint, same order as ``joints``
    gripper: GripperSpec | None
    base_frame: str | None
    ee_frame: str | None
    kinematics: ArmKinematics | None = None  # None: no forward kinematics (a pose stream)


@dataclass(frozen=True)
class CameraSpec:
    """One camera's preprocessing and its cell on the canvas."""

    role: str
    rotation_deg: int  # counter-clockwise, applied before cropping/resizing
    center_crop: bool  # crop to the cell's aspect ratio before resizing
    # (height, width) the camera delivers: the one source of camera sizes (the loopback robot and
    # the simulators render it, the policy warms up for it); a deployment overrides it in the
    # policy's parameter cameras.<role>.size.  None: the cell's size.
    source_size: tuple[int, int] | None
    top: int
    left: int
    height: int
    width: int


COMPRESSED_SUFFIX = "/compressed"


def default_camera_topic(role: str) -> str:
    """Where a camera role's images are published unless a node's parameters say otherwise."""
    return f"camera/{role}/image_raw"


def transport_topic(image_topic: str, compressed: bool) -> str:
    """The topic that carries ``image_topic`` in its transport, named as image_transport names it:
    the image topic itself (raw), or ``<image topic>/compressed``.  So a camera switched to
    compressed needs no new topic; one that already names its compressed topic keeps it.  One
    rule for the policy, the recorder and the tools."""
    if compressed and not image_topic.endswith(COMPRESSED_SUFFIX):
        return image_topic + COMPRESSED_SUFFIX
    return image_topic


@dataclass(frozen=True)
class CanvasSpec:
    height: int
    width: int
    fill_rgb: tuple[int, int, int]  # colour of canvas pixels no camera covers
    cameras: tuple[CameraSpec, ...]

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(camera.role for camera in self.cameras)


@dataclass(frozen=True)
class VectorField:
    """A named slice of the state or action vector."""

    name: str
    kind: str
    size: int
    dim_names: tuple[str, ...]
    arm: str | None  # for eef and gripper kinds
    joints: tuple[str, ...]  # for joint_positions
    scale: tuple[float, ...]  # state value = scale * joint reading (e.g. a mirrored finger)

    @property
    def arm_name(self) -> str:
        """The arm of an eef or gripper field (the parser requires one for those kinds)."""
        if self.arm is None:
            raise EmbodimentSpecError(f"field {self.name!r} ({self.kind}) names no arm")
        return self.arm


@dataclass(frozen=True)
class VectorLayout:
    fields: tuple[VectorField, ...]

    @property
    def dim(self) -> int:
        return sum(field.size for field in self.fields)

    @property
    def dim_names(self) -> tuple[str, ...]:
        return tuple(name for field in self.fields for name in field.dim_names)

    def field_slice(self, name: str) -> slice:
        """Where the named field sits in the flat vector."""
        start = 0
        for field in self.fields:
            if field.name == name:
                return slice(start, start + field.size)
            start += field.size
        raise KeyError(f"no field named {name!r}; fields: {[f.name for f in self.fields]}")


@dataclass(frozen=True)
class DeltaEefScaling:
    """The controller's scaling of a normalised delta action (robosuite: 0.05 m, 0.5 rad)."""

    translation_m_per_unit: float
    rotation_rad_per_unit: float
    bound: float  # the controller's action space is [-bound, bound]


@dataclass(frozen=True)
class GripperPostprocess:
    """Affine map, optional negation and optional binarisation of the gripper action dims.

    y = scale * g + offset; if negate: y = -y; if binarize: y = sign(y), with an exact zero mapped
    to ``tie_value``.
    """

    dims: tuple[str, ...]
    scale: float
    offset: float
    negate: bool
    binarize: bool
    tie_value: float


@dataclass(frozen=True)
class ActionSpec:
    mode: str
    layout: VectorLayout
    delta_eef: DeltaEefScaling | None
    gripper_postprocess: GripperPostprocess | None


@dataclass(frozen=True)
class NormalizationSpec:
    mode: str
    clamp: float


@dataclass(frozen=True)
class ChunkSpec:
    length: int
    execute_steps: int


@dataclass(frozen=True)
class EmbodimentSpec:
    name: str
    description: str
    source: str  # the file it came from, for messages
    arms: tuple[ArmSpec, ...]
    canvas: CanvasSpec
    state: VectorLayout
    action: ActionSpec
    normalization: NormalizationSpec
    chunk: ChunkSpec
    policy_rate_hz: float
    # Instructions of the embodiment's demonstrations or simulated tasks: the tiny test package's
    # instruction cache holds them, and a bring-up of that package starts on the first.
    tasks: tuple[str, ...] = ()

    @property
    def state_dim(self) -> int:
        return self.state.dim

    @property
    def action_dim(self) -> int:
        return self.action.layout.dim

    @property
    def canvas_height(self) -> int:
        return self.canvas.height

    @property
    def canvas_width(self) -> int:
        return self.canvas.width

    @property
    def latent_size(self) -> tuple[int, int]:
        """VAE latent (height, width): the canvas / 8 (the spec table's "latent 28x56")."""
        return self.canvas.height // VAE_STRIDE, self.canvas.width // VAE_STRIDE

    @property
    def token_grid(self) -> tuple[int, int]:
        """DiT token grid after the 2x2 patch: the canvas / 16."""
        return self.canvas.height // TOKEN_STRIDE, self.canvas.width // TOKEN_STRIDE

    @property
    def token_count(self) -> int:
        rows, cols = self.token_grid
        return rows * cols

    def arm(self, name: str) -> ArmSpec:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"{self.name}: no arm named {name!r}")

    def field_gripper(self, field: VectorField) -> GripperSpec:
        """The gripper of a gripper field's arm (the parser requires one for those kinds)."""
        gripper = self.arm(field.arm_name).gripper
        if gripper is None:
            raise EmbodimentSpecError(
                f"{self.name}: field {field.name!r} ({field.kind}) needs a gripper on arm {field.arm!r}"
            )
        return gripper

    @property
    def robot_joints(self) -> tuple[str, ...]:
        """Every joint of the robot, arm by arm: the arm's joints, then its gripper's (the order
        a robot, real or simulated, reports and takes them in)."""
        return tuple(_declared_joints(self.arms))

    def joint_limit(self, joint: str) -> tuple[float, float]:
        """Position limits of an arm joint, or the open/closed range of a gripper joint."""
        for arm in self.arms:
            for limit in arm.joint_limits:
                if limit.name == joint:
                    return limit.lower, limit.upper
            if arm.gripper is not None and joint in arm.gripper.joints:
                ends = (arm.gripper.open_position, arm.gripper.closed_position)
                return min(ends), max(ends)
        raise KeyError(f"{self.name}: no joint named {joint!r}")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def camera_sizes(spec: EmbodimentSpec) -> dict[str, tuple[int, int]]:
    """(height, width) of each camera role's images, as they arrive unless a deployment says
    otherwise: the camera's ``source_size``, else its canvas cell's size."""
    return {
        camera.role: camera.source_size or (camera.height, camera.width) for camera in spec.canvas.cameras
    }


def shipped_embodiments() -> list[str]:
    """The embodiments shipped with the package (``config/embodiments/*.yaml``)."""
    return sorted(path.stem for path in SHIPPED_DIR.glob("*.yaml"))


def embodiment_dirs() -> list[Path]:
    """Where embodiments are looked up by name, first match wins: the folders in
    ``$LIGHTWAM_EMBODIMENT_PATH``, then the shipped folder."""
    extra = [
        Path(p).expanduser() for p in os.environ.get(EMBODIMENT_PATH_ENV, "").split(os.pathsep) if p.strip()
    ]
    return [*extra, SHIPPED_DIR]


def known_embodiments() -> list[str]:
    """Names accepted by ``load_embodiment`` without a path: every ``<name>.yaml`` found in
    ``embodiment_dirs()``."""
    return sorted({path.stem for folder in embodiment_dirs() for path in folder.glob("*.yaml")})


def load_embodiment(name_or_path: str | Path) -> EmbodimentSpec:
    """Load and validate an embodiment by shipped name (e.g. "libero_franka") or by file path."""
    path = _resolve(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise EmbodimentSpecError(f"{path}: not valid YAML: {error}") from None
    return parse_embodiment(data, source=str(path))


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"embodiment file not found: {path}")
        return path
    for folder in embodiment_dirs():
        if (folder / f"{text}.yaml").is_file():
            return folder / f"{text}.yaml"
    raise FileNotFoundError(
        f"unknown embodiment {text!r}; known: {known_embodiments()} (or pass a YAML path, or add "
        f"its folder to ${EMBODIMENT_PATH_ENV})"
    )


def embodiment_file(name_or_path: str | Path) -> Path:
    """The YAML file ``load_embodiment`` reads for a name or path."""
    return _resolve(name_or_path)


def parse_embodiment(data: Any, source: str = "<memory>") -> EmbodimentSpec:
    """Validate an already-parsed YAML document; errors name ``source`` and the field."""
    root = _Node(data, "", source)
    root.check_keys(
        required=(
            "schema_version",
            "name",
            "arms",
            "cameras",
            "canvas",
            "state",
            "action",
            "normalization",
            "chunk",
            "policy_rate_hz",
        ),
        optional=("description", "tasks"),
    )
    version = root.get("schema_version").as_int()
    if version != SCHEMA_VERSION:
        root.get("schema_version").fail(f"unsupported schema version {version}; expected {SCHEMA_VERSION}")
    arms = tuple(_parse_arm(node) for node in root.get("arms").as_list(non_empty=True))
    _check_unique(root.get("arms"), [arm.name for arm in arms], "arm name")
    _check_unique(root.get("arms"), _declared_joints(arms), "joint name")

    state = _parse_layout(root.get("state"), arms, STATE_KINDS)
    action = _parse_action(root.get("action"), arms)
    chunk = _parse_chunk(root.get("chunk"))
    rate = root.get("policy_rate_hz").as_float(positive=True)
    return EmbodimentSpec(
        name=root.get("name").as_str(),
        description=root.get("description").as_str() if root.has("description") else "",
        source=source,
        arms=arms,
        canvas=_parse_canvas(root.get("canvas"), root.get("cameras")),
        state=state,
        action=action,
        normalization=_parse_normalization(root.get("normalization")),
        chunk=chunk,
        policy_rate_hz=rate,
        tasks=tuple(root.get("tasks").as_str_list(non_empty=True)) if root.has("tasks") else (),
    )


def _parse_arm(node: _Node) -> ArmSpec:
    node.check_keys(
        required=("name", "joints", "joint_limits"),
        optional=("gripper", "base_frame", "ee_frame", "kinematics"),
    )
    joints = node.get("joints").as_str_list(non_empty=True)
    _check_unique(node.get("joints"), joints, "joint name")
    limits_node = node.get("joint_limits")
    limits_node.check_keys(required=joints, optional=())
    limits = []
    for joint in joints:
        lower, upper = limits_node.get(joint).as_float_list(length=2)
        if not lower < upper:
            limits_node.get(joint).fail(f"lower limit {lower} must be below upper limit {upper}")
        limits.append(JointLimit(joint, lower, upper))
    gripper = _parse_gripper(node.get("gripper")) if node.has("gripper") else None
    base_frame = node.get("base_frame").as_str() if node.has("base_frame") else None
    ee_frame = node.get("ee_frame").as_str() if node.has("ee_frame") else None
    return ArmSpec(
        name=node.get("name").as_str(),
        joints=tuple(joints),
        joint_limits=tuple(limits),
        gripper=gripper,
        base_frame=base_frame,
        ee_frame=ee_frame,
        kinematics=(
            _parse_kinematics(node.get("kinematics"), tuple(joints), (base_frame, ee_frame))
            if node.has("kinematics")
            else None
        ),
    )


def _parse_kinematics(
    node: _Node, joints: tuple[str, ...], frames: tuple[str | None, str | None]
) -> ArmKinematics:
    convention = node.get("convention").as_str()
    if convention not in KINEMATICS_CONVENTIONS:
        node.get("convention").fail(f"{convention!r} not one of {KINEMATICS_CONVENTIONS}")
    if convention == "urdf":
        return _parse_urdf_kinematics(node, joints, frames)
    node.check_keys(required=("convention", "joints"), optional=("fixed",))
    rows = tuple(_parse_dh_row(row) for row in node.get("joints").as_list(non_empty=True, length=len(joints)))
    fixed = tuple(_parse_dh_row(row) for row in node.get("fixed").as_list()) if node.has("fixed") else ()
    return ArmKinematics(convention, joints=rows, fixed=fixed)


def _parse_urdf_kinematics(
    node: _Node, joints: tuple[str, ...], frames: tuple[str | None, str | None]
) -> ArmKinematics:
    """URDF joints listed in ``chain``, or read from the ``urdf`` file (relative to the YAML)
    between ``base_link`` and ``tip_link`` (default: the arm's ``base_frame`` and ``ee_frame``)."""
    node.check_keys(required=("convention",), optional=("chain", "urdf", "base_link", "tip_link", "tool"))
    if node.has("chain") == node.has("urdf"):
        node.fail("a urdf chain needs exactly one of 'chain' (its joints) and 'urdf' (a URDF file)")
    try:
        if node.has("chain"):
            for key in ("base_link", "tip_link"):
                if node.has(key):
                    node.get(key).fail("only with 'urdf' (a URDF file)")
            items = node.get("chain").as_list(non_empty=True)
            chain = tuple(joint_from_mapping(item.value, f"chain[{i}]") for i, item in enumerate(items))
        else:
            chain = _urdf_file_chain(node, frames)
        tool = origin_from_mapping(node.get("tool").value, "tool") if node.has("tool") else IDENTITY
    except UrdfChainError as error:
        node.fail(str(error))
    moving = tuple(joint.name for joint in chain if joint.moving)
    if moving != joints:
        node.fail(f"the chain's moving joints {list(moving)} differ from the arm's joints {list(joints)}")
    return ArmKinematics("urdf", chain=chain, tool=tool)


def _urdf_file_chain(node: _Node, frames: tuple[str | None, str | None]) -> tuple[UrdfJoint, ...]:
    links = []
    defaults = {"base_link": ("base_frame", frames[0]), "tip_link": ("ee_frame", frames[1])}
    for key, (frame_key, frame) in defaults.items():
        if not node.has(key) and frame is None:
            node.fail(f"missing {key!r} (or the arm's {frame_key}) to walk the URDF")
        links.append(node.get(key).as_str() if node.has(key) else str(frame))
    path = Path(node.get("urdf").as_str()).expanduser()
    if not path.is_absolute() and Path(node.source).is_file():
        path = Path(node.source).parent / path
    return read_urdf_chain(path, links[0], links[1])


def _parse_dh_row(node: _Node) -> DHRow:
    node.check_keys(required=("a", "d", "alpha"), optional=("theta",))
    return DHRow(
        a=node.get("a").as_float(),
        d=node.get("d").as_float(),
        alpha=node.get("alpha").as_float(),
        theta=node.get("theta").as_float() if node.has("theta") else 0.0,
    )


def _parse_gripper(node: _Node) -> GripperSpec:
    node.check_keys(
        required=("joints", "open_position", "closed_position", "command_open", "command_close"), optional=()
    )
    joints = node.get("joints").as_str_list(non_empty=True)
    spec = GripperSpec(
        joints=tuple(joints),
        open_position=node.get("open_position").as_float(),
        closed_position=node.get("closed_position").as_float(),
        command_open=node.get("command_open").as_float(),
        command_close=node.get("command_close").as_float(),
    )
    if spec.open_position == spec.closed_position:
        node.get("closed_position").fail("must differ from open_position")
    if spec.command_open == spec.command_close:
        node.get("command_close").fail("must differ from command_open")
    return spec


def _parse_canvas(node: _Node, cameras_node: _Node) -> CanvasSpec:
    node.check_keys(required=("height", "width"), optional=("fill_rgb",))
    height = node.get("height").as_int(positive=True)
    width = node.get("width").as_int(positive=True)
    for key, value in (("height", height), ("width", width)):
        if value % TOKEN_STRIDE:
            node.get(key).fail(f"{value} is not a multiple of {TOKEN_STRIDE} (VAE /8 then 2x2 patch)")
    fill = (0, 0, 0)
    if node.has("fill_rgb"):
        red, green, blue = node.get("fill_rgb").as_int_list(length=3, low=0, high=255)
        fill = (red, green, blue)
    cameras = tuple(_parse_camera(camera, height, width) for camera in cameras_node.as_list(non_empty=True))
    _check_unique(cameras_node, [camera.role for camera in cameras], "camera role")
    for i, a in enumerate(cameras):
        for b in cameras[i + 1 :]:
            if _overlap(a, b):
                cameras_node.fail(f"placements of {a.role!r} and {b.role!r} overlap")
    return CanvasSpec(height=height, width=width, fill_rgb=fill, cameras=cameras)


def _parse_camera(node: _Node, canvas_height: int, canvas_width: int) -> CameraSpec:
    node.check_keys(required=("role", "placement"), optional=("rotation_deg", "center_crop", "source_size"))
    rotation = node.get("rotation_deg").as_int() if node.has("rotation_deg") else 0
    if rotation not in ROTATIONS_DEG:
        node.get("rotation_deg").fail(f"{rotation} not one of {ROTATIONS_DEG}")
    source_size = None
    if node.has("source_size"):
        source_height, source_width = node.get("source_size").as_int_list(length=2, low=1)
        source_size = (source_height, source_width)
    place = node.get("placement")
    place.check_keys(required=("top", "left", "height", "width"), optional=())
    top, left = place.get("top").as_int(low=0), place.get("left").as_int(low=0)
    height = place.get("height").as_int(positive=True)
    width = place.get("width").as_int(positive=True)
    if top + height > canvas_height or left + width > canvas_width:
        place.fail(
            f"cell rows {top}..{top + height}, cols {left}..{left + width} exceed the "
            f"{canvas_height}x{canvas_width} canvas"
        )
    return CameraSpec(
        role=node.get("role").as_str(),
        rotation_deg=rotation,
        center_crop=node.get("center_crop").as_bool() if node.has("center_crop") else False,
        source_size=source_size,
        top=top,
        left=left,
        height=height,
        width=width,
    )


def _declared_joints(arms: tuple[ArmSpec, ...]) -> list[str]:
    return [j for arm in arms for j in arm.joints + (arm.gripper.joints if arm.gripper else ())]


def _overlap(a: CameraSpec, b: CameraSpec) -> bool:
    rows = a.top < b.top + b.height and b.top < a.top + a.height
    cols = a.left < b.left + b.width and b.left < a.left + a.width
    return rows and cols


def _parse_layout(node: _Node, arms: tuple[ArmSpec, ...], kinds: tuple[str, ...]) -> VectorLayout:
    fields = tuple(_parse_field(item, arms, kinds) for item in node.as_list(non_empty=True))
    _check_unique(node, [field.name for field in fields], "field name")
    _check_unique(node, [name for field in fields for name in field.dim_names], "dimension name")
    return VectorLayout(fields)


def _parse_field(node: _Node, arms: tuple[ArmSpec, ...], kinds: tuple[str, ...]) -> VectorField:
    node.check_keys(required=("name", "kind"), optional=("size", "arm", "joints", "scale", "dim_names"))
    name = node.get("name").as_str()
    kind = node.get("kind").as_str()
    if kind not in kinds:
        node.get("kind").fail(f"{kind!r} not allowed here; expected one of {list(kinds)}")
    joints: tuple[str, ...] = ()
    arm_name = None
    if kind == "joint_positions":
        if node.has("arm"):
            node.get("arm").fail("joint_positions fields name their joints, not an arm")
        joints = tuple(node.get("joints").as_str_list(non_empty=True))
        known = set(_declared_joints(arms))
        for joint in joints:
            if joint not in known:
                node.get("joints").fail(f"joint {joint!r} is not declared by any arm")
        size = len(joints)
    else:
        if node.has("joints"):
            node.get("joints").fail(f"{kind} fields take an arm, not joints")
        arm_name = node.get("arm").as_str()
        arm = next((a for a in arms if a.name == arm_name), None)
        if arm is None:
            node.get("arm").fail(f"unknown arm {arm_name!r}; arms: {[a.name for a in arms]}")
        if kind in _KINDS_NEEDING_GRIPPER and arm.gripper is None:
            node.get("arm").fail(f"arm {arm_name!r} has no gripper, needed by {kind}")
        size = _FIXED_KIND_SIZES[kind]
    if node.has("size") and node.get("size").as_int() != size:
        node.get("size").fail(f"{kind} field has size {size}, not {node.get('size').as_int()}")
    scale = (1.0,) * size
    if node.has("scale"):
        if kind != "joint_positions":
            node.get("scale").fail("only joint_positions fields take a scale")
        scale = tuple(node.get("scale").as_float_list(length=size))
        if any(s == 0 for s in scale):
            node.get("scale").fail("scale entries must be non-zero")
    if node.has("dim_names"):
        dim_names = tuple(node.get("dim_names").as_str_list(length=size))
    elif joints:
        dim_names = joints
    elif size == 1:
        dim_names = (name,)
    else:
        dim_names = tuple(f"{name}_{i}" for i in range(size))
    return VectorField(
        name=name, kind=kind, size=size, dim_names=dim_names, arm=arm_name, joints=joints, scale=scale
    )


def _parse_action(node: _Node, arms: tuple[ArmSpec, ...]) -> ActionSpec:
    node.check_keys(required=("mode", "fields"), optional=("delta_eef", "gripper_postprocess"))
    mode = node.get("mode").as_str()
    if mode not in ACTION_MODES:
        node.get("mode").fail(f"{mode!r} not one of {list(ACTION_MODES)}")
    layout = _parse_layout(node.get("fields"), arms, ACTION_KINDS[mode])
    for item in node.get("fields").as_list():
        if item.has("scale"):
            item.get("scale").fail("scale converts joint readings into the state; actions take none")
    delta = None
    if mode == "delta_eef":
        scaling = node.get("delta_eef")
        scaling.check_keys(required=("translation_m_per_unit", "rotation_rad_per_unit", "bound"), optional=())
        delta = DeltaEefScaling(
            translation_m_per_unit=scaling.get("translation_m_per_unit").as_float(positive=True),
            rotation_rad_per_unit=scaling.get("rotation_rad_per_unit").as_float(positive=True),
            bound=scaling.get("bound").as_float(positive=True),
        )
    elif node.has("delta_eef"):
        node.get("delta_eef").fail("only meaningful for mode delta_eef")
    post = None
    if node.has("gripper_postprocess") and node.get("gripper_postprocess").value is not None:
        post = _parse_gripper_postprocess(node.get("gripper_postprocess"), layout)
    return ActionSpec(mode=mode, layout=layout, delta_eef=delta, gripper_postprocess=post)


def _parse_gripper_postprocess(node: _Node, layout: VectorLayout) -> GripperPostprocess:
    node.check_keys(required=("dims",), optional=("scale", "offset", "negate", "binarize", "tie_value"))
    dims = tuple(node.get("dims").as_str_list(non_empty=True))
    for dim in dims:
        if dim not in layout.dim_names:
            node.get("dims").fail(f"{dim!r} is not an action dimension; have {list(layout.dim_names)}")
    binarize = node.get("binarize").as_bool() if node.has("binarize") else False
    tie_value = node.get("tie_value").as_float() if node.has("tie_value") else 0.0
    if node.has("tie_value") and not binarize:
        node.get("tie_value").fail("only meaningful with binarize: true")
    if tie_value not in (-1.0, 0.0, 1.0):
        node.get("tie_value").fail(f"{tie_value} must be -1, 0 or 1")
    scale = node.get("scale").as_float() if node.has("scale") else 1.0
    if scale == 0:
        node.get("scale").fail("must be non-zero")
    return GripperPostprocess(
        dims=dims,
        scale=scale,
        offset=node.get("offset").as_float() if node.has("offset") else 0.0,
        negate=node.get("negate").as_bool() if node.has("negate") else False,
        binarize=binarize,
        tie_value=tie_value,
    )


def _parse_normalization(node: _Node) -> NormalizationSpec:
    node.check_keys(required=("mode", "clamp"), optional=())
    mode = node.get("mode").as_str()
    if mode not in NORMALIZATION_MODES:
        node.get("mode").fail(f"{mode!r} not one of {list(NORMALIZATION_MODES)}")
    return NormalizationSpec(mode=mode, clamp=node.get("clamp").as_float(positive=True))


def _parse_chunk(node: _Node) -> ChunkSpec:
    node.check_keys(required=("length", "execute_steps"), optional=())
    length = node.get("length").as_int(positive=True)
    execute = node.get("execute_steps").as_int(positive=True)
    if execute > length:
        node.get("execute_steps").fail(f"{execute} exceeds the chunk length {length}")
    return ChunkSpec(length=length, execute_steps=execute)


def _check_unique(node: _Node, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            node.fail(f"duplicate {what} {name!r}")
        seen.add(name)


# --------------------------------------------------------------------------------------------
# YAML node with location-aware, typed accessors
# --------------------------------------------------------------------------------------------


class _Node:
    """A value from the YAML document plus where it sits, so every error can say file and field."""

    def __init__(self, value: Any, where: str, source: str) -> None:
        self.value = value
        self.where = where
        self.source = source

    def fail(self, message: str) -> NoReturn:
        field = self.where or "<top level>"
        raise EmbodimentSpecError(f"{self.source}: {field}: {message}")

    def _child(self, value: Any, key: str | int) -> _Node:
        where = (
            f"{self.where}[{key}]"
            if isinstance(key, int)
            else (f"{self.where}.{key}" if self.where else str(key))
        )
        return _Node(value, where, self.source)

    def _mapping(self) -> dict:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {type(self.value).__name__}")
        return self.value

    def has(self, key: str) -> bool:
        return key in self._mapping()

    def get(self, key: str) -> _Node:
        mapping = self._mapping()
        if key not in mapping:
            self.fail(f"missing required field {key!r}")
        return self._child(mapping[key], key)

    def check_keys(self, required: tuple[str, ...] | list[str], optional: tuple[str, ...]) -> None:
        mapping = self._mapping()
        for key in required:
            if key not in mapping:
                self.fail(f"missing required field {key!r}")
        unknown = [k for k in mapping if k not in required and k not in optional]
        if unknown:
            self.fail(f"unknown field(s) {unknown}; allowed: {sorted([*required, *optional])}")

    def as_str(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            self.fail(f"expected a non-empty string, got {self.value!r}")
        return self.value

    def as_bool(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {self.value!r}")
        return self.value

    def as_int(self, positive: bool = False, low: int | None = None, high: int | None = None) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail(f"expected an integer, got {self.value!r}")
        if positive and self.value <= 0:
            self.fail(f"expected a positive integer, got {self.value}")
        if (low is not None and self.value < low) or (high is not None and self.value > high):
            self.fail(f"{self.value} outside [{low}, {high}]")
        return self.value

    def as_float(self, positive: bool = False) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            self.fail(f"expected a number, got {self.value!r}")
        value = float(self.value)
        if not math.isfinite(value):
            self.fail(f"expected a finite number, got {value}")
        if positive and value <= 0:
            self.fail(f"expected a positive number, got {value}")
        return value

    def as_list(self, non_empty: bool = False, length: int | None = None) -> list[_Node]:
        if not isinstance(self.value, list):
            self.fail(f"expected a list, got {type(self.value).__name__}")
        if non_empty and not self.value:
            self.fail("expected a non-empty list")
        if length is not None and len(self.value) != length:
            self.fail(f"expected {length} entries, got {len(self.value)}")
        return [self._child(item, i) for i, item in enumerate(self.value)]

    def as_str_list(self, non_empty: bool = False, length: int | None = None) -> list[str]:
        return [item.as_str() for item in self.as_list(non_empty=non_empty, length=length)]

    def as_float_list(self, length: int) -> list[float]:
        return [item.as_float() for item in self.as_list(length=length)]

    def as_int_list(self, length: int, low: int | None = None, high: int | None = None) -> list[int]:
        return [item.as_int(low=low, high=high) for item in self.as_list(length=length)]
