"""A measured end-effector pose message becomes the core's Pose; a quaternion that is not a
rotation is refused with its norm."""

import numpy as np
import pytest

pytest.importorskip("geometry_msgs.msg")
from geometry_msgs.msg import PoseStamped

from lightwam_ros.ros.pose_messages import pose_from_message


def _message(position, quaternion_wxyz) -> PoseStamped:
    msg = PoseStamped()
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = position
    (msg.pose.orientation.w, msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z) = (
        quaternion_wxyz
    )
    return msg


def test_a_pose_message_gives_its_position_and_rotation():
    half = np.sqrt(0.5)
    pose = pose_from_message(_message((0.4, -0.1, 0.3), (half, 0.0, 0.0, half)))  # 90 deg about z
    np.testing.assert_allclose(pose.position, [0.4, -0.1, 0.3])
    np.testing.assert_allclose(pose.rotation, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


def test_a_quaternion_that_is_not_unit_is_refused():
    with pytest.raises(ValueError, match="norm 2, not 1"):
        pose_from_message(_message((0.0, 0.0, 0.0), (2.0, 0.0, 0.0, 0.0)))
