"""Serial-arm kinematics from a URDF-style joint chain or modified Denavit-Hartenberg rows.

An arm's chain comes from its embodiment YAML (``arms[].kinematics``, see ``arm_chain``) or a plain
dict (the executor's ``kinematics_file``, see ``SerialChain``), so another arm, or a different tool
offset, needs data rather than code.  Either convention becomes one chain of 4x4 transforms (each
moving joint's frame at q = 0 in the previous one's, its axis and kind) with one FK, Jacobian and
IK.  URDF's conventions are in ``urdf_chain``; modified DH follows Craig, as in Franka's own
documentation: each row's ``a`` and ``alpha`` describe the link *before* the joint,
``T_i = RotX(alpha) TransX(a) RotZ(theta + q_i) TransZ(d)``.

LIBERO's delta end-effector actions are integrated here as robosuite's OSC_POSE controller reads
them: position delta added in the base frame, rotation delta (axis-angle) composed on the left,
``R_target = R_delta @ R_current``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from transforms3d.axangles import axangle2mat
from transforms3d.euler import euler2mat
from transforms3d.quaternions import mat2quat, quat2axangle, quat2mat

from lightwam_ros.policy.embodiment import ArmSpec
from lightwam_ros.policy.urdf_chain import (
    Origin,
    UrdfJoint,
    joint_from_mapping,
    joint_to_mapping,
    origin_from_mapping,
    origin_to_mapping,
)

_JOINT_KEYS = ("name", "a", "d", "alpha", "lower", "upper")
_LIMIT_KEYS = ("name", "lower", "upper")
_FIXED_KEYS = ("a", "d", "alpha", "theta")


def mdh_transform(alpha: float, a: float, theta: float, d: float) -> np.ndarray:
    """4x4 homogeneous transform of one modified-DH row."""
    ca, sa = math.cos(alpha), math.sin(alpha)
    ct, st = math.cos(theta), math.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def origin_transform(origin: Origin) -> np.ndarray:
    """4x4 homogeneous transform of a URDF origin: translate ``xyz``, rotate ``Rz(y) Ry(p) Rx(r)``."""
    transform = np.eye(4)
    transform[:3, :3] = euler2mat(*origin.rpy, axes="sxyz")
    transform[:3, 3] = origin.xyz
    return transform


# --------------------------------------------------------------------------------------------
# Rotations and poses
# --------------------------------------------------------------------------------------------


def rotation_to_axis_angle(rotation: np.ndarray) -> np.ndarray:
    """3x3 rotation -> axis-angle vector with angle in [0, pi] (through the unit quaternion)."""
    quat = mat2quat(rotation)
    if quat[0] < 0.0:
        quat = -quat  # the same rotation; keeps the angle <= pi
    axis, angle = quat2axangle(quat)
    return np.asarray(axis, dtype=np.float64) * angle


def quaternion_to_axis_angle(quaternion_wxyz: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z) -> axis-angle vector exactly as robosuite's ``quat2axisangle``
    (the LIBERO state): angle 2 acos(w) in [0, 2 pi], no sign canonicalisation, so q and -q give
    different vectors; a zero sine gives the zero vector."""
    w, xyz = float(np.clip(quaternion_wxyz[0], -1.0, 1.0)), np.asarray(quaternion_wxyz[1:], float)
    sine = math.sqrt(1.0 - w * w)
    if sine == 0.0:
        return np.zeros(3)
    return xyz * 2.0 * math.acos(w) / sine


def axis_angle_to_rotation(vector: np.ndarray) -> np.ndarray:
    """Axis-angle vector (angle = norm) -> 3x3 rotation; the zero vector gives the identity."""
    vector = np.asarray(vector, dtype=np.float64)
    angle = float(np.linalg.norm(vector))
    if angle < 1e-12:
        return np.eye(3)
    return axangle2mat(vector / angle, angle, is_normalized=True)


@dataclass(frozen=True, eq=False)
class Pose:
    """A rigid pose in the arm's base frame: position (m) and rotation matrix, plus the quaternion
    (w, x, y, z) exactly as a sensor or simulator reported it, when it did: its sign is not part
    of the rotation but LIBERO's state depends on it."""

    position: np.ndarray
    rotation: np.ndarray
    measured_wxyz: np.ndarray | None = None

    def __post_init__(self) -> None:
        position = np.array(self.position, dtype=np.float64)
        rotation = np.array(self.rotation, dtype=np.float64)
        if position.shape != (3,) or rotation.shape != (3, 3):
            raise ValueError(
                f"Pose needs position (3,) and rotation (3, 3), got {position.shape} and {rotation.shape}"
            )
        if not (np.all(np.isfinite(position)) and np.all(np.isfinite(rotation))):
            raise ValueError("Pose contains non-finite values")
        position.flags.writeable = False
        rotation.flags.writeable = False
        object.__setattr__(self, "position", position)
        object.__setattr__(self, "rotation", rotation)
        if self.measured_wxyz is not None:
            measured = np.array(self.measured_wxyz, dtype=np.float64)
            if measured.shape != (4,) or not np.all(np.isfinite(measured)):
                raise ValueError(f"Pose quaternion must be 4 finite values, got {measured}")
            measured.flags.writeable = False
            object.__setattr__(self, "measured_wxyz", measured)

    @classmethod
    def from_axis_angle(cls, position: np.ndarray, axis_angle: np.ndarray) -> Pose:
        return cls(position, axis_angle_to_rotation(axis_angle))

    @classmethod
    def from_quaternion(cls, position: np.ndarray, quaternion_wxyz: np.ndarray) -> Pose:
        return cls(position, quat2mat(quaternion_wxyz), measured_wxyz=quaternion_wxyz)

    @property
    def axis_angle(self) -> np.ndarray:
        return rotation_to_axis_angle(self.rotation)

    @property
    def state_axis_angle(self) -> np.ndarray:
        """Axis-angle as robosuite's ``quat2axisangle`` gives it for the measured quaternion (the
        LIBERO state); for a computed pose, of its w >= 0 quaternion (then equal to ``axis_angle``)."""
        return quaternion_to_axis_angle(
            self.measured_wxyz if self.measured_wxyz is not None else self.quaternion
        )

    @property
    def quaternion(self) -> np.ndarray:
        """(w, x, y, z) with w >= 0."""
        quat = mat2quat(self.rotation)
        return -quat if quat[0] < 0.0 else quat


def pose_error(target: Pose, current: Pose) -> tuple[np.ndarray, np.ndarray]:
    """(position error, rotation error as a base-frame axis-angle vector) from current to target."""
    return (
        target.position - current.position,
        rotation_to_axis_angle(target.rotation @ current.rotation.T),
    )


def integrate_delta_eef(
    pose: Pose,
    delta7: np.ndarray,
    pos_scale: float = 0.05,
    rot_scale: float = 0.5,
    bound: float = 1.0,
) -> Pose:
    """Apply one LIBERO/robosuite delta action (dx, dy, dz, drx, dry, drz, gripper) to a pose.

    As robosuite's OSC_POSE does: each of the six components is clipped to [-bound, bound], then
    scaled (1.0 -> ``pos_scale`` m, ``rot_scale`` rad); the translation is added in the base frame
    and the rotation is composed in the base frame, ``R_target = R_delta @ R_current``.  The
    gripper component (index 6, optional) is ignored here.
    """
    delta = np.asarray(delta7, dtype=np.float64)
    if delta.shape not in ((6,), (7,)):
        raise ValueError(f"delta action must have 6 or 7 components, got shape {delta.shape}")
    if not np.all(np.isfinite(delta[:6])):
        raise ValueError(f"delta action contains non-finite values: {delta[:6]}")
    clipped = np.clip(delta[:6], -bound, bound)
    position = pose.position + pos_scale * clipped[:3]
    rotation = axis_angle_to_rotation(rot_scale * clipped[3:6]) @ pose.rotation
    return Pose(position, rotation)


# --------------------------------------------------------------------------------------------
# Serial chain
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class IKResult:
    q: np.ndarray
    converged: bool
    iterations: int
    position_error: float  # m, at the returned q
    rotation_error: float  # rad, at the returned q


def damped_least_squares(
    pose_and_jacobian: Callable[[np.ndarray], tuple[Pose, np.ndarray]],
    target: Pose,
    q_seed: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    max_iterations: int,
    position_tolerance: float,
    rotation_tolerance: float,
    damping: float,
    max_step: float,
) -> IKResult:
    """Damped-least-squares IK of any arm whose pose and 6 x n geometric Jacobian at q
    ``pose_and_jacobian`` gives: ``dq = J^T (J J^T + damping^2 I)^-1 e`` per iteration, the
    largest joint step limited to ``max_step`` and q clamped to [lower, upper]."""
    q = np.clip(np.asarray(q_seed, dtype=float), lower, upper)
    damping_sq = damping * damping * np.eye(6)
    error = np.empty(6)
    for iteration in range(max_iterations + 1):
        pose, jac = pose_and_jacobian(q)
        error[:3], error[3:] = pose_error(target, pose)
        pos_err = float(np.linalg.norm(error[:3]))
        rot_err = float(np.linalg.norm(error[3:]))
        if pos_err <= position_tolerance and rot_err <= rotation_tolerance:
            return IKResult(q, True, iteration, pos_err, rot_err)
        if iteration == max_iterations:
            break
        dq = jac.T @ np.linalg.solve(jac @ jac.T + damping_sq, error)
        largest = float(np.max(np.abs(dq)))
        if largest > max_step:
            dq *= max_step / largest
        q = np.clip(q + dq, lower, upper)
    return IKResult(q, False, max_iterations, pos_err, rot_err)


class _Link:
    """One moving joint: its frame at q = 0 in the previous joint's frame (``placement``), its unit
    axis in that frame, and whether it slides along the axis (prismatic) or turns about it."""

    def __init__(self, placement: np.ndarray, axis: np.ndarray, prismatic: bool) -> None:
        self.placement = placement
        self.axis = axis
        self.prismatic = prismatic
        # Rodrigues, R(q) = I + sin(q) K + (1 - cos(q)) K^2 with K = [axis]x, premultiplied by the
        # placement's rotation once, so a joint costs two scaled 3x3 sums (the IK calls it often).
        cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
        rotation = placement[:3, :3]
        self._sine_term = rotation @ cross
        self._cosine_term = rotation @ cross @ cross
        self._slide = rotation @ axis

    def transform(self, q: float) -> np.ndarray:
        """The joint frame at ``q`` in the previous joint's frame: placement, then the motion."""
        out = self.placement.copy()
        if self.prismatic:
            out[:3, 3] += q * self._slide
        else:
            out[:3, :3] += math.sin(q) * self._sine_term + (1.0 - math.cos(q)) * self._cosine_term
        return out


class SerialChain:
    """Serial arm of revolute and prismatic joints; FK, geometric Jacobian and DLS IK.

    ``params`` (``chain_params``'s form, or the executor's ``kinematics_file``): ``name``,
    ``joints`` (the moving joints base to tip, each with ``name``, ``lower`` and ``upper``) and
    the geometry in one ``convention``: ``modified_dh`` (the default) puts ``a``, ``d``, ``alpha``
    and optional ``theta`` in each joint and the fixed DH rows after the last joint in ``fixed``;
    ``urdf`` lists every URDF joint base to tip in ``chain`` (``urdf_chain``'s mapping form, fixed
    joints included) and the tool frame in the last link's frame in optional ``tool``.
    """

    def __init__(self, params: Mapping[str, Any]) -> None:
        joints = _required(params, "joints", "kinematics")
        if not isinstance(joints, (list, tuple)) or not joints:
            raise ValueError("kinematics 'joints' must be a non-empty list of joints")
        convention = params.get("convention", "modified_dh")
        if convention == "modified_dh":
            rows = [
                _row(joint, _JOINT_KEYS, f"joints[{i}]", optional=("theta",))
                for i, joint in enumerate(joints)
            ]
            self._links, self._tool = _dh_links(rows, params.get("fixed", []))
        elif convention == "urdf":
            rows = [_row(joint, _LIMIT_KEYS, f"joints[{i}]") for i, joint in enumerate(joints)]
            chain = _required(params, "chain", "kinematics")
            if not isinstance(chain, (list, tuple)):
                raise ValueError("kinematics 'chain' must be a list of URDF joints")
            urdf_joints = [joint_from_mapping(item, f"kinematics chain[{i}]") for i, item in enumerate(chain)]
            tool = origin_from_mapping(params.get("tool", {}), "kinematics tool")
            self._links, self._tool = _urdf_links(urdf_joints, tool)
            moving = [joint.name for joint in urdf_joints if joint.moving]
            if moving != [row["name"] for row in rows]:
                raise ValueError(
                    f"kinematics chain's moving joints {moving} differ from its joints "
                    f"{[row['name'] for row in rows]}"
                )
        else:
            raise ValueError(f"kinematics convention {convention!r} is not 'modified_dh' or 'urdf'")
        self.name = str(params.get("name", "arm"))
        self.joint_names = tuple(str(row["name"]) for row in rows)
        self.lower = np.array([float(row["lower"]) for row in rows])
        self.upper = np.array([float(row["upper"]) for row in rows])
        if np.any(self.lower >= self.upper):
            raise ValueError(f"kinematics joint limits need lower < upper: {self.lower}, {self.upper}")

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    def _check_q(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.dof,):
            raise ValueError(f"{self.name}: q must have shape ({self.dof},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{self.name}: q contains non-finite values: {q}")
        return q

    def joint_frames(self, q: np.ndarray) -> list[np.ndarray]:
        """Base-frame transforms of every joint frame (after its rotation) and, last, the tool."""
        q = self._check_q(q)
        frames = []
        transform = np.eye(4)
        for link, angle in zip(self._links, q, strict=True):
            transform = transform @ link.transform(angle)
            frames.append(transform)
        frames.append(transform @ self._tool)
        return frames

    def forward(self, q: np.ndarray) -> Pose:
        """Tool pose in the base frame."""
        tool = self.joint_frames(q)[-1]
        return Pose(tool[:3, 3], tool[:3, :3])

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """6 x dof geometric Jacobian of the tool: rows (v, omega) in the base frame."""
        return self._pose_and_jacobian(q)[1]

    def _pose_and_jacobian(self, q: np.ndarray) -> tuple[Pose, np.ndarray]:
        frames = self.joint_frames(q)
        tip = frames[-1][:3, 3]
        jac = np.empty((6, self.dof))
        for i, link in enumerate(self._links):
            axis = frames[i][:3, :3] @ link.axis
            if link.prismatic:
                jac[:3, i], jac[3:, i] = axis, 0.0
            else:
                jac[:3, i] = np.cross(axis, tip - frames[i][:3, 3])
                jac[3:, i] = axis
        return Pose(tip, frames[-1][:3, :3]), jac

    def inverse(
        self,
        target: Pose,
        q_seed: np.ndarray,
        max_iterations: int = 100,
        position_tolerance: float = 1e-5,
        rotation_tolerance: float = 1e-4,
        damping: float = 0.01,
        max_step: float = 0.2,
    ) -> IKResult:
        """Damped-least-squares IK for position and orientation from ``q_seed``.

        Each iteration solves ``dq = J^T (J J^T + damping^2 I)^-1 e`` (stable near
        singularities), limits the largest joint step to ``max_step`` rad and clamps q to the
        joint limits, so the result is always within limits.  ``converged`` tells whether both
        tolerances were met within ``max_iterations``.
        """
        if max_iterations < 1 or damping < 0.0 or max_step <= 0.0:
            raise ValueError(
                f"IK needs max_iterations >= 1, damping >= 0, max_step > 0; got "
                f"{max_iterations}, {damping}, {max_step}"
            )
        return damped_least_squares(
            self._pose_and_jacobian,
            target,
            self._check_q(q_seed),
            self.lower,
            self.upper,
            max_iterations=max_iterations,
            position_tolerance=position_tolerance,
            rotation_tolerance=rotation_tolerance,
            damping=damping,
            max_step=max_step,
        )


_Z_AXIS = np.array([0.0, 0.0, 1.0])


def _dh_links(rows: Sequence[Mapping[str, Any]], fixed: Any) -> tuple[list[_Link], np.ndarray]:
    """Modified-DH rows as links: ``RotZ(theta + q) TransZ(d) = RotZ(theta) TransZ(d) RotZ(q)``, so
    each joint turns about the z axis of its row's transform at q = 0."""
    if not isinstance(fixed, (list, tuple)):
        raise ValueError("kinematics 'fixed' must be a list of DH rows after the last joint")
    links = [_Link(_dh_row_transform(row), _Z_AXIS, prismatic=False) for row in rows]
    tool = np.eye(4)
    for i, item in enumerate(fixed):
        tool = tool @ _dh_row_transform(_row(item, _FIXED_KEYS, f"fixed[{i}]"))
    return links, tool


def _dh_row_transform(row: Mapping[str, Any]) -> np.ndarray:
    return mdh_transform(float(row["alpha"]), float(row["a"]), float(row.get("theta", 0.0)), float(row["d"]))


def _urdf_links(joints: Sequence[UrdfJoint], tool: Origin) -> tuple[list[_Link], np.ndarray]:
    """URDF joints as links: each fixed joint's origin folds into the next moving joint's
    placement, or into the tool after the last one."""
    pending = np.eye(4)
    links = []
    for joint in joints:
        pending = pending @ origin_transform(joint.origin)
        if joint.moving:
            links.append(_Link(pending, np.array(joint.axis), prismatic=joint.type == "prismatic"))
            pending = np.eye(4)
    return links, pending @ origin_transform(tool)


def _required(params: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(params, Mapping) or key not in params:
        raise ValueError(f"{where}: missing key {key!r}")
    return params[key]


def _row(row: Any, keys: tuple[str, ...], where: str, optional: tuple[str, ...] = ()) -> Mapping[str, Any]:
    """A DH row with all ``keys`` present and every numeric entry (optional ones too) finite."""
    if not isinstance(row, Mapping):
        raise ValueError(f"kinematics {where} must be a mapping, got {type(row).__name__}")
    missing = [key for key in keys if key not in row]
    if missing:
        raise ValueError(f"kinematics {where}: missing {missing}")
    for key in keys + tuple(key for key in optional if key in row):
        if key == "name":
            continue
        value = row[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (numeric and math.isfinite(value)):
            raise ValueError(f"kinematics {where}.{key} must be a finite number, got {value!r}")
    return row


def chain_params(arm: ArmSpec) -> dict[str, Any]:
    """``SerialChain`` parameters of an arm: its embodiment's chain, joint names and limits."""
    kinematics = arm.kinematics
    if kinematics is None:
        raise ValueError(f"arm {arm.name!r} has no kinematics section in its embodiment")
    joints: list[dict[str, Any]] = [
        {"name": limit.name, "lower": limit.lower, "upper": limit.upper} for limit in arm.joint_limits
    ]
    if kinematics.convention == "urdf":
        return {
            "name": arm.name,
            "convention": "urdf",
            "joints": joints,
            "chain": [joint_to_mapping(joint) for joint in kinematics.chain],
            "tool": origin_to_mapping(kinematics.tool),
        }
    for joint, row in zip(joints, kinematics.joints, strict=True):
        joint.update(a=row.a, d=row.d, alpha=row.alpha, theta=row.theta)
    fixed = [{"a": row.a, "d": row.d, "alpha": row.alpha, "theta": row.theta} for row in kinematics.fixed]
    return {"name": arm.name, "convention": "modified_dh", "joints": joints, "fixed": fixed}


def arm_chain(arm: ArmSpec) -> SerialChain:
    """The arm's kinematics as its embodiment describes them (ValueError when it does not)."""
    return SerialChain(chain_params(arm))
