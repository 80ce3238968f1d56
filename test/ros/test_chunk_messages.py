"""The one ActionChunk <-> Chunk conversion pair, the planned path as a JointTrajectory, and path
markers.  The chunk's own structure checks are tested with it (test/policy/test_chunk.py)."""

import dataclasses

import numpy as np
import pytest

pytest.importorskip("trajectory_msgs.msg")
from rclpy.serialization import deserialize_message, serialize_message
from visualization_msgs.msg import Marker, MarkerArray

from lightwam_ros.msg import ActionChunk
from lightwam_ros.policy.chunk import Chunk, ChunkError
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.chunk_messages import (
    ChunkBounds,
    chunk_to_msg,
    msg_to_chunk,
    path_markers,
    path_to_joint_trajectory,
)
from lightwam_ros.ros.log_text import quoted, quoted_names

H, A = 6, 3
NAMES = ("joint_a", "joint_b", "gripper")
STAMP_NS = 1_700_000_000_123_456_789  # float seconds cannot hold this stamp to the nanosecond


def make_chunk(**overrides) -> Chunk:
    fields = dict(
        stamp_ns=STAMP_NS,
        actions=np.random.default_rng(0).normal(size=(H, A)),
        dt=0.04,
        execute_steps=4,
        chunk_id=17,
        embodiment="libero_franka",
        action_mode="absolute_joints",
        action_names=NAMES,
        inference_latency=0.061,
        observation_age=0.012,
        model_id="tiny:0123abcd",
        instruction="pick up the bowl",
        frame_id="",
    )
    fields.update(overrides)
    return Chunk(**fields)


def duration_ns(duration) -> int:
    return duration.sec * 10**9 + duration.nanosec


# --- ActionChunk <-> Chunk --------------------------------------------------------------------


def test_round_trip_through_serialized_action_chunk_keeps_the_stamp_to_the_nanosecond():
    chunk = make_chunk(frame_id="panda_link0", action_mode="delta_eef")
    raw = serialize_message(chunk_to_msg(chunk))
    msg = deserialize_message(raw, ActionChunk)
    assert (msg.horizon, msg.action_dim, len(msg.actions)) == (H, A, H * A)
    assert msg.actions[1 * A + 2] == np.float32(chunk.actions[1, 2])  # row-major
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    back = msg_to_chunk(msg)
    np.testing.assert_array_equal(back.actions, chunk.actions.astype(np.float32).astype(np.float64))
    assert back.actions.dtype == np.float64
    for field in dataclasses.fields(Chunk):
        if field.name != "actions":
            assert getattr(back, field.name) == getattr(chunk, field.name), field.name


def test_values_beyond_float32_are_caught_before_publishing():
    actions = np.zeros((H, A))
    actions[2, 0] = 1e39
    with pytest.raises(ChunkError, match=r"step 2, dimension 0 \('joint_a'\) is inf"):
        chunk_to_msg(make_chunk(actions=actions))


def test_a_chunk_before_the_epoch_has_no_message():
    with pytest.raises(ValueError, match="outside the range of a ROS stamp"):
        chunk_to_msg(make_chunk(stamp_ns=-1))


def message(**overrides) -> ActionChunk:
    msg = chunk_to_msg(make_chunk())
    for name, value in overrides.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (dict(actions=[0.0] * (H * A - 1)), r"17 action values, expected horizon\*action_dim = 6\*3 = 18"),
        (dict(horizon=H + 1), "21"),
        (dict(horizon=0, actions=[]), "is empty: horizon 0"),
        (dict(action_dim=0, actions=[]), "is empty: horizon 6, action_dim 0"),
        (dict(actions=[0.0] * 7 + [float("nan")] + [0.0] * 10), r"step 2, dimension 1 \('joint_b'\)"),
        (dict(dt=0.0), "dt must be finite and > 0"),
        (dict(execute_steps=H + 1), "execute_steps"),
        (dict(action_names=["x"]), "distinct action_names"),
    ],
)
def test_malformed_messages_are_rejected(overrides, fragment):
    with pytest.raises(ChunkError, match=fragment):
        msg_to_chunk(message(**overrides))


BOUNDS = ChunkBounds(max_horizon=2 * H, action_dim=A, chunk_length=H)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        (
            dict(horizon=100_000, actions=[0.0] * (100_000 * A)),
            r"horizon 100000 exceeds 12 \(2 x the embodiment's chunk length 6\)",
        ),
        (
            dict(action_dim=A + 1, actions=[0.0] * (H * (A + 1)), action_names=list(NAMES) + ["x"]),
            "action_dim 4 with 4 action_names, the embodiment has 3",
        ),
        (
            dict(action_names=["joint_a", "joint_b", "g" * 1_000_000]),
            r"action name 'ggg.*\.\.\. \(1000002 chars\) is longer than 128 characters",
        ),
        (dict(instruction="x" * 1_000_000), r"instruction .*\(1000002 chars\) is longer than 4096"),
    ],
)
def test_messages_beyond_the_receivers_bounds_are_rejected_with_a_short_reason(overrides, fragment):
    with pytest.raises(ChunkError, match=fragment) as error:
        msg_to_chunk(message(**overrides), BOUNDS)
    assert len(str(error.value)) < 300


def test_a_chunk_within_the_bounds_is_accepted():
    assert msg_to_chunk(message(), BOUNDS).actions.shape == (H, A)
    assert ChunkBounds.of(load_embodiment("robotwin_aloha")).max_horizon == 2 * 32


def test_quoted_input_text_is_cut_with_its_length():
    assert quoted("short") == "'short'"
    long = quoted("a" * 1_000_000)
    assert long.startswith("'aaa") and long.endswith("... (1000002 chars)") and len(long) < 150
    assert quoted_names(["j1", "j2"]) == "['j1', 'j2']"
    many = quoted_names([f"joint_{i}" for i in range(100_000)])
    assert len(many) < 160 and many.endswith("(100000 names)")


# --- Planned path as a JointTrajectory --------------------------------------------------------


def test_path_trajectory_is_stamped_at_its_first_point_with_exact_offsets():
    times = STAMP_NS + np.array([0, 20_000_000, 40_000_001])
    positions = np.arange(9.0).reshape(3, 3)
    traj = path_to_joint_trajectory(["j1", "j2", "j3"], times, positions)
    traj = deserialize_message(serialize_message(traj), type(traj))
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert list(traj.joint_names) == ["j1", "j2", "j3"]
    assert [duration_ns(p.time_from_start) for p in traj.points] == [0, 20_000_000, 40_000_001]
    np.testing.assert_array_equal([p.positions for p in traj.points], positions)


def test_path_trajectory_needs_one_row_per_time():
    with pytest.raises(ValueError, match="one row of 3 positions per time"):
        path_to_joint_trajectory(["j1", "j2", "j3"], np.array([0, 1]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one row of 3 positions per time"):
        path_to_joint_trajectory(["j1", "j2", "j3"], np.zeros(0, dtype=np.int64), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="one row of 3 velocities per time"):
        path_to_joint_trajectory(["j1", "j2", "j3"], np.array([0, 1]), np.zeros((2, 3)), np.zeros((1, 3)))


def test_plan_trajectory_carries_velocities_for_a_controller():
    """The plan output's message: velocities beside the positions, in the joints' order; the
    RViz path has none (a controller would read an empty list as 'not given')."""
    times = STAMP_NS + np.array([0, 50_000_000, 120_000_000])
    positions = np.arange(9.0).reshape(3, 3)
    velocities = -np.arange(9.0).reshape(3, 3) / 10
    traj = path_to_joint_trajectory(["j1", "j2", "j3"], times, positions, velocities)
    traj = deserialize_message(serialize_message(traj), type(traj))
    assert [duration_ns(p.time_from_start) for p in traj.points] == [0, 50_000_000, 120_000_000]
    np.testing.assert_array_equal([p.positions for p in traj.points], positions)
    np.testing.assert_array_equal([p.velocities for p in traj.points], velocities)
    assert all(len(p.accelerations) == 0 for p in traj.points)
    path = path_to_joint_trajectory(["j1", "j2", "j3"], times, positions)
    assert all(len(p.velocities) == 0 for p in path.points)


# --- Markers ----------------------------------------------------------------------------------


def test_path_markers_line_and_spheres():
    points = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    array = path_markers(
        points, stamp=3.25, frame_id="base", ns="eef_path", marker_id=10, color=(1.0, 0.5, 0.0, 0.8)
    )
    array = deserialize_message(serialize_message(array), MarkerArray)
    line, spheres = array.markers
    assert (line.type, line.id) == (Marker.LINE_STRIP, 10)
    assert (spheres.type, spheres.id) == (Marker.SPHERE_LIST, 11)
    for marker in (line, spheres):
        assert (marker.ns, marker.action) == ("eef_path", Marker.ADD)
        assert marker.header.frame_id == "base"
        assert (marker.header.stamp.sec, marker.header.stamp.nanosec) == (3, 250_000_000)
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in marker.points], points)
        assert marker.pose.orientation.w == 1.0
        np.testing.assert_allclose(
            [marker.color.r, marker.color.g, marker.color.b, marker.color.a], [1.0, 0.5, 0.0, 0.8], rtol=1e-6
        )
    assert line.scale.x == pytest.approx(0.005)
    assert (spheres.scale.x, spheres.scale.y, spheres.scale.z) == pytest.approx((0.015,) * 3)


@pytest.mark.parametrize(
    "points, color, fragment",
    [
        (np.zeros((1, 3)), (1, 0, 0, 1), "N >= 2"),
        (np.zeros((4, 2)), (1, 0, 0, 1), "N >= 2"),
        (np.array([[0, 0, 0], [0, np.nan, 0]]), (1, 0, 0, 1), "finite"),
        (np.zeros((2, 3)), (1, 0, 0), "4 RGBA values"),
        (np.zeros((2, 3)), (1, 0, 2, 1), "4 RGBA values"),
    ],
)
def test_path_markers_reject_bad_input(points, color, fragment):
    with pytest.raises(ValueError, match=fragment):
        path_markers(points, stamp=0.0, frame_id="base", ns="p", marker_id=0, color=color)
