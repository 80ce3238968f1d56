"""Which joints an executor commands for an embodiment, and how a chunk's columns become targets.

The policy speaks in action dimensions (``fl_joint1``, ``left_gripper``, ``dx`` ...); the robot in
joints.  ``CommandLayout`` links the two by *name*: a chunk's columns may arrive in any order as
long as their names are exactly the embodiment's action dimensions, and the commanded joint order
is the embodiment's (or one the user chooses, for a controller that lists its joints otherwise).

- absolute joints: a ``joint_positions`` dimension drives the joint of the same name; a
  ``gripper_normalized`` dimension drives every joint of its arm's gripper through the
  embodiment's gripper map (``GripperSpec.command_to_joint``, linear).
- delta end-effector: one arm's joints, then its gripper joints.  The chunk is integrated and
  solved by IK (``control.delta_eef``) into arm joints plus one finger column, which drives every
  gripper joint (ROS drivers report parallel fingers with the same sign).

``to_joint_targets`` is the one check that a chunk fits the embodiment (name, action mode, action
names); the chunk's structure was checked when it was built, its limits are the safety filter's.
No ROS imports: the node wraps this, tests can use it directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from lightwam_ros.control.delta_eef import delta_eef_to_joint_targets
from lightwam_ros.policy.chunk import Chunk
from lightwam_ros.policy.embodiment import ArmSpec, EmbodimentSpec, GripperSpec
from lightwam_ros.policy.kinematics import SerialChain, arm_chain


class ChunkLayoutError(ValueError):
    """A chunk does not fit the embodiment: another embodiment or action mode, or columns that do
    not match its action dimensions (by name)."""


@dataclass(frozen=True, eq=False)
class JointTargets:
    """A chunk turned into (H, D) joint targets in the commanded order, ready for the core."""

    chunk: Chunk
    note: str  # e.g. IK accuracy for delta-EEF chunks; empty otherwise


class CommandLayout:
    """Commanded joints of one embodiment and the by-name map from action columns to joints."""

    def __init__(
        self, spec: EmbodimentSpec, joint_order: Sequence[str] = (), kinematics_file: str = ""
    ) -> None:
        self.spec = spec
        self.mode = spec.action.mode
        self.action_names = spec.action.layout.dim_names
        if self.mode == "absolute_joints":
            natural, sources = self._absolute_sources(spec)
            self._arm: ArmSpec | None = None
            self._gripper: GripperSpec | None = None
            self.chain: SerialChain | None = None
        else:
            self._arm, self._gripper = self._delta_arm(spec)
            self.chain = _load_chain(self._arm, kinematics_file)
            natural, sources = self._delta_sources(self._arm, self._gripper)
        order = tuple(joint_order) or natural
        if sorted(order) != sorted(natural) or len(set(order)) != len(order):
            raise ValueError(
                f"joint_names must list each commanded joint of {spec.name} exactly once (any "
                f"order): {list(natural)}; got {list(order)}"
            )
        self.joint_names: tuple[str, ...] = order
        picked = [sources[name] for name in order]
        self._columns = np.array([column for column, _ in picked], dtype=np.intp)
        # Commanded joints driven by a gripper command (absolute joints): index -> gripper map.
        self._grippers = {i: gripper for i, (_, gripper) in enumerate(picked) if gripper is not None}
        bounds = np.array([spec.joint_limit(name) for name in order], dtype=np.float64)
        self.lower, self.upper = bounds[:, 0], bounds[:, 1]
        self._canonical: dict[tuple[str, ...], np.ndarray] = {}
        if self._arm is not None and self._gripper is not None:
            position = {name: i for i, name in enumerate(order)}
            self._arm_index = np.array([position[j] for j in self._arm.joints], dtype=np.intp)
            self._finger_index = position[self._gripper.joints[0]]

    @property
    def dim(self) -> int:
        return len(self.joint_names)

    @property
    def base_frame(self) -> str:
        """Frame of delta-EEF poses (the arm's base frame)."""
        return self._arm.base_frame if self._arm is not None and self._arm.base_frame else ""

    # ---------------------------------------------------------------- construction

    @staticmethod
    def _absolute_sources(spec: EmbodimentSpec):
        """Joint -> (canonical action column, gripper map or None) for absolute-joint actions."""
        names: list[str] = []
        sources: dict[str, tuple[int, GripperSpec | None]] = {}
        column = 0
        for field in spec.action.layout.fields:
            if field.kind == "joint_positions":
                for offset, joint in enumerate(field.joints):
                    names.append(joint)
                    sources[joint] = (column + offset, None)
            else:  # gripper_normalized: every gripper joint through the gripper map
                gripper = spec.field_gripper(field)
                for joint in gripper.joints:
                    names.append(joint)
                    sources[joint] = (column, gripper)
            column += field.size
        return tuple(names), sources

    @staticmethod
    def _delta_arm(spec: EmbodimentSpec) -> tuple[ArmSpec, GripperSpec]:
        arms = {field.arm_name for field in spec.action.layout.fields}
        if len(arms) != 1:
            raise ValueError(
                f"{spec.name}: delta-EEF execution drives one arm, the action names {sorted(arms)}"
            )
        arm = spec.arm(arms.pop())
        if arm.gripper is None:
            raise ValueError(f"{spec.name}: arm {arm.name!r} has no gripper for the gripper command")
        return arm, arm.gripper

    @staticmethod
    def _delta_sources(arm: ArmSpec, gripper: GripperSpec):
        """Joint -> (column of the converted chunk, None): arm joints, then the finger column."""
        names = arm.joints + gripper.joints
        sources = {joint: (i, None) for i, joint in enumerate(arm.joints)}
        sources.update({joint: (len(arm.joints), None) for joint in gripper.joints})
        return names, sources

    # ---------------------------------------------------------------- per chunk

    def canonical_columns(self, action_names: Sequence[str]) -> np.ndarray:
        """Index of each embodiment action dimension among the chunk's columns (by name)."""
        key = tuple(action_names)
        columns = self._canonical.get(key)
        if columns is not None:
            return columns
        index = {name: i for i, name in enumerate(key)}
        missing = [name for name in self.action_names if name not in index]
        extra = [name for name in key if name not in self.action_names]
        if missing or extra or len(index) != len(key):
            raise ChunkLayoutError(
                f"chunk action_names {list(key)} do not match {self.spec.name}'s action dimensions "
                f"{list(self.action_names)}"
                + (f"; missing {missing}" if missing else "")
                + (f"; unexpected {extra}" if extra else "")
            )
        columns = np.array([index[name] for name in self.action_names], dtype=np.intp)
        self._canonical[key] = columns
        return columns

    def to_joint_targets(self, chunk: Chunk, current: np.ndarray | None = None) -> JointTargets:
        """A chunk of this embodiment -> joint targets in the commanded order (ChunkLayoutError
        when it does not fit).

        ``current`` (commanded joint positions, commanded order) is the start of delta-EEF
        integration; absolute-joint chunks do not need it.
        """
        name = self.spec.name
        if chunk.embodiment != name:
            raise ChunkLayoutError(
                f"chunk is for embodiment {chunk.embodiment!r}, this executor drives {name!r}"
            )
        if chunk.action_mode != self.mode:
            raise ChunkLayoutError(f"chunk action_mode {chunk.action_mode!r}, {name} executes {self.mode!r}")
        canonical = chunk.actions[:, self.canonical_columns(chunk.action_names)]
        note = ""
        if self.mode == "delta_eef":
            canonical, note = self._delta_to_joints(canonical[: chunk.execute_steps], current)
        targets = canonical[:, self._columns]
        for index, gripper in self._grippers.items():
            targets[:, index] = gripper.command_to_joint(targets[:, index])
        return JointTargets(chunk.with_actions(targets, self.joint_names), note)

    def _delta_to_joints(self, deltas: np.ndarray, current: np.ndarray | None) -> tuple[np.ndarray, str]:
        """Only the executable rows come here: solving IK for the rest would only delay the
        chunk (every millisecond of conversion is a millisecond of its plan already gone)."""
        if current is None:
            raise ChunkLayoutError(
                "a delta-EEF chunk needs the current joint positions: no joint state received yet"
            )
        current = np.asarray(current, dtype=np.float64)
        scaling, chain, gripper = self.spec.action.delta_eef, self.chain, self._gripper
        assert scaling is not None and chain is not None and gripper is not None, "delta-EEF mode"
        conversion = delta_eef_to_joint_targets(
            deltas,
            current[self._arm_index],
            float(current[self._finger_index]),
            chain,
            gripper,
            pos_scale=scaling.translation_m_per_unit,
            rot_scale=scaling.rotation_rad_per_unit,
            bound=scaling.bound,
        )
        if not conversion.ok:
            raise ChunkLayoutError(f"delta-EEF chunk cannot be reached: {conversion.reason}")
        note = (
            f"IK error up to {conversion.max_position_error:.2e} m, {conversion.max_rotation_error:.2e} rad"
        )
        return conversion.targets, note

    def arm_positions(self, joints: np.ndarray) -> np.ndarray:
        """The delta-EEF arm's joints (kinematic order) from a commanded-order vector."""
        return np.asarray(joints)[self._arm_index]


def _load_chain(arm: ArmSpec, kinematics_file: str) -> SerialChain:
    """The arm's kinematics: a YAML file in ``SerialChain``'s form (a URDF-style joint chain or
    modified-DH rows), else its embodiment's ``kinematics`` section."""
    if kinematics_file:
        path = Path(kinematics_file).expanduser()
        if not path.is_file():
            raise ValueError(f"kinematics_file not found: {path}")
        chain = SerialChain(yaml.safe_load(path.read_text()))
    elif arm.kinematics is not None:
        chain = arm_chain(arm)
    else:
        raise ValueError(
            f"arm {arm.name!r} ({list(arm.joints)}) needs a kinematics section in its embodiment "
            "(a URDF-style chain or modified-DH rows) or a kinematics_file in SerialChain's form "
            "for delta-EEF execution"
        )
    if chain.joint_names != arm.joints:
        raise ValueError(
            f"kinematics joints {list(chain.joint_names)} differ from arm "
            f"{arm.name!r}'s joints {list(arm.joints)}"
        )
    return chain
