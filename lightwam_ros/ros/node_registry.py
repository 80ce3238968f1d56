"""The node kinds of this package, in one table: the launch file, the bring-up, the recorder, the
bag player and the tools all look a node up here instead of keeping their own lists.

Plain data, no ROS imports: the launch planner reads it without rclpy.  resource/executables.txt
must name each ``executable`` with its ``module`` (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NodeKind:
    """One kind of node: how it is named, started and configured, which of its parameters name
    the topics it publishes (what a recording keeps as outputs), and whether it is a managed
    (lifecycle) node that the launch file configures and activates."""

    role: str  # the key a bring-up plan and the tools use
    node_name: str  # the default ROS node name (the section of its parameter file)
    module: str  # ``python -m <module>`` runs it
    executable: str  # the console script, and ``ros2 run lightwam_ros <executable>``
    params_prefix: str  # config/<params_prefix>_<embodiment>.yaml; "" for no parameter file
    factory: str  # ``module``'s create_*(node_name, *, context, parameter_overrides); "": none
    output_topic_params: tuple[str, ...] = ()
    managed: bool = False


POLICY, EXECUTOR, ROBOT, SIM, RECORDER, REPLAY = ("policy", "executor", "robot", "sim", "recorder", "replay")

NODE_KINDS: dict[str, NodeKind] = {
    kind.role: kind
    for kind in (
        NodeKind(
            POLICY,
            "lightwam_policy",
            "lightwam_ros.nodes.policy_node",
            "lightwam-policy",
            "policy",
            "create_policy_node",
            ("chunk_topic", "shadow_chunk_topic", "status_topic", "diagnostics_topic"),
            managed=True,
        ),
        # Besides its commands: the e-stop (who stopped the arm, and when) and its chunk requests.
        NodeKind(
            EXECUTOR,
            "lightwam_executor",
            "lightwam_ros.nodes.executor_node",
            "lightwam-executor",
            "executor",
            "create_executor_node",
            (
                "joint_trajectory_topic",
                "forward_command_topic",
                "joint_command_topic",
                "target_pose_topic",
                "shadow_command_topic",
                "diagnostics_topic",
                "estop_topic",
                "chunk_request_topic",
                "planned_trajectory_topic",
                "planned_path_topic",
            ),
            managed=True,
        ),
        # The robot is the loopback stand-in ("robot") or a simulator bridge ("sim"), or hardware.
        NodeKind(
            ROBOT,
            "lightwam_loopback_robot",
            "lightwam_ros.nodes.loopback_robot",
            "lightwam-loopback-robot",
            "loopback",
            "create_loopback_robot",
        ),
        NodeKind(
            SIM,
            "lightwam_sim_bridge",
            "lightwam_ros.nodes.sim_bridge",
            "lightwam-sim-bridge",
            "sim",
            "create_sim_bridge",
        ),
        # No parameter file: the recorder takes the run's topics, the player a bag.
        NodeKind(
            RECORDER,
            "lightwam_recorder",
            "lightwam_ros.nodes.recorder_node",
            "lightwam-record",
            "",
            "create_recorder_node",
        ),
        NodeKind(REPLAY, "lightwam_replay", "lightwam_ros.nodes.bag_replay", "lightwam-replay", "", ""),
    )
}
# The kinds configured by a parameter file per embodiment, in bring-up order.
CONFIGURED_ROLES = tuple(role for role, kind in NODE_KINDS.items() if kind.params_prefix)
