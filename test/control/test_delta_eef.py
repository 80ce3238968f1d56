"""Delta end-effector chunks converted to joint targets through IK, with the gripper column."""

import math

import numpy as np
import pytest

from lightwam_ros.control.delta_eef import delta_eef_to_joint_targets, finger_target
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.kinematics import arm_chain, rotation_to_axis_angle

CHAIN = arm_chain(load_embodiment("libero_franka").arm("arm"))
GRIPPER = load_embodiment("libero_franka").arm("arm").gripper  # 0.04 m open, -1 opens
READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])


def test_integrated_deltas_are_reached_and_the_gripper_is_mapped():
    deltas = np.zeros((6, 7))
    deltas[:, 0] = 1.0  # +5 cm along base x per step
    deltas[:3, 5] = 0.2  # +0.1 rad about base z for the first three steps
    deltas[:, 6] = [-1.0, -1.0, 1.0, 0.0, 0.0, -1.0]  # open, open, close, keep, keep, open
    result = delta_eef_to_joint_targets(deltas, READY, 0.02, CHAIN, GRIPPER)

    assert result.ok and result.reason == ""
    out = result.targets
    assert out.shape == (6, 8)
    start = CHAIN.forward(READY)
    for step in range(6):
        pose = CHAIN.forward(out[step, :7])
        np.testing.assert_allclose(pose.position - start.position, [0.05 * (step + 1), 0.0, 0.0], atol=1e-5)
        turned = rotation_to_axis_angle(pose.rotation @ start.rotation.T)
        np.testing.assert_allclose(turned, [0.0, 0.0, 0.1 * min(step + 1, 3)], atol=1e-4)
    np.testing.assert_allclose(out[:, 7], [0.04, 0.04, 0.0, 0.0, 0.0, 0.04])
    assert result.max_position_error < 1e-5


def test_gripper_map_is_linear_and_keeps_the_fingers_at_the_midpoint():
    assert (GRIPPER.open_position, GRIPPER.closed_position) == (0.04, 0.0)
    assert finger_target(GRIPPER, -1.0, 0.01) == 0.04
    assert finger_target(GRIPPER, 1.0, 0.01) == 0.0
    assert finger_target(GRIPPER, 0.5, 0.01) == pytest.approx(0.01)  # three quarters closed
    assert finger_target(GRIPPER, 0.0, 0.013) == 0.013  # robosuite: 0 leaves the fingers alone
    assert finger_target(GRIPPER, 7.0, 0.01) == 0.0  # clamped to the closed position
    assert finger_target(GRIPPER, -7.0, 0.01) == 0.04  # clamped to the open position


def test_unreachable_steps_are_reported():
    deltas = np.zeros((30, 7))
    deltas[:, 0] = 1.0  # 1.5 m forward: far outside the Panda's reach
    result = delta_eef_to_joint_targets(deltas, READY, 0.04, CHAIN, GRIPPER, ik_iterations=50)
    assert not result.ok
    assert result.reason.startswith("IK did not converge at step ")
    assert np.all(result.targets[:, :7] >= CHAIN.lower)
    assert np.all(result.targets[:, :7] <= CHAIN.upper)


def test_bad_chunks_are_refused():
    with pytest.raises(ValueError, match="7 columns"):
        delta_eef_to_joint_targets(np.zeros((4, 6)), READY, 0.04, CHAIN, GRIPPER)
    with pytest.raises(ValueError, match="finger_start"):
        delta_eef_to_joint_targets(np.zeros((4, 7)), READY, np.nan, CHAIN, GRIPPER)
