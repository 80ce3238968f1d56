"""What a predicted chunk would do, for RViz: a JointTrajectory or an end-effector path.

- absolute-joint embodiments: the executable steps as a ``trajectory_msgs/JointTrajectory`` over
  the robot's joints (gripper commands mapped to gripper joint positions by the embodiment's
  convention, as the executor maps them).  No end-effector path: no forward kinematics ship for
  their arms, and the trajectory already shows the motion joint by joint.
- delta end-effector embodiments: the deltas integrated step by step (as robosuite's OSC_POSE
  applies them) from the end-effector pose of the observation, as a ``MarkerArray``: the
  executable steps in green, the rest of the chunk in grey.
"""
from __future__ import annotations

from typing import Mapping, Optional

import numpy as np
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import MarkerArray

from lightwam_ros.nodes.command_layout import CommandLayout
from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.policy.kinematics import Pose, integrate_delta_eef
from lightwam_ros.ros.chunk_messages import ChunkData, chunk_to_joint_trajectory, path_markers

PATH_NAMESPACE = "lightwam_predicted_path"
EXECUTABLE_COLOR = (0.1, 0.8, 0.2, 1.0)
REMAINDER_COLOR = (0.6, 0.6, 0.6, 0.6)


class PredictionVisuals:
    """Builds the visualisation messages of one embodiment's chunks."""

    def __init__(self, spec: EmbodimentSpec) -> None:
        self.spec = spec
        self._layout: Optional[CommandLayout] = None
        self.path_arm: Optional[str] = None
        self.frame_id = ""  # frame of the chunk's Cartesian actions; empty for joint actions
        if spec.action.mode == "absolute_joints":
            self._layout = CommandLayout(spec)
        else:
            arms = sorted({field.arm for field in spec.action.layout.fields})
            if len(arms) != 1:
                raise ValueError(f"{spec.name}: a delta-EEF path needs one arm, the action names "
                                 f"{arms}")
            self.path_arm = arms[0]
            self.frame_id = spec.arm(self.path_arm).base_frame or ""

    def trajectory(self, chunk: ChunkData) -> Optional[JointTrajectory]:
        """The executable steps as joint targets; None for delta-EEF chunks."""
        if self._layout is None:
            return None
        targets = self._layout.to_joint_targets(chunk.actions, chunk.action_names, chunk.stamp,
                                                chunk.dt, chunk.execute_steps, chunk.chunk_id)
        joints = ChunkData(stamp=chunk.stamp, actions=targets.chunk.actions, dt=chunk.dt,
                           execute_steps=chunk.execute_steps, chunk_id=chunk.chunk_id,
                           embodiment=chunk.embodiment, action_mode="absolute_joints",
                           action_names=self._layout.joint_names)
        return chunk_to_joint_trajectory(joints, self._layout.joint_names)

    def path(self, chunk: ChunkData, poses: Mapping[str, Pose]) -> Optional[MarkerArray]:
        """The end-effector path from the observation's pose; None for joint chunks or when the
        pose of the acting arm is unknown."""
        if self.path_arm is None or self.path_arm not in poses:
            return None
        points = self.path_points(chunk.actions, poses[self.path_arm])
        steps = chunk.execute_steps
        markers = path_markers(points[:steps + 1], chunk.stamp, self.frame_id, PATH_NAMESPACE, 0,
                               EXECUTABLE_COLOR)
        if chunk.horizon > steps:
            rest = path_markers(points[steps:], chunk.stamp, self.frame_id, PATH_NAMESPACE, 2,
                                REMAINDER_COLOR, line_width=0.003, sphere_diameter=0.008)
            markers.markers.extend(rest.markers)
        return markers

    def path_points(self, deltas: np.ndarray, start: Pose) -> np.ndarray:
        """(H + 1, 3) positions: the start, then the pose after each delta step."""
        scaling = self.spec.action.delta_eef
        points = [start.position]
        pose = start
        for row in np.asarray(deltas, dtype=np.float64):
            pose = integrate_delta_eef(pose, row, scaling.translation_m_per_unit,
                                       scaling.rotation_rad_per_unit, scaling.bound)
            points.append(pose.position)
        return np.array(points)
