"""JointState -> positions in the embodiment's order, matched by name; and the reverse."""

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")
from sensor_msgs.msg import JointState

from lightwam_ros.ros.joint_state import JointStateError, JointStateMatcher, make_joint_state

EXPECTED = ["shoulder", "elbow", "wrist", "gripper"]
TRUE_POSITION = {
    "shoulder": 0.1,
    "elbow": -0.2,
    "wrist": 0.3,
    "gripper": 0.04,
    "finger_left": 0.011,
    "finger_right": 0.012,
}


def state(names, positions=None) -> JointState:
    positions = [TRUE_POSITION[n] for n in names] if positions is None else positions
    return JointState(name=list(names), position=[float(p) for p in positions])


def test_positions_come_out_in_expected_order_whatever_the_message_order():
    matcher = JointStateMatcher(EXPECTED)
    want = [TRUE_POSITION[n] for n in EXPECTED]
    for names in (
        EXPECTED,
        EXPECTED[::-1],
        ["finger_left", "gripper", "shoulder", "finger_right", "wrist", "elbow"],
    ):
        got = matcher.extract(state(names))
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want)


def test_alternating_layouts_each_keep_their_own_column_map():
    matcher = JointStateMatcher(EXPECTED)
    want = [TRUE_POSITION[n] for n in EXPECTED]
    first, second = state(EXPECTED), state(["wrist", "gripper", "elbow", "shoulder", "finger_left"])
    for _ in range(3):
        np.testing.assert_array_equal(matcher.extract(first), want)
        np.testing.assert_array_equal(matcher.extract(second), want)


def test_the_column_map_is_computed_once_per_name_list(monkeypatch):
    layouts = []
    original = JointStateMatcher._layout
    monkeypatch.setattr(
        JointStateMatcher, "_layout", lambda self, names: layouts.append(names) or original(self, names)
    )
    matcher = JointStateMatcher(EXPECTED)
    for positions in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]):
        np.testing.assert_array_equal(matcher.extract(state(EXPECTED[::-1], positions)), positions[::-1])
    assert layouts == [tuple(EXPECTED[::-1])]


def test_result_does_not_alias_the_message():
    matcher = JointStateMatcher(EXPECTED)
    msg = state(EXPECTED)
    matcher.extract(msg)[:] = 99.0
    assert list(msg.position) == [TRUE_POSITION[n] for n in EXPECTED]


def test_missing_joints_are_named():
    with pytest.raises(JointStateError, match=r"lacks joints \['elbow', 'gripper'\]"):
        JointStateMatcher(EXPECTED).extract(state(["shoulder", "wrist", "finger_left"]))


def test_duplicate_names_in_the_message_are_rejected():
    msg = state(["shoulder", "elbow", "wrist", "gripper", "elbow"])
    with pytest.raises(JointStateError, match=r"duplicate joint names \['elbow'\]"):
        JointStateMatcher(EXPECTED).extract(msg)


def test_names_and_positions_must_have_the_same_length():
    matcher = JointStateMatcher(EXPECTED)
    with pytest.raises(JointStateError, match="4 names but 3 positions"):
        matcher.extract(state(EXPECTED, [0.1, 0.2, 0.3]))
    with pytest.raises(JointStateError, match="4 names but 0 positions"):
        matcher.extract(JointState(name=EXPECTED, velocity=[0.0] * 4))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_positions_name_the_joint(bad):
    positions = [TRUE_POSITION[n] for n in EXPECTED]
    positions[2] = bad
    with pytest.raises(JointStateError, match=f"non-finite positions: wrist={bad}"):
        JointStateMatcher(EXPECTED).extract(state(EXPECTED, positions))


def test_non_finite_extra_joints_are_ignored():
    names = EXPECTED + ["finger_left"]
    positions = [TRUE_POSITION[n] for n in EXPECTED] + [float("nan")]
    np.testing.assert_array_equal(JointStateMatcher(EXPECTED).extract(state(names, positions)), positions[:4])


@pytest.mark.parametrize(
    "names, fragment",
    [
        ([], "empty"),
        (["a", "b", "a"], r"duplicate joint names \['a'\]"),
        (["a", ""], "non-empty strings"),
    ],
)
def test_bad_expected_names_are_rejected(names, fragment):
    with pytest.raises(JointStateError, match=fragment):
        JointStateMatcher(names)


def test_make_joint_state_round_trips_through_the_matcher():
    msg = make_joint_state(EXPECTED, [1.0, 2.0, 3.0, 4.0], stamp=7.25, velocities=[0.5, 0, 0, -0.5])
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (7, 250_000_000)
    assert list(msg.name) == EXPECTED
    assert list(msg.velocity) == [0.5, 0.0, 0.0, -0.5] and list(msg.effort) == []
    np.testing.assert_array_equal(JointStateMatcher(EXPECTED[::-1]).extract(msg), [4.0, 3.0, 2.0, 1.0])
    assert list(make_joint_state(EXPECTED, np.zeros(4), stamp=0.0).velocity) == []


@pytest.mark.parametrize(
    "positions, velocities, fragment",
    [
        ([1.0, 2.0, 3.0], None, r"4 names but positions has shape \(3,\)"),
        ([1.0, 2.0, 3.0, 4.0], [0.0], r"4 names but velocities has shape \(1,\)"),
        ([1.0, float("nan"), 3.0, 4.0], None, "non-finite positions"),
        ([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, float("inf"), 0.0], "non-finite velocities"),
    ],
)
def test_make_joint_state_rejects_bad_input(positions, velocities, fragment):
    with pytest.raises(JointStateError, match=fragment):
        make_joint_state(EXPECTED, positions, stamp=0.0, velocities=velocities)
