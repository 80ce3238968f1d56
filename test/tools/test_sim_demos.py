"""lightwam-sim-demos starts an episode only once the recorder records what labels it."""

from __future__ import annotations

import pytest

pytest.importorskip("rclpy")

from lightwam_ros.ros.node_registry import NODE_KINDS, SIM
from lightwam_ros.ros.param_files import params_file, read_params
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.tools.evaluation.sim_demos import demonstrated_topics


def test_the_recording_gate_waits_for_the_commands_too():
    """The commands are a demonstration's labels: frames recorded before the recorder hears them
    are dropped from the training episode, so the episode waits for them as for the cameras."""
    params = SIM_SCHEMA.effective(read_params(params_file(SIM, "aloha_sim"), NODE_KINDS[SIM].node_name))
    params["command_topic"] = "arm/commands"
    assert demonstrated_topics(params) == [
        "/joint_states",
        "/arm/commands",
        "/camera/head/image_raw",
        "/camera/left_wrist/image_raw",
        "/camera/right_wrist/image_raw",
    ]
