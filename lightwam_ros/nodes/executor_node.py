"""The chunk executor as a ROS 2 node: ActionChunks and joint states in, joint commands out.

A thin shell around ``control.executor_core.ChunkExecutorCore``, which does the validation,
scheduling, interpolation, safety filtering and watchdog work without ROS.  The shell adds:

- name-based matching of joint states and chunk columns (``JointStateMatcher``, ``CommandLayout``);
- delta-EEF chunks converted to joint targets by IK from the currently commanded joints;
- a control loop at ``control_rate`` that ticks the core and publishes the command as a
  JointTrajectory (for ros2_control's JointTrajectoryController), a Float64MultiArray (forward
  command controllers) and/or a JointState, plus an end-effector PoseStamped for delta-EEF arms;
- or, for a joint trajectory controller that interpolates at its own rate (output mode
  ``joint_trajectory_plan``), the whole motion ahead as one JointTrajectory with velocities on
  each accepted chunk and each hold, nothing per tick: the executor's own ticks run ahead
  (``control.lookahead``), so the controller gets what the safety filter lets through;
- the path it will command, published on every accepted chunk for RViz: the joint trajectory
  (``planned_trajectory_topic``) and, for an arm with kinematics (delta-EEF), its end-effector
  path by forward kinematics (``planned_path_topic``) - the executor's own plan after merging,
  clipping and interpolation from the current command, so RViz shows what the arm will do; when
  it stops following the plan (hold, e-stop) an empty trajectory and a DELETEALL marker clear it;
- an e-stop topic and services, and DiagnosticArray telemetry;
- a speed override changeable at run time through the standard parameter services
  (``ros2 param set /lightwam_executor speed_scaling 0.5``); every other parameter refuses a
  change with the reason;
- the lifecycle of a managed node (``node_main.ManagedNode``): configure reads the parameters
  and builds the limits, kinematics, topics and the control loop (state HOLDING, inactive);
  activate commands (from the measured state, at rest; motion with the next chunk); deactivate
  holds: the command brakes to rest within the acceleration caps, then commands stop and chunks
  are ignored until activated again; cleanup stops the loop and removes the topics.  Run on its
  own the node configures and activates itself (parameter ``autostart``);
- a restart when the clock jumps backwards (simulator reset, looping bag): the plan and the joint
  state are dropped, commands resume at rest from the next joint state, motion with a new chunk.

Threading: the control tick runs in its own thread on absolute deadlines
(``control.periodic.PeriodicLoop``), not on the executor the callbacks share, so no callback
(a chunk's parsing, bounds check, IK and planning, a service, diagnostics) can delay it by more
than the short sections in which it holds the core's lock.  The core is not thread-safe: every
use of it holds ``self._lock``.  A received chunk is checked against the embodiment's bounds
before anything is built (``ChunkBounds``), converted without the lock and planned into the core
under it.  Each publisher is used from one thread only, or under the lock.  With
``use_sim_time`` the tick is a ROS timer instead (it must follow ``/clock``).  ``main`` spins a
SingleThreadedExecutor: rclpy's MultiThreadedExecutor starves fast timers (ros2/rclpy #1223).

Every callback catches its own errors: a bad input is logged with its reason and dropped (the
watchdog then holds the last safe command), an internal error latches the e-stop.  Nothing ever
raises into rclpy.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Empty, Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from lightwam_ros.control.chunk_requests import ChunkRequestTimer
from lightwam_ros.control.executor_core import ChunkExecutorCore, Command
from lightwam_ros.control.lookahead import Lookahead
from lightwam_ros.control.periodic import PeriodicLoop
from lightwam_ros.control.watchdog import FOLLOWING_STATES, ExecutorState
from lightwam_ros.msg import ActionChunk
from lightwam_ros.nodes.node_main import ManagedNode, autostarted, run_node
from lightwam_ros.nodes.reason_reporter import ReasonReporter
from lightwam_ros.policy.chunk import NS_PER_S, Chunk
from lightwam_ros.ros import qos
from lightwam_ros.ros.chunk_messages import ChunkBounds, msg_to_chunk, path_markers, path_to_joint_trajectory
from lightwam_ros.ros.diagnostics import make_diagnostic_array, make_diagnostic_status
from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA, ExecutorSettings, read_executor_settings
from lightwam_ros.ros.joint_state import JointStateError, JointStateMatcher
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS
from lightwam_ros.ros.parameter_checks import NodeSource, allow_runtime_changes
from lightwam_ros.ros.stamps import nanoseconds_to_stamp, seconds_to_duration, stamp_to_nanoseconds

NODE_NAME = NODE_KINDS[EXECUTOR].node_name
_PAUSED = "speed_scaling is 0: paused"
_INACTIVE = "inactive: activate the node to execute chunks"
_DEACTIVATED = "deactivated: braking to rest, then no commands until activated"
_PATH_PERIOD_NS = 20_000_000  # spacing of the planned path's points [ns]
PATH_NAMESPACE = "lightwam_planned_path"
PATH_COLOR = (0.1, 0.8, 0.2, 1.0)
_LEVEL_BY_STATE = {
    ExecutorState.RAMP_IN: 0,
    ExecutorState.RUNNING: 0,
    ExecutorState.WAITING: 1,
    ExecutorState.HOLDING: 1,
    ExecutorState.ESTOPPED: 2,
}


class TickStats:
    """Control-loop timing on the monotonic clock: period statistics and missed ticks."""

    def __init__(self, period: float, window: int = 1000) -> None:
        self.period = period
        self.ticks = 0
        self.missed = 0
        self._periods: collections.deque[float] = collections.deque(maxlen=window)
        self._previous: float | None = None

    def record(self, now: float) -> None:
        self.ticks += 1
        if self._previous is not None:
            gap = now - self._previous
            self._periods.append(gap)
            self.missed += max(0, round(gap / self.period) - 1)
        self._previous = now

    def summary(self) -> dict[str, float]:
        periods = np.fromiter(self._periods, float) if self._periods else np.zeros(1)
        return {
            "tick_period_mean_ms": 1e3 * float(periods.mean()),
            "tick_period_p99_ms": 1e3 * float(np.percentile(periods, 99)),
            "tick_period_max_ms": 1e3 * float(periods.max()),
        }


class ExecutorNode(ManagedNode):
    """The chunk executor node; build it with ``create_executor_node`` (or ``main``)."""

    # ---------------------------------------------------------------- set-up

    def _configure(self) -> None:
        self.settings: ExecutorSettings = read_executor_settings(NodeSource(self))
        settings, spec = self.settings, self.settings.spec
        self.layout = settings.command_layout()
        self._core = ChunkExecutorCore(settings.core_config(self.layout))
        self._core.hold(_INACTIVE)
        self._matcher = JointStateMatcher(self.layout.joint_names)
        self._names = list(self.layout.joint_names)
        self._period = 1.0 / settings.control_rate
        self._bounds = ChunkBounds.of(spec)

        self._lock = threading.RLock()  # the core and everything below, across the threads
        self._commanded: np.ndarray | None = None  # last command (commanded order)
        self._measured: np.ndarray | None = None
        self._chunks_accepted = 0
        self._chunks_rejected = 0
        self._limited_ticks = 0
        self._last_rejection = ""
        self._t_measured = -math.inf
        self._state: ExecutorState | None = None
        self._stats = TickStats(self._period)
        self._requests = (
            ChunkRequestTimer(settings.request_lead_time, settings.request_retry)
            if settings.request_lead_time > 0.0
            else None
        )
        self._requests_sent = 0

        self._chunk_reporter = ReasonReporter()
        self._joint_reporter = ReasonReporter()
        self._error_reporter = ReasonReporter()
        self._time_restart: str | None = None  # set by the clock's thread, handled by ticks
        self._loop: PeriodicLoop | None = None
        self._speed_scaling = settings.speed_scaling
        # Lifecycle: chunks are executed while active; the loop commands from activate until it
        # has braked to rest after deactivate.
        self._active = self._commanding = False
        self._create_interfaces()
        self._time_jumps = self.on_time_jump_back(self._on_time_jump_back)
        allow_runtime_changes(self, EXECUTOR_SCHEMA, {"speed_scaling": (None, self._set_speed_scaling)})
        if self._speed_scaling == 0.0:
            self._set_speed_scaling(0.0)
        if self._loop is not None:
            refused = self._loop.start(int(settings.thread_priority))
            if refused:
                self.get_logger().warning(
                    f"control loop at normal scheduling: {refused}; its ticks may be late on a busy machine"
                )
        self.get_logger().info(
            f"executing {spec.name} ({self.layout.mode}) on joints {self._names} at "
            f"{settings.control_rate:g} Hz, boundary rule {settings.boundary_rule}, "
            f"{settings.interpolation} interpolation, "
            + (
                "SHADOW mode: commanding nothing"
                if settings.shadow
                else f"outputs {list(settings.output_modes)}"
            )
        )

    def _create_interfaces(self) -> None:
        settings, topics = self.settings, self.settings.topics
        core_group = MutuallyExclusiveCallbackGroup()
        chunk_group = MutuallyExclusiveCallbackGroup()
        self.create_subscription(
            ActionChunk, topics["chunk_topic"], self._on_chunk, qos.COMMANDS, callback_group=chunk_group
        )
        # Best effort matches both reliable and best-effort joint-state publishers.
        self.create_subscription(
            JointState,
            topics["joint_state_topic"],
            self._on_joint_state,
            qos.LATEST_STATE,
            callback_group=core_group,
        )
        self.create_subscription(
            Bool, topics["estop_topic"], self._on_estop_topic, qos.COMMANDS, callback_group=core_group
        )
        self.create_service(
            Trigger, topics["estop_service"], self._on_estop_service, callback_group=core_group
        )
        self.create_service(
            Trigger, topics["reset_service"], self._on_reset_service, callback_group=core_group
        )

        self._request_pub = (
            self.create_publisher(Empty, topics["chunk_request_topic"], qos.COMMANDS)
            if self._requests is not None
            else None
        )
        self._trajectory_pub = self._forward_pub = self._joint_command_pub = self._plan_pub = None
        self._pose_pub = self._shadow_pub = None
        if settings.shadow:
            self._shadow_pub = self.create_publisher(JointState, topics["shadow_command_topic"], qos.COMMANDS)
        else:
            modes = settings.output_modes
            if "joint_trajectory" in modes:
                self._trajectory_pub = self.create_publisher(
                    JointTrajectory, topics["joint_trajectory_topic"], qos.COMMANDS
                )
            if "joint_trajectory_plan" in modes:  # the whole motion per chunk, nothing per tick
                self._plan_pub = self.create_publisher(
                    JointTrajectory, topics["joint_trajectory_topic"], qos.COMMANDS
                )
            if "forward_command" in modes:
                self._forward_pub = self.create_publisher(
                    Float64MultiArray, topics["forward_command_topic"], qos.COMMANDS
                )
            if "joint_state" in modes:
                self._joint_command_pub = self.create_publisher(
                    JointState, topics["joint_command_topic"], qos.COMMANDS
                )
            if self.layout.mode == "delta_eef":
                self._pose_pub = self.create_publisher(PoseStamped, topics["target_pose_topic"], qos.COMMANDS)
        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, topics["diagnostics_topic"], qos.COMMANDS
        )
        # What the executor will command, for RViz (in shadow mode too: a visual, not a command).
        self._planned_trajectory_pub = self.create_publisher(
            JointTrajectory, topics["planned_trajectory_topic"], qos.COMMANDS
        )
        self._planned_path_pub = (
            self.create_publisher(MarkerArray, topics["planned_path_topic"], qos.COMMANDS)
            if self.layout.chain is not None
            else None
        )
        self._point_time = seconds_to_duration(self._period)
        self._period_ns = round(self._period * NS_PER_S)
        self._motion_generation = 0
        self._due_motion: tuple[int, Lookahead | None] | None = None
        if self.get_parameter("use_sim_time").value:
            self.create_timer(self._period, self._on_tick, callback_group=core_group)
        else:
            self._loop = PeriodicLoop(
                round(self._period * NS_PER_S), self._on_tick, f"{self.get_name()} control loop"
            )
        self.create_timer(1.0 / settings.diagnostics_rate, self._on_diagnostics, callback_group=core_group)

    # ---------------------------------------------------------------- lifecycle

    def _activate(self) -> None:
        """Commands again: from the command itself while still braking after a deactivate, else
        from the measured state at rest, as at start-up (the arm may have been moved meanwhile).
        Motion resumes with a new chunk; a latched e-stop stays latched."""
        with self._lock:
            self._active = True
            if self._commanding:
                self._core.hold("activated: resumes on a new chunk")
            else:
                self._restart_core("activated")
            self._commanding = True
            self._note_state()

    def _deactivate(self) -> None:
        """Hold: the control loop brakes to rest within the caps (the hold's brake), publishes
        that, then stops commanding; chunks are ignored from now on."""
        with self._lock:
            self._active = False
            self._core.hold(_DEACTIVATED)
            self._note_state()

    def _stop_at_rest(self, command: Command) -> None:
        """After a deactivate: stop commanding once the command has come to rest."""
        if command.velocities is not None and np.any(command.velocities):
            return
        with self._lock:
            if self._active:  # activated again meanwhile
                return
            self._commanding = False
        self.get_logger().info("deactivated: the command is at rest; no commands until activated")

    def _teardown(self) -> None:
        """Stop the control loop first: it must not tick a node whose handles are gone."""
        loop, self._loop = getattr(self, "_loop", None), None
        if loop is not None:
            loop.stop()

    # ---------------------------------------------------------------- helpers

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _warn(self, reporter: ReasonReporter, message: str) -> None:
        text = reporter.bad(message)
        if text is not None:
            self.get_logger().warning(text)

    def _error(self, message: str) -> None:
        text = self._error_reporter.bad(message)
        if text is not None:
            self.get_logger().error(text)

    def _internal_error(self, where: str, error: BaseException) -> None:
        """An unexpected exception: latch a hold (never guess) and say so."""
        try:
            with self._lock:
                self._core.estop(f"internal error in {where}: {error!r}")
            outcome = "e-stop latched, call reset to resume"
        except Exception as estop_error:  # noqa: BLE001 - still must not raise into rclpy
            outcome = f"latching the e-stop failed too: {estop_error!r}"
        self._error(f"internal error in {where}: {error!r}; {outcome}")

    # ---------------------------------------------------------------- chunk group

    def _on_chunk(self, msg: ActionChunk) -> None:
        """Check, convert and plan a chunk here, in the callbacks' thread: the control loop only
        waits for the planning itself, whose size the bounds limit."""
        try:
            targets = self._convert_chunk(msg)
        except ValueError as error:  # ChunkError, ChunkLayoutError
            self._reject(msg.chunk_id, str(error))
            return
        except Exception as error:  # noqa: BLE001 - a callback must never raise into rclpy
            self._reject(msg.chunk_id, f"conversion failed: {error!r}")
            return
        try:
            with self._lock:
                self._apply_time_restart()
                self._submit(targets)
                plan = self._take_motion()
            self._send_motion(plan)
        except Exception as error:  # noqa: BLE001
            self._internal_error("chunk callback", error)

    def _reject(self, chunk_id: int, reason: str) -> None:
        self._chunks_rejected += 1
        self._last_rejection = reason
        self._warn(self._chunk_reporter, f"rejected chunk #{chunk_id}: {reason}")

    def _convert_chunk(self, msg: ActionChunk) -> Chunk:
        """Joint targets in the commanded order, or ValueError with the reason."""
        scaling = self._speed_scaling
        if scaling == 0.0:
            raise ValueError(_PAUSED)
        current = self._commanded if self._commanded is not None else self._measured
        targets = self.layout.to_joint_targets(msg_to_chunk(msg, self._bounds), current=current)
        if targets.note:
            self.get_logger().debug(f"chunk #{msg.chunk_id}: {targets.note}")
        if scaling == 1.0:
            return targets.chunk
        # The same path, slower: each step lasts dt / speed_scaling from the chunk's stamp on.
        return dataclasses.replace(targets.chunk, dt=targets.chunk.dt / scaling)

    def _set_speed_scaling(self, value: float) -> None:
        """A new speed override: from the next chunk on; 0 brakes to a hold now (the e-stop
        latch with its own reason), and raising it from 0 clears only that hold."""
        value = float(value)
        with self._lock:
            paused = self._core.state == ExecutorState.ESTOPPED and self._core.reason.endswith(_PAUSED)
            self._speed_scaling = value
            if value == 0.0 and not paused and self._core.state != ExecutorState.ESTOPPED:
                self._core.estop(_PAUSED)
            elif value > 0.0 and paused:
                self._core.reset()
            self.get_logger().info(f"speed_scaling {value:g}")
            self._note_state()

    # ---------------------------------------------------------------- core group

    def _on_time_jump_back(self, reason: str, _seconds_back: float) -> None:
        self._time_restart = reason  # a single write: the core group applies it

    def _apply_time_restart(self) -> None:
        """Restart the core after the clock jumped back (with the lock held)."""
        reason, self._time_restart = self._time_restart, None
        if reason is None:
            return
        self._restart_core(reason)
        self.get_logger().warning(f"{reason}: plan dropped, holding until a new chunk arrives")
        self._note_state()

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            positions = self._matcher.extract(msg)
            stamp = stamp_to_nanoseconds(msg.header.stamp)
            if stamp == 0:
                raise JointStateError(
                    "JointState header.stamp is zero: the executor needs "
                    "stamped joint states to tell fresh ones from stale ones"
                )
            ahead = (stamp - self._now_ns()) / NS_PER_S
            if ahead > self.settings.max_clock_skew:
                raise JointStateError(f"JointState stamped {ahead:.3f} s in the future: clocks disagree")
            with self._lock:
                self._apply_time_restart()
                if stamp < self._t_measured:
                    raise JointStateError(
                        f"JointState stamped {(self._t_measured - stamp) / NS_PER_S:.3f} s "
                        "before the previous one: out of order, ignored"
                    )
                self._core.update_measured(positions, stamp)
                self._t_measured = stamp
        except ValueError as error:
            self._warn(self._joint_reporter, f"ignored joint state: {error}")
            return
        except Exception as error:  # noqa: BLE001
            self._internal_error("joint state callback", error)
            return
        self._measured = positions
        self._joint_reporter.good()

    def _restart_core(self, reason: str) -> None:
        """No plan, no joint state: commands start at rest from the next joint state (lock held)."""
        self._core.restart_clock(reason)
        self._t_measured, self._measured = -math.inf, None

    def _on_tick(self) -> None:
        """One control step: the core under the lock, the command published after it."""
        if not self._commanding:
            return
        try:
            with self._lock:
                self._apply_time_restart()
                now_ns = self._now_ns()
                command = self._core.tick(now_ns)
                self._stats.record(time.monotonic())
                self._note_state()
                if command.positions is not None:
                    self._commanded = command.positions
                    self._limited_ticks += command.limited
                request = self._chunk_request_due(now_ns, command.state)
                stop = self._take_motion()
            self._send_motion(stop)
            if command.positions is not None:
                self._publish(command, now_ns)
            if request and self._request_pub is not None:
                self._request_pub.publish(Empty())
            if not self._active:
                self._stop_at_rest(command)
        except Exception as error:  # noqa: BLE001
            self._internal_error("control tick", error)

    def _chunk_request_due(self, now_ns: int, state: ExecutorState) -> bool:
        """Whether to ask the policy for the next chunk now, before the plan runs out (never
        while e-stopped: the chunk would be refused)."""
        if (
            self._requests is not None
            and self._active
            and state != ExecutorState.ESTOPPED
            and self._requests.due(now_ns, self._core.plan_end_ns, self._chunks_accepted)
        ):
            self._requests_sent += 1
            return True
        return False

    def _submit(self, chunk: Chunk) -> None:
        """Plan a converted chunk into the core (with the lock held); none while inactive."""
        if not self._active:
            self._warn(self._chunk_reporter, f"chunk #{chunk.chunk_id} ignored: the executor is inactive")
            return
        result = self._core.submit_chunk(chunk)
        if result.accepted:
            self._chunks_accepted += 1
            self._chunk_reporter.good()
            self._publish_plan()
            self._motion_due()
        else:
            self._reject(chunk.chunk_id, result.reason)

    def _publish_plan(self) -> None:
        """The path the executor will now command: joint trajectory and end-effector path."""
        times, positions = self._core.planned_path(_PATH_PERIOD_NS)
        if len(times) < 2:
            return
        self._planned_trajectory_pub.publish(path_to_joint_trajectory(self._names, times, positions))
        chain, layout = self.layout.chain, self.layout
        if self._planned_path_pub is not None and chain is not None:  # a chain: delta-EEF
            points = np.array([chain.forward(layout.arm_positions(row)).position for row in positions])
            self._planned_path_pub.publish(
                path_markers(
                    points,
                    nanoseconds_to_stamp(int(times[0])),
                    layout.base_frame,
                    PATH_NAMESPACE,
                    0,
                    PATH_COLOR,
                )
            )

    def _motion_due(self) -> None:
        """Plan output: the motion from the last tick on is to be sent (with the lock held); a
        newer one replaces it, also one whose lookahead is already running."""
        if self._plan_pub is not None:
            self._motion_generation += 1
            self._due_motion = (self._motion_generation, self._core.lookahead())

    def _take_motion(self) -> tuple[int, Lookahead | None] | None:
        """The motion due, for this thread to send after releasing the lock (with the lock held)."""
        due, self._due_motion = self._due_motion, None
        return due

    def _send_motion(self, due: tuple[int, Lookahead | None] | None) -> None:
        """Plan output: the executor's ticks run ahead (outside the lock), sent to the controller
        as one JointTrajectory unless a newer motion became due meanwhile (a hold after a chunk)."""
        if due is None or due[1] is None or self._plan_pub is None:
            return
        motion = due[1].motion(self._period_ns)
        trajectory = path_to_joint_trajectory(
            self._names, motion.times_ns, motion.positions, motion.velocities
        )
        with self._lock:
            if due[0] == self._motion_generation:
                self._plan_pub.publish(trajectory)

    def _clear_plan(self) -> None:
        """An empty planned trajectory and the planned path's markers deleted; the plan output's
        controller gets the stop (the brake to rest, or the hold point at rest)."""
        self._motion_due()
        trajectory = JointTrajectory(joint_names=self._names)
        trajectory.header.stamp = nanoseconds_to_stamp(self._now_ns())
        self._planned_trajectory_pub.publish(trajectory)
        if self._planned_path_pub is not None:
            marker = Marker(ns=PATH_NAMESPACE, action=Marker.DELETEALL)
            marker.header.stamp = trajectory.header.stamp
            marker.header.frame_id = self.layout.base_frame
            self._planned_path_pub.publish(MarkerArray(markers=[marker]))

    def _note_state(self) -> None:
        """Log a change of the core's state; called wherever it may change (a tick, a reset, an
        e-stop, a clock restart), so a transition is logged even when the next tick moves on."""
        state, reason = self._core.state, self._core.reason
        if state == self._state:
            return
        was_following = self._state in FOLLOWING_STATES
        previous = self._state.name if self._state is not None else "START"
        self._state = state
        if was_following and state not in FOLLOWING_STATES:
            self._clear_plan()  # holding: nothing of the shown path will be commanded any more
        text = f"state {previous} -> {state.name}: {reason}"
        # rclpy ties a severity to each call site, hence two calls.
        if state in FOLLOWING_STATES:
            self.get_logger().info(text)
        else:
            self.get_logger().warning(text)

    def _publish(self, command: Command, now_ns: int) -> None:
        if command.positions is None or command.velocities is None:
            return  # no joint state yet: nothing to command
        stamp = nanoseconds_to_stamp(now_ns)
        positions = command.positions.tolist()
        velocities = command.velocities.tolist()
        if self._shadow_pub is not None:
            self._shadow_pub.publish(self._joint_state(positions, velocities, stamp))
            return
        if self._forward_pub is not None:
            self._forward_pub.publish(Float64MultiArray(data=positions))
        if self._joint_command_pub is not None:
            self._joint_command_pub.publish(self._joint_state(positions, velocities, stamp))
        if self._trajectory_pub is not None:
            # Reach the command one period after the tick: it arrives before that time, and the
            # next message (one period later) replaces it, so the controller tracks the command.
            trajectory = JointTrajectory(
                joint_names=self._names,
                points=[
                    JointTrajectoryPoint(
                        positions=positions, velocities=velocities, time_from_start=self._point_time
                    )
                ],
            )
            trajectory.header.stamp = stamp
            self._trajectory_pub.publish(trajectory)
        if self._pose_pub is not None:
            self._pose_pub.publish(self._target_pose(command.positions, stamp))

    def _joint_state(self, positions: list[float], velocities: list[float], stamp) -> JointState:
        """The command as a JointState.  Built directly rather than with ``make_joint_state``:
        names were checked once at start and the core's output is always finite, and the checks
        would cost about a quarter of a 500 Hz tick."""
        msg = JointState(name=self._names, position=positions, velocity=velocities)
        msg.header.stamp = stamp
        return msg

    def _target_pose(self, positions: np.ndarray, stamp) -> PoseStamped:
        chain = self.layout.chain
        assert chain is not None, "the pose topic exists for delta-EEF actions, which have a chain"
        pose = chain.forward(self.layout.arm_positions(positions))
        msg = PoseStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.layout.base_frame
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = pose.position.tolist()
        w, x, y, z = pose.quaternion.tolist()
        msg.pose.orientation.w, msg.pose.orientation.x = w, x
        msg.pose.orientation.y, msg.pose.orientation.z = y, z
        return msg

    def _on_estop_topic(self, msg: Bool) -> None:
        try:
            if msg.data:
                self._estop(f"{self.settings.topics['estop_topic']} topic")
            else:
                self.get_logger().info(
                    "e-stop topic false: ignored (only the reset service clears a latched e-stop)"
                )
        except Exception as error:  # noqa: BLE001
            self._internal_error("e-stop topic callback", error)

    def _estop(self, source: str) -> None:
        with self._lock:
            self._core.estop(source)
            self.get_logger().warning(
                f"E-STOP latched by {source}: braking to a hold; chunks "
                f"are refused until {self.settings.topics['reset_service']}"
            )
            self._note_state()

    def _on_estop_service(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            self._estop(f"{self.settings.topics['estop_service']} service")
            response.success, response.message = True, "e-stop latched"
        except Exception as error:  # noqa: BLE001
            self._internal_error("e-stop service", error)
            response.success, response.message = True, "e-stop latched after an internal error"
        return response

    def _on_reset_service(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            with self._lock:
                self._core.reset()
                self.get_logger().info("reset: e-stop and plan cleared; waiting for a new chunk")
                self._note_state()
            response.success, response.message = True, "reset: waiting for a new chunk"
        except Exception as error:  # noqa: BLE001
            self._internal_error("reset service", error)
            response.success, response.message = False, f"reset failed: {error!r}"
        return response

    def _on_diagnostics(self) -> None:
        try:
            with self._lock:
                state, reason = self._core.state, self._core.reason
                tick_stats = self._stats.summary()
            values: dict[str, Any] = {
                "state": state.name,
                "reason": reason,
                "shadow": self.settings.shadow,
                "chunks_accepted": self._chunks_accepted,
                "chunk_requests_sent": self._requests_sent,
                "chunks_rejected": self._chunks_rejected,
                "last_rejection": self._last_rejection,
                "joint_state_age_s": (self._now_ns() - self._t_measured) / NS_PER_S,
                "ticks": self._stats.ticks,
                "missed_ticks": self._stats.missed,
                "limited_ticks": self._limited_ticks,
                "control_rate_hz": self.settings.control_rate,
                "speed_scaling": self._speed_scaling,
                **tick_stats,
            }
            status = make_diagnostic_status(
                f"{self.get_name()}: {self.layout.spec.name}",
                _LEVEL_BY_STATE[state],
                f"{state.name}: {reason}",
                values,
            )
            self._diagnostics_pub.publish(
                make_diagnostic_array([status], nanoseconds_to_stamp(self._now_ns()))
            )
        except Exception as error:  # noqa: BLE001
            self._error(f"diagnostics failed: {error!r}")


def create_executor_node(
    node_name: str = NODE_NAME,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    parameter_overrides: Sequence[Parameter] | None = None,
) -> ExecutorNode:
    """Build an executor node (rclpy must be initialised on ``context``), configured and active
    unless its ``autostart`` parameter is false.

    For in-process bring-up: add the node to an executor (a SingleThreadedExecutor is the reliable
    choice, see the module docstring; its callback groups also make it safe under a
    MultiThreadedExecutor).  Bad parameters raise ValueError (or rclpy's ParameterException).
    """
    return autostarted(
        ExecutorNode(node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides)
    )


_PROCESS_NICE = -10  # the executor process's other threads, where allowed


def main(args: list[str] | None = None) -> int:
    """Run the executor until SIGINT; with ``autostart`` (the default) exit status 2 when the
    configuration is invalid.

    The process asks for a higher CPU share first (nice -10, inherited by the threads rclpy and
    DDS start): the control thread waits for the lock and the GIL that the callbacks' thread
    holds, and a callback preempted by a busy neighbour (the policy's inference) would make the
    tick that long late.  Without the permission the process runs at its given priority.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, 0, _PROCESS_NICE)
    except OSError:
        pass
    return run_node(lambda: ExecutorNode(NODE_NAME), NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
