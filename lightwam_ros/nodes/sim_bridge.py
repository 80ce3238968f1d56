"""lightwam-sim-bridge: a simulated robot (LIBERO or ALOHA) on the topics a real arm uses.

It steps the simulator at the simulator's control rate in its own thread and publishes, per step,
``/clock`` (the simulated time: every other node runs with ``use_sim_time``), the joint states,
each arm's end-effector pose (``geometry_msgs/PoseStamped`` in the simulator's world frame) and the
task's success (``std_msgs/Bool``); every few steps one ``sensor_msgs/Image`` (rgb8) per camera
role of the embodiment; and a JSON status (episode, step, commands, speed).  It follows the
executor's commands like the loopback robot (``JointTrajectory`` or ``JointState``, joints by
name): the plan's target at the end of each step goes to the simulator's own controller.

A ``std_srvs/Trigger`` on ``reset_service`` starts the next episode (the same index gives the same
scene).  The clock then jumps *back*, which is how the policy and the executor learn that the
world restarted: they drop what they hold and start again at rest.  Every episode starts
``EPISODE_CLOCK_SPACING`` earlier than the one before, so a command the executor sent before the
reset is stamped later than anything in the new episode and is refused, never followed.

The bridge does not slow the simulation to wait for the policy: like a real arm, the world moves
on while the policy thinks.  ``real_time_factor`` caps its speed (1: never faster than real time;
0: as fast as it can).
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.parameter import Parameter
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from lightwam_ros.control.joint_follower import JointFollower
from lightwam_ros.nodes.command_input import CommandInput, command_parameters
from lightwam_ros.nodes.node_main import ConfiguredNode, run_node
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros import qos
from lightwam_ros.ros.image_conversion import rgb_to_image
from lightwam_ros.ros.node_registry import NODE_KINDS, SIM
from lightwam_ros.ros.parameter_checks import NodeSource
from lightwam_ros.ros.parameter_schema import read_parameters
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.ros.stamps import nanoseconds_to_stamp
from lightwam_ros.sim.aloha import AlohaSim
from lightwam_ros.sim.aloha_scripted import TransferCubeScript
from lightwam_ros.sim.base import SimError, SimState, Simulator, configure_offscreen_rendering
from lightwam_ros.sim.catalog import SimTask

NODE_NAME = NODE_KINDS[SIM].node_name
# The first episode's clock starts here; each later one EPISODE_CLOCK_SPACING earlier (a jump
# back at every reset, never to zero, which ROS reads as "no time yet").
FIRST_EPISODE_CLOCK_NS = 1_000_000 * 1_000_000_000
EPISODE_CLOCK_SPACING_NS = 1_000 * 1_000_000_000
RESET_TIMEOUT = 300.0  # s; LIBERO rebuilds its scene on a reset (about 10 s here)
WORLD_FRAME = "world"


class SimBridgeNode(ConfiguredNode):
    """The bridge; build it with ``create_sim_bridge`` (or run ``main``)."""

    def _configure(self) -> None:
        if self.get_parameter("use_sim_time").value:
            raise ValueError("the simulator bridge publishes /clock: it cannot use_sim_time")
        source = NodeSource(self)
        values = read_parameters(source, SIM_SCHEMA)
        if not values["task"]:
            raise ValueError("parameter task is required (SIMULATOR:TASK, e.g. aloha:transfer_cube)")
        task = SimTask.parse(values["task"])
        size = values["camera_size"]
        camera_rate = values["camera_rate"]
        self._real_time_factor = values["real_time_factor"]
        self._next_episode = values["first_episode"]
        hold = values["hold_until_reset"]
        command_type, command_topic = command_parameters(values)
        script, perturbation = values["script"], values["script_perturbation"]
        joint_topic = values["joint_state_topic"]
        topics = {
            name: values[name]
            for name in ("success_topic", "status_topic", "instruction_topic", "reset_service")
        }

        spec = load_embodiment(task.embodiment)
        configure_offscreen_rendering()
        # A GL context belongs to the thread that made it: one thread builds, steps, renders,
        # resets and closes the simulator; the node's callbacks hand it work through _call.
        self._work: queue.Queue[tuple[Callable[[], Any], Future]] = queue.Queue()
        self._stop = threading.Event()
        self.failure: str | None = None
        self._held = True  # no stepping until configured
        self._state: SimState | None = None
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        self.sim: Simulator = self._call(lambda: task.build(size if min(size) > 0 else None))
        if self.sim.joint_names != spec.robot_joints:
            raise ValueError(
                f"simulator joints {self.sim.joint_names} differ from embodiment "
                f"{spec.name}'s {spec.robot_joints}"
            )
        self._render_every = max(1, round(1.0 / (camera_rate * self.sim.control_dt)))
        self._task = task
        self._clock_pub = self.create_publisher(Clock, "/clock", qos.SIMULATED_SENSORS)
        self._joint_pub = self.create_publisher(JointState, joint_topic, qos.SIMULATED_SENSORS)
        members = read_parameters(
            source,
            SIM_SCHEMA,
            {"role": [camera.role for camera in self.sim.cameras], "arm": [arm.name for arm in spec.arms]},
        )
        self._image_pubs = {
            camera.role: self.create_publisher(
                Image, members[f"cameras.{camera.role}.topic"], qos.SIMULATED_SENSORS
            )
            for camera in self.sim.cameras
        }
        self._pose_pubs = {
            arm.name: self.create_publisher(
                PoseStamped, members[f"eef_pose.{arm.name}.topic"], qos.SIMULATED_SENSORS
            )
            for arm in spec.arms
        }
        self._success_pub = self.create_publisher(Bool, topics["success_topic"], qos.COMMANDS)
        self._status_pub = self.create_publisher(String, topics["status_topic"], qos.COMMANDS)
        self._instruction_pub = (
            self.create_publisher(String, topics["instruction_topic"], qos.LATCHED)
            if topics["instruction_topic"].strip()
            else None
        )
        self._episode = -1
        self._episode_clock_ns = FIRST_EPISODE_CLOCK_NS + EPISODE_CLOCK_SPACING_NS
        self._script = self._scripted_demo(script, task, perturbation)
        # Scripted, the bridge publishes the commands it follows; otherwise it takes them in.
        self.commands: CommandInput | None = None
        if self._script is not None:
            if command_type != "joint_trajectory":
                raise ValueError("a scripted demonstration publishes joint_trajectory commands")
            self._demo_pub = self.create_publisher(JointTrajectory, command_topic, qos.COMMANDS)
        else:
            self.commands = CommandInput(
                self,
                command_type,
                command_topic,
                self._new_follower(np.zeros(len(self.sim.joint_names))),
                self._now_ns,
                refuse=self._refuse,
            )
        self._call(self._start_episode)
        self._held = hold
        self.create_service(Trigger, topics["reset_service"], self._on_reset)
        self.get_logger().info(
            f"{task}: '{self.sim.instruction}', {len(self.sim.joint_names)} joints "
            + (
                f"driven by the scripted demonstration, published on {command_topic}"
                if self._script is not None
                else f"following {command_type} on {command_topic}"
            )
            + "; cameras "
            + ", ".join(f"{c.role} {c.height}x{c.width}" for c in self.sim.cameras)
            + f" every {self._render_every} step(s) of {self.sim.control_dt * 1e3:g} ms"
        )

    # ---------------------------------------------------------------- episodes

    def _scripted_demo(self, script: str, task: SimTask, perturbation: float) -> TransferCubeScript | None:
        if not script.strip():
            if perturbation:
                raise ValueError("parameter script_perturbation needs a script")
            return None
        if script != "transfer_cube" or str(task) != "aloha:transfer_cube":
            raise ValueError(
                f"parameter script: only 'transfer_cube' exists, for task "
                f"aloha:transfer_cube; got {script!r} for {task}"
            )
        sim = self.sim
        if not isinstance(sim, AlohaSim):
            raise ValueError(f"parameter script: transfer_cube needs the ALOHA simulator, not {sim}")
        return self._call(lambda: TransferCubeScript(sim, perturbation))

    def _new_follower(self, positions: np.ndarray) -> JointFollower:
        limits = self.sim.joint_limits
        return JointFollower(
            self.sim.joint_names, limits[:, 0], limits[:, 1], np.clip(positions, limits[:, 0], limits[:, 1])
        )

    def _start_episode(self) -> dict:
        """Reset the simulator to the next episode and hold its initial pose (on the simulator's
        thread).  A held first episode is started as it is: it has not moved yet."""
        if self._held and self._state is not None:
            episode, state, self._held = self._episode, self._state, False
        else:
            episode = self._next_episode
            state = self.sim.reset(episode)
        self._episode, self._next_episode = episode, episode + 1
        self._episode_success = bool(state.success)
        self._episode_clock_ns -= EPISODE_CLOCK_SPACING_NS
        if self._script is not None:
            self._script.start(state)
        else:
            assert self.commands is not None, "without a script the commands come in"
            self.commands.arm = self._new_follower(state.positions)
        self._state, self._steps, self._wall_origin = state, 0, time.monotonic()
        self._publish(state, images=True)
        if self._instruction_pub is not None:
            self._instruction_pub.publish(String(data=self.sim.instruction))
        return {
            "episode": episode,
            "task": str(self._task),
            "instruction": self.sim.instruction,
            "clock_start": self._episode_clock_ns * 1e-9,
        }

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            info = self._call(self._start_episode, RESET_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - the caller gets the reason
            response.success, response.message = False, f"reset failed: {error}"
            self.get_logger().error(response.message)
            return response
        response.success, response.message = True, json.dumps(info)
        self.get_logger().info(f"episode {info['episode']} started")
        return response

    # ---------------------------------------------------------------- stepping

    def _now_ns(self) -> int | None:
        state = self._state
        return None if state is None else self._clock_ns(state.time)

    def _clock_ns(self, sim_time: float) -> int:
        return self._episode_clock_ns + round(sim_time * 1e9)

    def _refuse(self, stamp_ns: int) -> str | None:
        """A command stamped outside the current episode is from before a reset."""
        now = self._now_ns()
        if now is not None and not self._episode_clock_ns <= stamp_ns <= now + 1_000_000_000:
            return (
                f"stamped {stamp_ns * 1e-9:.3f} s, outside episode {self._episode} "
                f"(its clock started at {self._episode_clock_ns * 1e-9:.3f} s): sent before "
                "a reset"
            )
        return None

    def _call(self, work: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run ``work`` on the simulator's thread and return its result (or raise its error)."""
        if self.failure is not None:
            raise RuntimeError(self.failure)
        future: Future = Future()
        self._work.put((work, future))
        return future.result(timeout)

    def _run(self) -> None:
        """The simulator's thread: queued work first, else a step when one is due."""
        while not self._stop.is_set():
            wait = 0.05 if self._held or self._state is None else self._until_next_step()
            try:
                work, future = self._work.get(timeout=wait) if wait > 0 else self._work.get_nowait()
            except queue.Empty:
                pass
            else:
                try:
                    future.set_result(work())
                except Exception as error:  # noqa: BLE001 - raised in the caller
                    future.set_exception(error)
                continue
            if self._held or self._state is None:
                continue
            try:
                self._step_once()
            except Exception as error:  # noqa: BLE001 - reported, and the process ends
                self.failure = f"simulation stopped: {error!r}"
                self.get_logger().fatal(self.failure)
                return

    def _step_once(self) -> None:
        state = self._state
        assert state is not None, "a step follows an episode's start"
        started = time.monotonic()
        due_ns = self._clock_ns(state.time + self.sim.control_dt)
        if self._script is None:
            assert self.commands is not None, "without a script the commands come in"
            target = self.commands.arm.target(due_ns * 1e-9)
        else:
            self._publish_demo_command(self._script.targets(state), state, due_ns)
            target = self._script.executed(state)
        state = self.sim.step(target)
        stepped = time.monotonic()
        self._state, self._steps = state, self._steps + 1
        self._episode_success = self._episode_success or bool(state.success)
        images = self._steps % self._render_every == 0
        self._publish(state, images=images)
        if images:
            self._publish_status(
                state, step_ms=(stepped - started) * 1e3, render_ms=(time.monotonic() - stepped) * 1e3
            )

    def _until_next_step(self) -> float:
        """Seconds to wait before the next step, at most real_time_factor times real time."""
        if self._real_time_factor <= 0 or self._state is None:
            return 0.0
        due = self._wall_origin + self._state.time / self._real_time_factor
        return max(0.0, due - time.monotonic())

    # ---------------------------------------------------------------- publishing

    def _publish(self, state: SimState, images: bool) -> None:
        stamp = nanoseconds_to_stamp(self._clock_ns(state.time))
        self._clock_pub.publish(Clock(clock=stamp))
        joints = JointState(
            name=list(self.sim.joint_names),
            position=state.positions.tolist(),
            velocity=state.velocities.tolist(),
        )
        joints.header.stamp = stamp
        self._joint_pub.publish(joints)
        for arm, pose in state.eef_poses.items():
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, WORLD_FRAME
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = map(float, pose.position)
            (
                msg.pose.orientation.x,
                msg.pose.orientation.y,
                msg.pose.orientation.z,
                msg.pose.orientation.w,
            ) = map(float, pose.quaternion_xyzw)
            self._pose_pubs[arm].publish(msg)
        self._success_pub.publish(Bool(data=bool(state.success)))
        if images:
            for role, rgb in self.sim.render().items():
                self._image_pubs[role].publish(rgb_to_image(rgb, stamp, f"{role}_camera"))

    def _publish_demo_command(self, target: np.ndarray, state: SimState, due_ns: int) -> None:
        """The script's target as the executor sends one: a point due at the end of the step."""
        msg = JointTrajectory(
            joint_names=list(self.sim.joint_names),
            points=[
                JointTrajectoryPoint(
                    positions=target.tolist(),
                    time_from_start=Duration(nanoseconds=due_ns - self._clock_ns(state.time)).to_msg(),
                )
            ],
        )
        msg.header.stamp = nanoseconds_to_stamp(self._clock_ns(state.time))
        self._demo_pub.publish(msg)

    def _publish_status(self, state: SimState, step_ms: float, render_ms: float) -> None:
        self._status_pub.publish(
            String(
                data=json.dumps(
                    {
                        "episode": self._episode,
                        "step": self._steps,
                        "time": round(state.time, 6),
                        "success": bool(state.success),
                        "episode_success": self._episode_success,
                        "script_done": (
                            self._script is not None and state.time >= self._script.duration - 1e-9
                        ),
                        "commands_received": self.commands.received if self.commands else 0,
                        "commands_rejected": self.commands.rejected if self.commands else 0,
                        "step_ms": round(step_ms, 3),
                        "render_ms": round(render_ms, 3),
                        "object_distance": (
                            None if state.object_distance is None else round(state.object_distance, 5)
                        ),
                    }
                )
            )
        )

    def destroy_node(self) -> None:
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive():
            sim = getattr(self, "sim", None)
            if sim is not None and self.failure is None:
                self._held = True
                self._call(sim.close, 30.0)
            self._stop.set()
            thread.join(timeout=10.0)
        super().destroy_node()


def create_sim_bridge(
    node_name: str = NODE_NAME,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    parameter_overrides: list[Parameter] | None = None,
) -> SimBridgeNode:
    """Build a configured bridge (rclpy must be initialised on ``context``); bad parameters or a
    simulator that cannot be built raise ValueError."""
    try:
        return SimBridgeNode(
            node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides
        )
    except SimError as error:
        raise ValueError(str(error)) from None


def main(args: list[str] | None = None) -> int:
    """Run the bridge until SIGINT or SIGTERM, or until the simulation fails (exit status 1);
    exit status 2 when the configuration is invalid."""
    return run_node(create_sim_bridge, NODE_NAME, args, failed=lambda node: node.failure is not None)


if __name__ == "__main__":
    sys.exit(main())
