"""Each configurable node kind's parameter table, by role: what the parameter reference
documents and the parameter files are checked against.  No ROS imports."""

from __future__ import annotations

from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA
from lightwam_ros.ros.node_registry import EXECUTOR, POLICY, RECORDER, ROBOT, SIM
from lightwam_ros.ros.parameter_schema import NodeSchema
from lightwam_ros.ros.policy_params import POLICY_SCHEMA
from lightwam_ros.ros.recorder_params import RECORDER_SCHEMA
from lightwam_ros.ros.robot_params import LOOPBACK_SCHEMA, SIM_SCHEMA

NODE_SCHEMAS: dict[str, NodeSchema] = {
    POLICY: POLICY_SCHEMA,
    EXECUTOR: EXECUTOR_SCHEMA,
    ROBOT: LOOPBACK_SCHEMA,
    SIM: SIM_SCHEMA,
    RECORDER: RECORDER_SCHEMA,
}
