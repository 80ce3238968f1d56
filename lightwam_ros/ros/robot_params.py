"""The parameter tables of the robot stand-ins: the loopback robot and the simulator bridge,
and the command input both follow the executor with.  No ROS imports."""

from __future__ import annotations

from lightwam_ros.policy.embodiment import default_camera_topic
from lightwam_ros.ros.parameter_schema import NodeSchema, ParameterSpec

# Command type -> the topic the executor's matching output mode publishes by default.
COMMAND_TOPICS = {
    "joint_trajectory": "joint_trajectory_controller/joint_trajectory",
    "joint_state": "lightwam/joint_command",
}
_COMMAND = (
    ParameterSpec(
        "command_type", "string", "joint_trajectory", "Command input.", choices=tuple(COMMAND_TOPICS)
    ),
    ParameterSpec(
        "command_topic",
        "string",
        "",
        "Command input topic; empty: the command type's default "
        + ", ".join(f"({kind}: {topic})" for kind, topic in COMMAND_TOPICS.items())
        + ".",
    ),
)


def _positive(name: str, default: float, description: str) -> ParameterSpec:
    return ParameterSpec(name, "double", default, description, minimum=0.0, exclusive_minimum=True)


def _topic(name: str, default: str, description: str) -> ParameterSpec:
    return ParameterSpec(name, "string", default, description, nonempty=True)


LOOPBACK_SCHEMA = NodeSchema(
    "lightwam_loopback_robot",
    "The loopback robot (`lightwam-loopback-robot`): a stand-in with no hardware or simulator that "
    "follows the executor's commands and publishes joint states and one synthetic image per camera.",
    (
        ParameterSpec("embodiment", "string", "", "Embodiment name or YAML path (required)."),
        _positive("state_rate", 100.0, "JointState rate [Hz]."),
        _positive("camera_rate", 30.0, "Image rate per camera [Hz]."),
        *_COMMAND,
        _topic("joint_state_topic", "joint_states", "JointState output."),
        ParameterSpec(
            "tracking_time_constant",
            "double",
            0.0,
            "First-order lag of the joints behind the command [s]; 0: they follow at once.",
            minimum=0.0,
        ),
        ParameterSpec(
            "initial_positions.<joint>",
            "double",
            0.0,
            "Start position of joint <joint> (by name, any joint of the embodiment).",
            default_text="mid-range of the joint's limits",
        ),
        _topic("cameras.<role>.topic", default_camera_topic("<role>"), "Image output of camera <role>."),
        ParameterSpec(
            "cameras.<role>.size",
            "integer_array",
            None,
            "[height, width] of camera <role>'s images.",
            minimum=1,
            length=2,
            default_text="the embodiment's source_size",
        ),
    ),
)

SIM_SCHEMA = NodeSchema(
    "lightwam_sim_bridge",
    "The simulator bridge (`lightwam-sim-bridge`): a simulated robot on the topics a real one would "
    "use, with /clock.",
    (
        ParameterSpec(
            "task",
            "string",
            "",
            "SIMULATOR:TASK (required), e.g. aloha:transfer_cube or libero:libero_spatial/0.",
        ),
        ParameterSpec(
            "camera_size",
            "integer_array",
            (0, 0),
            "[height, width] of every camera; [0, 0]: the embodiment's source_size.",
            minimum=0,
            length=2,
        ),
        _positive("camera_rate", 25.0, "Images per simulated second."),
        ParameterSpec(
            "real_time_factor",
            "double",
            1.0,
            "At most this many simulated seconds per second; 0: as fast as the simulator goes.",
            minimum=0.0,
        ),
        ParameterSpec(
            "first_episode",
            "integer",
            0,
            "Index of the first episode (its scene); each reset takes the next.",
            minimum=0,
        ),
        ParameterSpec(
            "hold_until_reset",
            "bool",
            False,
            "Publish the first episode's initial state, then step only after a reset call (which "
            "starts that episode): an evaluation waits for the policy to be ready.",
        ),
        *_COMMAND,
        ParameterSpec(
            "script",
            "string",
            "",
            "'transfer_cube' (aloha:transfer_cube only): a scripted demonstration drives the arms "
            "instead of the commands, and its targets go out on command_topic as the executor's would "
            "(recording demonstrations); empty: follow commands.",
        ),
        ParameterSpec(
            "script_perturbation",
            "double",
            0.0,
            "With a script: drifting noise of this size (rad) on the executed arm targets outside the "
            "grasp and the handover; the clean targets are still what goes out on command_topic "
            "(DART-style demonstrations).",
            minimum=0.0,
        ),
        _topic("joint_state_topic", "joint_states", "JointState output."),
        _topic("success_topic", "sim/success", "Task success (Bool), every step."),
        _topic("status_topic", "sim/status", "JSON status, with every camera frame."),
        ParameterSpec(
            "instruction_topic",
            "string",
            "lightwam/instruction",
            "The task's instruction (latched); empty: not published.",
        ),
        _topic("reset_service", "sim/reset", "Trigger: start the next episode."),
        _topic("cameras.<role>.topic", default_camera_topic("<role>"), "Image output of camera <role>."),
        _topic(
            "eef_pose.<arm>.topic",
            "sim/eef_pose/<arm>",
            "End-effector pose of arm <arm> (world frame).",
        ),
    ),
)
