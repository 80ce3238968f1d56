"""The package's QoS profiles (lightwam_ros/ros/qos.py): each topic's writers and readers, as the
policy, executor, simulated robots and tools pick them, can talk to each other - checked by
rmw's own compatibility rules on the profile objects, no ROS graph needed."""

import pytest

pytest.importorskip("rclpy")
from rclpy.qos import QoSCompatibility, qos_check_compatible, qos_profile_sensor_data

from lightwam_ros.ros import qos


def _matches(publisher, subscription) -> bool:
    """rmw's verdict: ERROR for a reliability or durability mismatch; WARNING when it cannot be
    sure because a policy (here liveliness, as in every ROS default profile) is system default."""
    return qos_check_compatible(publisher, subscription)[0] != QoSCompatibility.ERROR


@pytest.mark.parametrize(
    ("topic", "publisher", "subscription"),
    [
        ("chunk: policy -> executor", qos.COMMANDS, qos.COMMANDS),
        ("chunk request: executor -> policy", qos.COMMANDS, qos.COMMANDS),
        ("commands: executor -> robot", qos.COMMANDS, qos.COMMANDS),
        ("commands: executor -> observer", qos.COMMANDS, qos.OBSERVER),
        ("status: policy -> observer", qos.LATCHED, qos.LATCHED),
        ("instruction: sim -> policy", qos.LATCHED, qos.COMMANDS),
        ("joint states: sim -> policy", qos.SIMULATED_SENSORS, qos.SENSOR_STATE),
        ("joint states: sim -> executor", qos.SIMULATED_SENSORS, qos.LATEST_STATE),
        ("camera: sim -> policy", qos.SIMULATED_SENSORS, qos.SENSOR_CAMERA),
        ("camera: sim -> policy, reliable", qos.SIMULATED_SENSORS, qos.RELIABLE_CAMERA),
        ("joint states: driver -> policy", qos_profile_sensor_data, qos.SENSOR_STATE),
        ("joint states: driver -> executor", qos_profile_sensor_data, qos.LATEST_STATE),
        ("camera: driver -> policy", qos_profile_sensor_data, qos.SENSOR_CAMERA),
    ],
)
def test_the_package_writers_and_readers_of_a_topic_match(topic, publisher, subscription):
    assert _matches(publisher, subscription), topic


def test_default_camera_and_state_readers_are_best_effort_so_any_driver_matches():
    for reader in (qos.SENSOR_CAMERA, qos.SENSOR_STATE, qos.LATEST_STATE):
        assert not qos.is_reliable(reader)
    # The opt-in reliable camera reader is the trade-off: a best-effort driver does not match it.
    assert not _matches(qos_profile_sensor_data, qos.RELIABLE_CAMERA)


def test_latched_status_reaches_late_joiners_only_through_a_latched_writer():
    assert qos.is_latched(qos.LATCHED) and qos.is_reliable(qos.LATCHED)
    assert not _matches(qos.COMMANDS, qos.LATCHED)


def test_policy_state_readers_keep_more_samples_than_the_sensor_data_profile():
    # 100 Hz joint states while inference holds the GIL: 5 would drop them after 50 ms.
    assert qos.SENSOR_STATE.depth > qos_profile_sensor_data.depth


def test_profile_builds_a_fresh_profile_with_the_asked_policies():
    built = qos.profile(7, reliable=False, latched=True)
    assert (built.depth, qos.is_reliable(built), qos.is_latched(built)) == (7, False, True)
    assert qos.profile(10) == qos.COMMANDS and qos.profile(10) is not qos.COMMANDS
