"""Which topics a run reads and publishes, from the nodes' effective parameters: what the
recorder records and what a player of a foreign bag leaves out.  No ROS needed."""

from __future__ import annotations

import pytest

from lightwam_ros.ros.node_registry import NODE_KINDS
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file, read_params
from lightwam_ros.ros.run_topics import package_output_topics, recorded_topics


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
def test_recorded_topics_are_the_policy_inputs_and_what_the_nodes_output(embodiment):
    policy, executor = (
        read_params(params_file(role, embodiment), NODE_KINDS[role].node_name)
        for role in ("policy", "executor")
    )
    recorded = recorded_topics(policy, executor)
    cameras = {
        topic for name, topic in policy.items() if name.startswith("cameras.") and name.endswith(".topic")
    }
    assert set(recorded.inputs) == cameras | {policy["joint_state_topic"], policy["instruction_topic"]}
    assert recorded.instruction == policy["instruction_topic"]
    assert {
        policy[name] for name in ("chunk_topic", "shadow_chunk_topic", "status_topic", "diagnostics_topic")
    } | {
        executor[name]
        for name in (
            "joint_trajectory_topic",
            "forward_command_topic",
            "joint_command_topic",
            "estop_topic",
            "chunk_request_topic",
        )
    } | {"/diagnostics"} == (set(recorded.outputs) - {executor.get("target_pose_topic")})
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
    assert recorded.outputs == ("cmd", "/diagnostics")


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
