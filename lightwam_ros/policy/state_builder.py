"""Robot readings (joint positions by name, end-effector poses) -> the policy's state vector.

The embodiment's state layout says what each slice of the vector is; this module says where it
comes from on a running robot:

- ``joint_positions``: the named joints' positions times the field's ``scale``;
- ``gripper_normalized``: the mean position of the arm's gripper joints mapped onto the command
  scale by the gripper convention (a parallel gripper reports its fingers with the same sign);
- ``eef_position`` / ``eef_axis_angle``: the arm's end-effector pose in its base frame, either
  measured (a pose stream) or computed by forward kinematics from the arm's joints; the
  axis-angle is robosuite's ``quat2axisangle`` of the quaternion as measured (no sign flip).

Every joint the state needs is listed in ``joint_names``, so the caller extracts them from a
JointState once, by name, in that order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.policy.kinematics import Pose, SerialChain, arm_chain

_EEF_KINDS = ("eef_position", "eef_axis_angle")


class StateAssemblyError(ValueError):
    """The readings cannot make a state vector; the message names what is missing or wrong."""


@dataclass(frozen=True, eq=False)
class RobotState:
    vector: np.ndarray  # (state_dim,) float64 in the embodiment's state layout
    poses: Mapping[str, Pose]  # end-effector pose per arm whose pose the state holds


def default_chains(spec: EmbodimentSpec, measured_pose_arms: tuple[str, ...] = ()) -> dict[str, SerialChain]:
    """Forward kinematics for every arm whose pose the state needs and no pose stream measures,
    from the arms' kinematics sections in the embodiment."""
    chains = {}
    for arm_name in pose_arms(spec):
        if arm_name in measured_pose_arms:
            continue
        arm = spec.arm(arm_name)
        if arm.kinematics is None:
            raise StateAssemblyError(
                f"{spec.name}: the state needs arm {arm_name!r}'s end-effector pose and the "
                f"embodiment gives no kinematics for it: add its kinematics section or give its "
                f"pose as a measured stream"
            )
        chains[arm_name] = arm_chain(arm)
    return chains


def pose_arms(spec: EmbodimentSpec) -> tuple[str, ...]:
    """Arms whose end-effector pose is part of the state, in layout order."""
    arms: list[str] = []
    for field in spec.state.fields:
        if field.kind in _EEF_KINDS and field.arm_name not in arms:
            arms.append(field.arm_name)
    return tuple(arms)


class StateBuilder:
    """Builds the state vector of one embodiment; ``chains`` computes the poses not measured."""

    def __init__(self, spec: EmbodimentSpec, chains: Mapping[str, SerialChain]) -> None:
        self.spec = spec
        self.pose_arms = pose_arms(spec)
        unknown = sorted(set(chains) - set(self.pose_arms))
        if unknown:
            raise StateAssemblyError(
                f"{spec.name}: chains given for arms {unknown} whose pose the "
                f"state does not use (it uses {list(self.pose_arms)})"
            )
        for arm_name, chain in chains.items():
            if chain.joint_names != spec.arm(arm_name).joints:
                raise StateAssemblyError(
                    f"{spec.name}: kinematics joints {list(chain.joint_names)} differ from arm "
                    f"{arm_name!r}'s joints {list(spec.arm(arm_name).joints)}"
                )
        self._chains = dict(chains)
        self.measured_pose_arms = tuple(a for a in self.pose_arms if a not in self._chains)
        names: list[str] = []
        for field in spec.state.fields:
            if field.kind == "joint_positions":
                names += field.joints
            elif field.kind == "gripper_normalized":
                names += spec.field_gripper(field).joints
        for arm_name in self._chains:
            names += spec.arm(arm_name).joints
        self.joint_names: tuple[str, ...] = tuple(dict.fromkeys(names))  # ordered, unique
        self._index = {name: i for i, name in enumerate(self.joint_names)}

    def build(self, joints: np.ndarray, measured_poses: Mapping[str, Pose] | None = None) -> RobotState:
        """State from ``joints`` (positions of ``joint_names``, in that order) and the measured
        poses of ``measured_pose_arms``."""
        joints = np.asarray(joints, dtype=np.float64)
        if joints.shape != (len(self.joint_names),):
            raise StateAssemblyError(
                f"expected {len(self.joint_names)} joint positions "
                f"{list(self.joint_names)}, got shape {joints.shape}"
            )
        if not np.all(np.isfinite(joints)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(joints))]
            raise StateAssemblyError(f"non-finite joint positions for {bad}")
        poses = self._poses(joints, measured_poses or {})
        parts = []
        for field in self.spec.state.fields:
            if field.kind == "joint_positions":
                parts.append(self._take(joints, field.joints) * np.asarray(field.scale))
            elif field.kind == "gripper_normalized":
                gripper = self.spec.field_gripper(field)
                opening = float(np.mean(self._take(joints, gripper.joints)))
                parts.append(np.array([gripper.joint_to_command(opening)]))
            elif field.kind == "eef_position":
                parts.append(poses[field.arm_name].position)
            else:  # eef_axis_angle, robosuite's convention (LIBERO)
                parts.append(poses[field.arm_name].state_axis_angle)
        return RobotState(vector=np.concatenate(parts), poses=poses)

    def _take(self, joints: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
        return joints[[self._index[name] for name in names]]

    def _poses(self, joints: np.ndarray, measured: Mapping[str, Pose]) -> dict[str, Pose]:
        missing = [arm for arm in self.measured_pose_arms if arm not in measured]
        if missing:
            raise StateAssemblyError(f"no measured end-effector pose for arms {missing}")
        poses = {arm: measured[arm] for arm in self.measured_pose_arms}
        for arm_name, chain in self._chains.items():
            poses[arm_name] = chain.forward(self._take(joints, chain.joint_names))
        return poses
