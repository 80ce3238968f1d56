"""The one chunk type: its structure check, exact nanosecond waypoint times, derived chunks."""

import numpy as np
import pytest

from lightwam_ros.policy.chunk import Chunk, ChunkError

EPOCH_NS = 1_764_900_000_123_456_789  # a present-day stamp: floats in seconds lose its last digits


def make(**changes) -> Chunk:
    fields = dict(
        stamp_ns=EPOCH_NS,
        dt=0.05,
        actions=np.zeros((4, 2)),
        action_names=("a", "b"),
        execute_steps=3,
        chunk_id=7,
        embodiment="libero_franka",
    )
    fields.update(changes)
    return Chunk(**fields)


def test_waypoint_times_are_exact_nanoseconds_at_epoch_stamps():
    chunk = make()
    assert chunk.waypoint_times_ns().tolist() == [EPOCH_NS + 50_000_000 * i for i in (1, 2, 3)]
    assert chunk.dt_ns == 50_000_000 and chunk.horizon == 4 and chunk.action_dim == 2
    assert chunk.executable().shape == (3, 2)
    with pytest.raises(ValueError, match="read-only"):
        chunk.actions[0, 0] = 1.0


def test_with_actions_keeps_time_and_identity():
    chunk = make(action_mode="delta_eef")
    joints = chunk.with_actions(np.ones((3, 3)), ("j1", "j2", "j3"))
    assert (joints.stamp_ns, joints.dt, joints.execute_steps, joints.chunk_id) == (EPOCH_NS, 0.05, 3, 7)
    assert joints.action_mode == "absolute_joints" and joints.action_names == ("j1", "j2", "j3")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"actions": np.zeros((0, 2))}, "non-empty"),
        ({"action_names": ("a", "a")}, "distinct"),
        (
            {"actions": np.array([[0.0, 0.0], [0.0, np.nan], [0.0, 0.0], [0.0, 0.0]])},
            r"step 1, dimension 1 \('b'\) is nan",
        ),
        ({"stamp_ns": 1.5}, "stamp_ns must be an integer"),
        ({"dt": 0.0}, "dt"),
        ({"execute_steps": 5}, "execute_steps"),
        ({"chunk_id": -1}, "uint64"),
        ({"action_mode": "velocity"}, "action_mode"),
        ({"inference_latency": np.inf}, "inference_latency"),
    ],
)
def test_a_meaningless_chunk_cannot_be_built(changes, match):
    with pytest.raises(ChunkError, match=match):
        make(**changes)
