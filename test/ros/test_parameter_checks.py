"""A schema on a ROS node: declared with its descriptions as it is read, values from overrides
checked, and run-time changes gated by the schema."""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import fresh_ros_context  # noqa: E402

from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA  # noqa: E402
from lightwam_ros.ros.parameter_checks import NodeSource, allow_runtime_changes  # noqa: E402
from lightwam_ros.ros.parameter_schema import read_parameters  # noqa: E402

ros_context = pytest.fixture(fresh_ros_context)


def _node(context, **overrides) -> Node:
    return Node(
        "schema_test",
        context=context,
        parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()],
    )


def test_parameters_are_declared_with_their_description_and_checked(ros_context):
    node = _node(ros_context, control_rate=100, **{"joint_limits.fl_joint7.max_velocity": 0.1})
    try:
        source = NodeSource(node)
        values = read_parameters(source, EXECUTOR_SCHEMA)
        assert values["control_rate"] == 100.0 and values["joint_names"] is None
        joints = read_parameters(source, EXECUTOR_SCHEMA, {"joint": ["fl_joint7"]}, {})
        assert joints["joint_limits.fl_joint7.max_velocity"] == 0.1
        described = node.describe_parameter("max_velocity")
        assert "Velocity cap" in described.description and described.additional_constraints == "> 0"
    finally:
        node.destroy_node()


def test_a_bad_override_is_refused_naming_the_parameter(ros_context):
    node = _node(ros_context, diagnostics_rate=-1.0)
    try:
        with pytest.raises(ValueError, match=r"parameter diagnostics_rate must be > 0, got -1\.0"):
            read_parameters(NodeSource(node), EXECUTOR_SCHEMA)
    finally:
        node.destroy_node()


def test_run_time_changes_follow_the_schema(ros_context):
    node = _node(ros_context)
    applied = []
    try:
        read_parameters(NodeSource(node), EXECUTOR_SCHEMA)
        with pytest.raises(ValueError, match="handlers for"):  # every changeable one needs a handler
            allow_runtime_changes(node, EXECUTOR_SCHEMA, {})
        allow_runtime_changes(node, EXECUTOR_SCHEMA, {"speed_scaling": (None, applied.append)})
        (result,) = node.set_parameters([Parameter("control_rate", value=100.0)])
        assert not result.successful
        assert "parameter control_rate is read at start only: restart the node" in result.reason
        assert "changeable now: ['speed_scaling']" in result.reason
        (result,) = node.set_parameters([Parameter("speed_scaling", value=1.5)])
        assert not result.successful and "parameter speed_scaling must be in [0, 1], got 1.5" in result.reason
        # All or nothing: a valid change goes nowhere when another in the request is refused.
        node.set_parameters_atomically(
            [Parameter("speed_scaling", value=0.5), Parameter("ramp_time", value=0.0)]
        )
        assert applied == []
        (result,) = node.set_parameters([Parameter("speed_scaling", value=0.5)])
        assert result.successful and applied == [0.5]
        assert node.get_parameter("speed_scaling").value == 0.5
    finally:
        node.destroy_node()
