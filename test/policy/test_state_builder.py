"""StateBuilder: robot readings by joint name (and end-effector poses) -> the policy's state."""

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.kinematics import Pose, arm_chain
from lightwam_ros.policy.state_builder import StateAssemblyError, StateBuilder, default_chains, pose_arms

PANDA_Q = np.array([0.1, -0.7, 0.2, -2.2, 0.1, 1.6, 0.7])


def test_aloha_state_follows_the_layout_with_grippers_on_the_command_scale():
    spec = load_embodiment("robotwin_aloha")
    builder = StateBuilder(spec, default_chains(spec))
    assert pose_arms(spec) == ()
    names = builder.joint_names
    assert (
        names[:7]
        == ("fl_joint1", "fl_joint2", "fl_joint3", "fl_joint4", "fl_joint5", "fl_joint6", "fl_joint7")
        and len(names) == 14
    )
    joints = np.arange(14, dtype=float) / 10
    joints[names.index("fl_joint7")] = 0.045  # open -> command 1
    joints[names.index("fr_joint7")] = -0.01  # closed -> command 0
    state = builder.build(joints).vector
    assert state.shape == (14,)
    np.testing.assert_allclose(state[:6], joints[:6])
    np.testing.assert_allclose(state[[6, 13]], [1.0, 0.0])
    np.testing.assert_allclose(state[7:13], joints[[names.index(f"fr_joint{i}") for i in range(1, 7)]])


def test_libero_state_is_the_forward_kinematics_pose_and_scaled_fingers():
    spec = load_embodiment("libero_franka")
    builder = StateBuilder(spec, default_chains(spec))
    assert builder.measured_pose_arms == ()
    joints = dict(
        zip(arm_chain(load_embodiment("libero_franka").arm("arm")).joint_names, PANDA_Q, strict=True)
    )
    joints.update(panda_finger_joint1=0.03, panda_finger_joint2=0.03)
    result = builder.build(np.array([joints[name] for name in builder.joint_names]))
    pose = arm_chain(load_embodiment("libero_franka").arm("arm")).forward(PANDA_Q)
    np.testing.assert_allclose(result.vector[:3], pose.position)
    np.testing.assert_allclose(result.vector[3:6], pose.axis_angle)
    np.testing.assert_allclose(result.vector[6:], [0.03, -0.03])  # robosuite's +q, -q
    np.testing.assert_allclose(result.poses["arm"].position, pose.position)


def test_a_measured_pose_replaces_kinematics_and_must_be_given():
    spec = load_embodiment("libero_franka")
    builder = StateBuilder(spec, default_chains(spec, measured_pose_arms=("arm",)))
    assert builder.joint_names == ("panda_finger_joint1", "panda_finger_joint2")
    measured = Pose.from_axis_angle([0.4, 0.1, 0.3], [0.0, 3.0, 0.0])
    state = builder.build(np.array([0.02, 0.02]), {"arm": measured}).vector
    np.testing.assert_allclose(state[:6], [0.4, 0.1, 0.3, 0.0, 3.0, 0.0])
    with pytest.raises(StateAssemblyError, match=r"no measured end-effector pose for arms"):
        builder.build(np.array([0.02, 0.02]))


def test_bad_readings_are_refused_by_name():
    spec = load_embodiment("robotwin_aloha")
    builder = StateBuilder(spec, {})
    joints = np.zeros(14)
    joints[2] = np.nan
    with pytest.raises(StateAssemblyError, match=r"non-finite joint positions for \['fl_joint3'\]"):
        builder.build(joints)
    with pytest.raises(StateAssemblyError, match="expected 14 joint positions"):
        builder.build(np.zeros(13))


def test_kinematics_only_for_arms_it_fits():
    spec = load_embodiment("robotwin_aloha")
    with pytest.raises(StateAssemblyError, match="does not use"):
        StateBuilder(spec, {"left": arm_chain(load_embodiment("libero_franka").arm("arm"))})


@pytest.mark.parametrize(
    "xyzw",
    [(0.9, 0.2, -0.1, -0.3742), (-0.6, 0.5, 0.4, -0.4796), (0.1, 0.2, 0.3, 0.9274), (0.0, 0.0, 0.0, -1.0)],
)
def test_libero_state_axis_angle_is_robosuites_quat2axisangle(xyzw):
    """The simulator's quaternion as given, w < 0 included: no sign canonicalisation."""
    transform_utils = pytest.importorskip("robosuite.utils.transform_utils")
    xyzw = np.asarray(xyzw) / np.linalg.norm(xyzw)
    spec = load_embodiment("libero_franka")
    builder = StateBuilder(spec, chains={})
    joints = np.zeros(len(builder.joint_names))
    pose = Pose.from_quaternion([0.4, 0.0, 0.3], np.roll(xyzw, 1))  # (w, x, y, z)
    state = builder.build(joints, {"arm": pose}).vector
    np.testing.assert_allclose(state[3:6], transform_utils.quat2axisangle(xyzw), atol=1e-12)
    if xyzw[3] < 0 and abs(xyzw[3]) < 1:  # the flipped form would differ by about 2 pi in angle
        assert np.linalg.norm(state[3:6]) > np.pi
