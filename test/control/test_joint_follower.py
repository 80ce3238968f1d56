"""JointFollower: commanded trajectories followed like an ideal (or lagging) position
controller, bad commands refused without changing the plan."""

import numpy as np
import pytest

from lightwam_ros.control.joint_follower import JointFollower


def _follower(time_constant=0.0):
    names = ("a", "b")
    return JointFollower(
        names, np.array([-1.0, 0.0]), np.array([1.0, 2.0]), np.array([0.0, 1.0]), time_constant
    )


def test_arm_follows_a_trajectory_by_linear_interpolation_then_holds_its_end():
    arm = _follower()
    arm.follow(["b"], [11.0, 12.0], [[2.0], [0.5]], now=10.0)
    assert arm.step(10.5) == pytest.approx([0.0, 1.5])
    assert arm.step(11.5) == pytest.approx([0.0, 1.25])
    assert arm.velocities == pytest.approx([0.0, -0.25])
    assert arm.step(20.0) == pytest.approx([0.0, 0.5])
    arm.follow(["b", "a"], [20.0], [[1.0, -0.5]], now=20.5)  # already due: the target at once
    assert arm.step(20.5) == pytest.approx([-0.5, 1.0])


def test_arm_skips_past_points_and_clips_to_its_limits():
    arm = _follower()
    arm.follow(["a"], [1.0, 2.0, 4.0], [[0.2], [0.4], [5.0]], now=3.0)
    assert arm.step(3.0) == pytest.approx([0.4, 1.0])  # newest past point, then towards 4.0
    assert arm.step(4.0) == pytest.approx([1.0, 1.0])  # 5.0 clipped to the upper limit
    assert arm.fractions() == pytest.approx([1.0, 0.5])


@pytest.mark.parametrize(
    "names, times, points, reason",
    [
        (["c"], [1.0], [[0.0]], "does not have"),
        (["a", "a"], [1.0], [[0.0, 0.0]], "twice"),
        (["a"], [1.0], [[0.0, 1.0]], "one position per named joint"),
        (["a"], [], [], "one position per named joint"),
        (["a"], [1.0], [[float("nan")]], "non-finite"),
        (["a"], [2.0, 2.0], [[0.1], [0.2]], "increase"),
    ],
)
def test_bad_commands_are_refused_and_change_nothing(names, times, points, reason):
    arm = _follower()
    with pytest.raises(ValueError, match=reason):
        arm.follow(names, times, points, now=0.5)
    assert arm.step(3.0) == pytest.approx([0.0, 1.0])


def test_time_constant_makes_the_joints_lag_their_command():
    arm = _follower(time_constant=0.1)
    arm.step(0.0)
    arm.follow(["a"], [0.0], [[1.0]], now=0.0)
    assert arm.step(0.1)[0] == pytest.approx(1.0 - np.exp(-1.0))
    assert arm.step(1.0)[0] == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(ValueError, match="outside the joint limits"):
        JointFollower(["a"], np.array([0.0]), np.array([1.0]), np.array([2.0]))
