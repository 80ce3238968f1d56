"""Light-WAM policy + chunk executor (+ loopback robot, + RViz) for ``ros2 launch``.

    ros2 launch lightwam_ros lightwam.launch.py embodiment:=libero_franka \\
        checkpoint:=/models/model.safetensors instruction_cache:=/models/instructions.safetensors
    ros2 launch lightwam_ros lightwam.launch.py loopback_robot:=true rviz:=true  # no hardware

The nodes, their parameter files (config/<node>_<embodiment>.yaml) and their overrides come from
``lightwam_ros.tools.launch.bringup_plan``, which ``lightwam-bringup`` uses too: both start the same
pipeline.  Without a checkpoint a random-weight tiny package is built (only with
loopback_robot:=true or shadow:=true).  replay:=true implies use_sim_time (a bag provides the
inputs and /clock); bag:=PATH plays that bag here with lightwam-replay (and implies replay).
record:=PATH also starts lightwam-record, which records the run's inputs and outputs; the policy
then starts once the recorder records its cameras and joint states (tools.launch.recording_gate).
rviz:=true starts RViz on config/lightwam.rviz with the embodiment's cameras (rviz_config).

The policy and the executor are managed (lifecycle) nodes: launch configures each once its
process has started and activates it once configured (autostart:=true, the default); with
autostart:=false they wait, unconfigured, for ``ros2 lifecycle set /<node> configure`` and then
``activate`` (``deactivate`` stops the chunks and makes the executor brake to a hold).
"""

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    ExecuteProcess,
    OpaqueFunction,
    RegisterEventHandler,
    Shutdown,
)
from launch.event_handlers import OnProcessExit, OnProcessStart
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from lifecycle_msgs.msg import Transition

from lightwam_ros.ros.node_registry import NODE_KINDS, POLICY
from lightwam_ros.ros.param_files import PACKAGE
from lightwam_ros.ros.parameter_schema import AUTOSTART
from lightwam_ros.tools.launch.bringup_plan import LAUNCH_ARGUMENTS, launch_flag, plan_from_launch_arguments
from lightwam_ros.tools.launch.child_process import STOP_TIMEOUT
from lightwam_ros.tools.launch.recording_gate import GATE_NAME, gate_command
from lightwam_ros.tools.launch.rviz_config import write_rviz_config


def _nodes(context, *args, **kwargs):
    """The plan's nodes for the arguments' values (known only once the launch runs)."""
    values = {
        argument.name: LaunchConfiguration(argument.name).perform(context) for argument in LAUNCH_ARGUMENTS
    }
    rviz = launch_flag(values, "rviz")
    if rviz:
        _require_rviz2()
    plan = plan_from_launch_arguments(values)
    # After Ctrl-C a node finishes its inference first: as long as lightwam-bringup waits, not
    # launch's 5 s (sigterm_timeout:=S still sets it).
    sigterm_timeout = LaunchConfiguration("sigterm_timeout", default=str(STOP_TIMEOUT))
    autostart = launch_flag(values, "autostart")
    actions = []
    for node in plan.nodes:
        managed = NODE_KINDS[node.role].managed
        options = dict(
            package=PACKAGE,
            executable=node.executable,
            name=node.node_name,
            output="screen",
            emulate_tty=True,
            additional_env=dict(node.env),
            sigterm_timeout=sigterm_timeout,
            arguments=list(node.arguments),
            parameters=([str(node.params_file)] if node.params_file else [])
            + ([dict(node.overrides)] if node.overrides else [])
            # launch (or the user) drives a managed node's transitions
            + ([{AUTOSTART.name: False}] if managed else []),
        )
        if not managed:
            actions.append(Node(**options))
            continue
        action = LifecycleNode(namespace="", **options)
        node_actions = [*(_configure_then_activate(action) if autostart else []), action]
        # (the handlers first: they must see the process start)
        if node.role == POLICY and plan.recording_gate:
            node_actions = _after_recording_gate(plan.recording_gate, node_actions)
        actions += node_actions
    if rviz:
        actions.append(
            Node(
                package="rviz2",
                executable="rviz2",
                name="rviz2",
                output="screen",
                arguments=["-d", str(write_rviz_config(plan, values["embodiment"]))],
                parameters=[{"use_sim_time": plan.use_sim_time}],
            )
        )
    return actions


def _configure_then_activate(node):
    """Handlers that configure ``node`` once its process has started and activate it once
    configured (a failed configure leaves it unconfigured, its reason in its log)."""

    def change(transition):
        return EmitEvent(
            event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition)
        )

    return [
        RegisterEventHandler(
            OnProcessStart(target_action=node, on_start=[change(Transition.TRANSITION_CONFIGURE)])
        ),
        RegisterEventHandler(
            OnStateTransition(
                target_lifecycle_node=node,
                start_state="configuring",
                goal_state="inactive",
                entities=[change(Transition.TRANSITION_ACTIVATE)],
            )
        ),
    ]


def _after_recording_gate(topics, actions):
    """``actions`` (the policy's) once the recorder records ``topics``: a gate process waits for
    that (tools.launch.recording_gate); if it fails, the launch ends with its reason."""
    gate = ExecuteProcess(cmd=gate_command(topics), name=GATE_NAME, output="screen")

    def after(event, _context):
        if event.returncode == 0:
            return actions
        return [Shutdown(reason=f"{GATE_NAME} failed (status {event.returncode}): see its output")]

    return [RegisterEventHandler(OnProcessExit(target_action=gate, on_exit=after)), gate]


def _require_rviz2() -> None:
    """Fail before any node starts: a Node whose package is missing fails only when its turn
    comes, after the others have started (and launch then leaves them running)."""
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        raise RuntimeError(
            "rviz:=true needs rviz2, which is not installed (no package 'rviz2' "
            "in AMENT_PREFIX_PATH): install ros-<distro>-rviz2, or launch with "
            "rviz:=false"
        ) from None


def generate_launch_description():
    arguments = [
        DeclareLaunchArgument(
            argument.name,
            default_value=argument.default,
            description=argument.description,
            **({"choices": list(argument.choices)} if argument.choices else {}),
        )
        for argument in LAUNCH_ARGUMENTS
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_nodes)])
