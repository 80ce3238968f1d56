"""``geometry_msgs/PoseStamped`` -> the core's ``Pose``: one conversion for the live policy node
and the offline tools, which read measured end-effector poses the same way."""

from __future__ import annotations

from typing import Any

import numpy as np

from lightwam_ros.policy.kinematics import Pose


def pose_from_message(msg: Any) -> Pose:
    """The Pose of a ``geometry_msgs/PoseStamped``; ValueError for a non-unit quaternion."""
    p, q = msg.pose.position, msg.pose.orientation
    norm = float(np.linalg.norm([q.w, q.x, q.y, q.z]))
    if not abs(norm - 1.0) < 1e-3:
        raise ValueError(f"orientation quaternion has norm {norm:.6g}, not 1")
    return Pose.from_quaternion(np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z]))
