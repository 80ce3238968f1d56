"""Which topics a run reads and publishes, from the nodes' effective parameters: what the
recorder records and what a player of a foreign bag leaves out.  No ROS needed."""

from __future__ import annotations

import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS, POLICY
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file, read_params
from lightwam_ros.ros.policy_params import POLICY_SCHEMA
from lightwam_ros.ros.run_topics import package_output_topics, recorded_topics


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_recorded_topics_are_the_policy_inputs_and_what_the_nodes_output(embodiment):
    """From the shipped files, which hold only what differs from the defaults: the schemas'
    defaults fill in the rest, and the cameras are the embodiment's."""
    files = {
        role: read_params(params_file(role, embodiment), NODE_KINDS[role].node_name)
        for role in (POLICY, EXECUTOR)
    }
    recorded = recorded_topics(files[POLICY], files[EXECUTOR])
    policy, executor = POLICY_SCHEMA.effective(files[POLICY]), EXECUTOR_SCHEMA.effective(files[EXECUTOR])
    cameras = {f"camera/{camera.role}/image_raw" for camera in load_embodiment(embodiment).canvas.cameras}
    assert set(recorded.inputs) == cameras | {policy["joint_state_topic"], policy["instruction_topic"]}
    assert recorded.instruction == "lightwam/instruction"
    outputs = {
        values[name]
        for role, values in ((POLICY, policy), (EXECUTOR, executor))
        for name in NODE_KINDS[role].output_topic_params
    }
    assert outputs | {"/diagnostics"} == set(recorded.outputs)
    assert {"lightwam/action_chunk", "joint_trajectory_controller/joint_trajectory"} <= outputs
    assert len(set(recorded.outputs)) == len(recorded.outputs)


def test_recorded_topics_follow_the_effective_parameters():
    recorded = recorded_topics(
        {
            "cameras.wrist.topic": "",
            "cameras.wrist.compressed": True,
            "cameras.head.topic": "/cam/head",
            "eef_pose.arm.topic": "/arm/pose",
            "eef_pose.other.topic": "",
            "joint_state_topic": "/robot/joints",
        },
        {"joint_state_topic": "/robot/joints", "joint_command_topic": "cmd"},
    )
    assert recorded.inputs == (
        "/cam/head",
        "camera/wrist/image_raw/compressed",
        "/robot/joints",
        "lightwam/instruction",
        "/arm/pose",
    )
    assert "cmd" in recorded.outputs and "lightwam/joint_command" not in recorded.outputs
    assert "lightwam/action_chunk" in recorded.outputs  # a default the values leave out


def test_a_camera_switched_to_compressed_is_recorded_on_its_compressed_transport():
    recorded = recorded_topics(
        {
            "cameras.head.topic": "/cam/head/image_raw",
            "cameras.head.compressed": True,
            "cameras.wrist.topic": "/wrist/image_raw/compressed",
            "cameras.wrist.compressed": True,
            "cameras.side.topic": "/side/image_raw",
            "cameras.side.compressed": False,
        },
        {},
    )
    assert recorded.inputs[:3] == (
        "/cam/head/image_raw/compressed",
        "/side/image_raw",
        "/wrist/image_raw/compressed",
    )


def test_a_foreign_bag_player_leaves_out_what_the_package_publishes():
    outputs = package_output_topics()
    assert {
        "/diagnostics",
        "/lightwam/action_chunk",
        "/lightwam/policy_status",
        "/joint_trajectory_controller/joint_trajectory",
        "/lightwam/joint_command",
        "/lightwam/target_pose",
    } <= outputs
    assert not outputs & {"/joint_states", "/lightwam/instruction", "/camera/head/image_raw"}
