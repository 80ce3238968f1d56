"""Delta end-effector chunks converted to joint targets through IK, with the gripper column."""
import math

import numpy as np
import pytest

from lightwam_ros.control.delta_eef import GripperMap, delta_eef_chunk_to_joint_targets
from lightwam_ros.control.scheduling import ActionChunk
from lightwam_ros.policy.kinematics import panda_chain, rotation_to_axis_angle

CHAIN = panda_chain()
READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])


def test_integrated_deltas_are_reached_and_the_gripper_is_mapped():
    deltas = np.zeros((6, 7))
    deltas[:, 0] = 1.0  # +5 cm along base x per step
    deltas[:3, 5] = 0.2  # +0.1 rad about base z for the first three steps
    deltas[:, 6] = [-1.0, -1.0, 1.0, 0.0, 0.0, -1.0]  # open, open, close, keep, keep, open
    chunk = ActionChunk(3.0, 0.05, deltas, 4, chunk_id=9)
    result = delta_eef_chunk_to_joint_targets(chunk, READY, finger_start=0.02)

    assert result.ok and result.reason == ""
    out = result.chunk
    assert out.actions.shape == (6, 8)
    assert (out.stamp, out.dt, out.execute_steps, out.chunk_id) == (3.0, 0.05, 4, 9)
    start = CHAIN.forward(READY)
    for step in range(6):
        pose = CHAIN.forward(out.actions[step, :7])
        np.testing.assert_allclose(pose.position - start.position,
                                   [0.05 * (step + 1), 0.0, 0.0], atol=1e-5)
        turned = rotation_to_axis_angle(pose.rotation @ start.rotation.T)
        np.testing.assert_allclose(turned, [0.0, 0.0, 0.1 * min(step + 1, 3)], atol=1e-4)
    np.testing.assert_allclose(out.actions[:, 7], [0.04, 0.04, 0.0, 0.0, 0.0, 0.04])
    assert result.max_position_error < 1e-5


def test_gripper_map_is_linear_and_keeps_the_fingers_at_the_midpoint():
    gripper = GripperMap(open_position=0.04, closed_position=0.0)
    assert gripper.to_position(-1.0, 0.01) == 0.04
    assert gripper.to_position(1.0, 0.01) == 0.0
    assert gripper.to_position(0.5, 0.01) == pytest.approx(0.01)  # three quarters closed
    assert gripper.to_position(0.0, 0.013) == 0.013  # robosuite: 0 leaves the fingers alone
    assert gripper.to_position(7.0, 0.01) == 0.0  # clamped to the closed position
    with pytest.raises(ValueError, match="distinct"):
        GripperMap(command_open=1.0, command_close=1.0)


def test_unreachable_steps_are_reported():
    deltas = np.zeros((30, 7))
    deltas[:, 0] = 1.0  # 1.5 m forward: far outside the Panda's reach
    result = delta_eef_chunk_to_joint_targets(ActionChunk(0.0, 0.05, deltas, 10), READY, 0.04,
                                              ik_iterations=50)
    assert not result.ok
    assert result.reason.startswith("IK did not converge at step ")
    assert np.all(result.chunk.actions[:, :7] >= CHAIN.lower)
    assert np.all(result.chunk.actions[:, :7] <= CHAIN.upper)


def test_bad_chunks_are_refused():
    with pytest.raises(ValueError, match="7 columns"):
        delta_eef_chunk_to_joint_targets(ActionChunk(0.0, 0.05, np.zeros((4, 6)), 4), READY, 0.04)
    bad = np.zeros((4, 7))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        delta_eef_chunk_to_joint_targets(ActionChunk(0.0, 0.05, bad, 4), READY, 0.04)
