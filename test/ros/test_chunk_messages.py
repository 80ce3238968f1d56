"""ActionChunk messages, chunk validation, JointTrajectory timing/velocities and path markers."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("trajectory_msgs.msg")
from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from lightwam_ros.msg import ActionChunk  # noqa: E402
from lightwam_ros.ros.chunk_messages import (ChunkData, ChunkMessageError,  # noqa: E402
                                             chunk_to_joint_trajectory, chunk_to_msg,
                                             msg_to_chunk, path_markers)

H, A = 6, 3
NAMES = ("joint_a", "joint_b", "gripper")


def make_chunk(**overrides) -> ChunkData:
    fields = dict(
        stamp=1_700_000_000.25,  # exactly representable, so stamps compare exactly
        actions=np.random.default_rng(0).normal(size=(H, A)), dt=0.04, execute_steps=4,
        chunk_id=17, embodiment="libero_franka", action_mode="absolute_joints",
        action_names=NAMES, inference_latency=0.061, observation_age=0.012,
        model_id="tiny:0123abcd", instruction="pick up the bowl", frame_id="")
    fields.update(overrides)
    return ChunkData(**fields)


def duration_ns(duration) -> int:
    return duration.sec * 10**9 + duration.nanosec


# --- ActionChunk <-> ChunkData ---------------------------------------------------------------

def test_round_trip_through_serialized_action_chunk():
    chunk = make_chunk(frame_id="panda_link0", action_mode="delta_eef")
    raw = serialize_message(chunk_to_msg(chunk))
    msg = deserialize_message(raw, ActionChunk)
    assert (msg.horizon, msg.action_dim, len(msg.actions)) == (H, A, H * A)
    assert msg.actions[1 * A + 2] == np.float32(chunk.actions[1, 2])  # row-major
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 250_000_000)
    back = msg_to_chunk(msg)
    np.testing.assert_array_equal(back.actions, chunk.actions.astype(np.float32).astype(np.float64))
    assert back.actions.dtype == np.float64
    for field in dataclasses.fields(ChunkData):
        if field.name != "actions":
            assert getattr(back, field.name) == getattr(chunk, field.name), field.name


def test_chunk_data_is_an_immutable_copy():
    actions = np.ones((H, A))
    chunk = make_chunk(actions=actions)
    actions[0, 0] = 5.0
    assert chunk.actions[0, 0] == 1.0
    with pytest.raises(ValueError):
        chunk.actions[0, 0] = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.dt = 1.0


def test_non_finite_actions_name_step_and_dimension():
    actions = np.zeros((H, A))
    actions[3, 1] = np.nan
    actions[4, 2] = np.inf
    with pytest.raises(ChunkMessageError,
                       match=r"step 3, dimension 1 \('joint_b'\) is nan \(2 non-finite"):
        make_chunk(actions=actions)


def test_values_beyond_float32_are_caught_before_publishing():
    actions = np.zeros((H, A))
    actions[2, 0] = 1e39
    with pytest.raises(ChunkMessageError, match=r"step 2, dimension 0 \('joint_a'\) is inf"):
        chunk_to_msg(make_chunk(actions=actions))


@pytest.mark.parametrize("overrides, fragment", [
    (dict(actions=np.zeros((0, A))), "non-empty"),
    (dict(actions=np.zeros(A)), "non-empty"),
    (dict(action_names=("a", "b")), "3 distinct action_names"),
    (dict(action_names=("a", "a", "b")), "3 distinct action_names"),
    (dict(dt=0.0), "dt must be finite and > 0"),
    (dict(dt=-0.04), "dt must be finite and > 0"),
    (dict(dt=float("nan")), "dt must be finite and > 0"),
    (dict(execute_steps=0), r"execute_steps must be in \[1, horizon=6\]"),
    (dict(execute_steps=H + 1), r"execute_steps must be in \[1, horizon=6\]"),
    (dict(execute_steps=2.5), "execute_steps"),
    (dict(stamp=-1.0), "stamp must be >= 0"),
    (dict(stamp=float("inf")), "stamp must be finite"),
    (dict(inference_latency=float("nan")), "inference_latency must be finite"),
    (dict(chunk_id=-1), "uint64"),
    (dict(action_mode="joint_velocities"), "action_mode must be one of"),
])
def test_invalid_chunks_are_rejected(overrides, fragment):
    with pytest.raises(ChunkMessageError, match=fragment):
        make_chunk(**overrides)


def message(**overrides) -> ActionChunk:
    msg = chunk_to_msg(make_chunk())
    for name, value in overrides.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize("overrides, fragment", [
    (dict(actions=[0.0] * (H * A - 1)),
     r"17 action values, expected horizon\*action_dim = 6\*3 = 18"),
    (dict(horizon=H + 1), "21"),
    (dict(horizon=0, actions=[]), "is empty: horizon 0"),
    (dict(action_dim=0, actions=[]), "is empty: horizon 6, action_dim 0"),
    (dict(actions=[0.0] * 7 + [float("nan")] + [0.0] * 10), r"step 2, dimension 1 \('joint_b'\)"),
    (dict(dt=0.0), "dt must be finite and > 0"),
    (dict(execute_steps=H + 1), "execute_steps"),
    (dict(action_names=["x"]), "distinct action_names"),
])
def test_malformed_messages_are_rejected(overrides, fragment):
    with pytest.raises(ChunkMessageError, match=fragment):
        msg_to_chunk(message(**overrides))


# --- JointTrajectory --------------------------------------------------------------------------

def quadratic_chunk(**overrides) -> ChunkData:
    """q(t) = c * t^2 per joint at t = i*dt: central differences are exact (2ct)."""
    t = np.arange(H) * 0.04
    return make_chunk(actions=np.outer(t**2, [1.0, -2.0, 0.5]), **overrides)


def test_trajectory_timing_defaults_to_when_step_0_is_reached():
    chunk = quadratic_chunk(stamp=100.0)
    traj = chunk_to_joint_trajectory(chunk, ["j1", "j2", "j3"])
    assert (traj.header.stamp.sec, traj.header.stamp.nanosec) == (100, 40_000_000)  # stamp + dt
    assert list(traj.joint_names) == ["j1", "j2", "j3"]
    assert [duration_ns(p.time_from_start) for p in traj.points] == [0, 40_000_000, 80_000_000,
                                                                     120_000_000]
    for point, row in zip(traj.points, chunk.actions):
        np.testing.assert_array_equal(point.positions, row)


def test_trajectory_velocities_are_finite_differences():
    chunk = quadratic_chunk()
    traj = chunk_to_joint_trajectory(chunk, NAMES, executable_only=False)
    assert len(traj.points) == H
    dt, slope = 0.04, np.array([1.0, -2.0, 0.5])
    velocities = np.array([p.velocities for p in traj.points])
    np.testing.assert_allclose(velocities[0], slope * dt, rtol=1e-12)  # forward: (q1-q0)/dt
    for i in range(1, H - 1):
        np.testing.assert_allclose(velocities[i], slope * 2 * i * dt, rtol=1e-12)  # central
    assert not velocities[-1].any()  # the last point comes to rest


def test_trajectory_keeps_only_executable_steps_by_default():
    chunk = quadratic_chunk(execute_steps=2)
    traj = chunk_to_joint_trajectory(chunk, NAMES)
    assert len(traj.points) == 2
    velocities = np.array([p.velocities for p in traj.points])
    forward = (chunk.actions[1] - chunk.actions[0]) / chunk.dt
    np.testing.assert_allclose(velocities[0], forward, rtol=1e-12)
    assert not velocities[1].any()  # the last point comes to rest


def test_trajectory_start_time_override_and_single_step():
    chunk = make_chunk(actions=np.ones((1, A)), execute_steps=1)
    for start in (5.5, Time(sec=5, nanosec=500_000_000)):
        traj = chunk_to_joint_trajectory(chunk, NAMES, start_time=start)
        assert (traj.header.stamp.sec, traj.header.stamp.nanosec) == (5, 500_000_000)
        assert list(traj.points[0].velocities) == [0.0, 0.0, 0.0]


def test_trajectory_rejects_wrong_names_and_cartesian_chunks():
    with pytest.raises(ChunkMessageError, match="need 3 distinct joint names"):
        chunk_to_joint_trajectory(make_chunk(), ["j1", "j2"])
    with pytest.raises(ChunkMessageError, match="need 3 distinct joint names"):
        chunk_to_joint_trajectory(make_chunk(), ["j1", "j1", "j2"])
    with pytest.raises(ChunkMessageError, match="convert delta-EEF chunks"):
        chunk_to_joint_trajectory(make_chunk(action_mode="delta_eef"), NAMES)


# --- Markers ----------------------------------------------------------------------------------

def test_path_markers_line_and_spheres():
    points = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    array = path_markers(points, stamp=3.25, frame_id="base", ns="eef_path", marker_id=10,
                         color=(1.0, 0.5, 0.0, 0.8))
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
        np.testing.assert_allclose([marker.color.r, marker.color.g, marker.color.b, marker.color.a],
                                   [1.0, 0.5, 0.0, 0.8], rtol=1e-6)
    assert line.scale.x == pytest.approx(0.005)
    assert (spheres.scale.x, spheres.scale.y, spheres.scale.z) == pytest.approx((0.015,) * 3)


@pytest.mark.parametrize("points, color, fragment", [
    (np.zeros((1, 3)), (1, 0, 0, 1), "N >= 2"),
    (np.zeros((4, 2)), (1, 0, 0, 1), "N >= 2"),
    (np.array([[0, 0, 0], [0, np.nan, 0]]), (1, 0, 0, 1), "finite"),
    (np.zeros((2, 3)), (1, 0, 0), "4 RGBA values"),
    (np.zeros((2, 3)), (1, 0, 2, 1), "4 RGBA values"),
])
def test_path_markers_reject_bad_input(points, color, fragment):
    with pytest.raises(ValueError, match=fragment):
        path_markers(points, stamp=0.0, frame_id="base", ns="p", marker_id=0, color=color)
