"""Chunk post-processing (gripper convention) for both embodiments; limits are the executor's."""

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.postprocess import postprocess_chunk

LIBERO = load_embodiment("libero_franka")
ROBOTWIN = load_embodiment("robotwin_aloha")

# Model gripper output g (1 = open) -> robosuite command (-1 open, +1 close).
GRIPPER_TABLE = [
    (0.0, 1.0),
    (0.2, 1.0),
    (0.4999, 1.0),
    (0.5, 0.0),  # exact tie: the YAML's tie_value (robosuite: leave the fingers alone)
    (0.5001, -1.0),
    (0.8, -1.0),
    (1.0, -1.0),
    (-0.3, 1.0),  # beyond the training range still gives a valid command
    (1.7, -1.0),
]


def libero_chunk(gripper_values):
    chunk = np.tile(np.array([0.1, -0.2, 0.3, 0.01, -0.02, 0.03, 0.0]), (len(gripper_values), 1))
    chunk[:, 6] = gripper_values
    return chunk


def test_libero_gripper_table():
    g, expected = zip(*GRIPPER_TABLE, strict=True)
    chunk = libero_chunk(g)
    out = postprocess_chunk(chunk, LIBERO)
    np.testing.assert_array_equal(out[:, 6], expected)
    np.testing.assert_array_equal(out[:, :6], chunk[:, :6])  # EEF deltas untouched
    np.testing.assert_array_equal(chunk[:, 6], g)  # input not modified


def test_non_finite_gripper_propagates_for_the_chunk_check():
    out = postprocess_chunk(libero_chunk([np.nan, 0.0]), LIBERO)
    assert np.isnan(out[0, 6]) and out[1, 6] == 1.0


def test_values_past_the_limits_pass_through_for_the_executor_to_judge():
    chunk = libero_chunk(np.zeros(4))
    chunk[1, 1] = 1.2  # past robosuite's action space [-1, 1]: the executor clips it
    np.testing.assert_array_equal(postprocess_chunk(chunk, LIBERO)[:, :6], chunk[:, :6])


def test_absolute_joints_pass_through_unchanged():
    chunk = np.random.default_rng(0).uniform(-1, 1, (32, 14))
    out = postprocess_chunk(chunk, ROBOTWIN)
    np.testing.assert_array_equal(out, chunk)
    assert out is not chunk


@pytest.mark.parametrize(
    "spec, shape", [(LIBERO, (32, 14)), (ROBOTWIN, (32, 7)), (LIBERO, (7,)), (LIBERO, (0, 7))]
)
def test_wrong_chunk_shapes_are_rejected(spec, shape):
    with pytest.raises(ValueError, match=r"shape \[H, "):
        postprocess_chunk(np.zeros(shape), spec)
