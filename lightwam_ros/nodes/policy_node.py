"""The Light-WAM policy as a ROS 2 node: cameras, joint states and an instruction in, chunks out.

A thin shell around ROS-free parts: ``PolicyRunner`` (model), ``ObservationAssembler`` (stamped
input buffers that refuse stale or frozen inputs), ``StateBuilder`` (state vector by joint name,
end-effector pose by forward kinematics or a pose topic) and the message conversions.

Lifecycle (a managed node, ``node_main.ManagedNode``).  configure reads the parameters, creates
the topics and loads and warms up the model (status STARTING, then WARMING_UP, then READY and
inactive; a checkpoint that does not load fails the transition with the reason, status ERROR);
activate starts inference on triggers, deactivate stops it (no chunk is published once it has
returned; status READY, inactive); cleanup drops the model and the topics.  Run on its own the
node configures and activates itself (parameter ``autostart``).

Threads.  Subscription callbacks only convert a message and push it into the assembler (under a
lock); they never block on the model and never raise into rclpy: a bad message is logged (rate
limited, naming the stream and the reason) and dropped.  Inference runs on a worker thread that
waits for a trigger while the node is active: a timer at ``rate`` or, with ``trigger:=request``,
a ``std_msgs/Empty`` message or a ``std_srvs/Trigger`` call.  A trigger that finds inference still
running is skipped and counted, never queued, so the node never computes a chunk from an
observation that was already old when it started.  Each run checks that every input is fresh
*now*, then takes every input as of the newest scene-camera frame that all inputs have reached
(so image and state come from one instant, nothing of it is still in flight, and a replayed
recording gives the same observation), predicts, validates and publishes.  When the clock
jumps backwards (simulator reset, looping bag) the input history is cleared and filled afresh.

Outputs.
- ``ActionChunk`` on ``chunk_topic``: ``header.stamp`` is the exact stamp of the frame of the
  embodiment's first camera (its scene camera) used for the prediction, so an executor places the
  steps in time from the observation, not from the publish time; chunk ids increase by one per
  published chunk.
- Shadow mode publishes the same message on ``shadow_chunk_topic`` *instead*: a separate topic,
  rather than a flag inside the message, means no executor can act on a shadow chunk, whatever
  its version or configuration, while recorders and RViz see everything.
- No preview of the motion: what RViz shows as the plan is what the executor will command, and
  the executor publishes it (``planned_trajectory_topic``, ``planned_path_topic``).
- ``PolicyStatus`` on every state change and at ``status_rate`` (transient local: a late monitor
  gets the current one), ``DiagnosticArray`` at ``diagnostics_rate``.

A model exception or a meaningless chunk (non-finite values) is logged and reported (status
ERROR), no chunk is published, and the next trigger tries again.  Joint limits are not checked
here: the executor's safety filter owns them (it clips within its margin, refuses beyond).
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.context import Context
from rclpy.parameter import Parameter
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Empty, String
from std_srvs.srv import Trigger

from lightwam_ros.control.frame_history import ObservationAssembler, StaleInputError, StreamProblem
from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.nodes.node_main import ManagedNode, StartError, autostarted, run_node
from lightwam_ros.nodes.reason_reporter import ReasonReporter
from lightwam_ros.policy.runner import (
    LatencyStats,
    PolicyInputError,
    PolicyOutput,
    PolicyOutputError,
    PolicyRunner,
)
from lightwam_ros.policy.state_builder import StateAssemblyError, StateBuilder, default_chains
from lightwam_ros.ros import qos
from lightwam_ros.ros.chunk_messages import chunk_to_msg
from lightwam_ros.ros.diagnostics import make_diagnostic_array, make_diagnostic_status
from lightwam_ros.ros.image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb
from lightwam_ros.ros.joint_state import JointStateMatcher
from lightwam_ros.ros.log_text import quoted
from lightwam_ros.ros.node_registry import NODE_KINDS, POLICY
from lightwam_ros.ros.parameter_checks import NodeSource, allow_runtime_changes
from lightwam_ros.ros.policy_inputs import (
    JOINT_STREAM,
    anchor_stream,
    camera_stream,
    input_streams,
    pose_stream,
)
from lightwam_ros.ros.policy_params import POLICY_SCHEMA, CameraInput, PolicySettings, read_policy_settings
from lightwam_ros.ros.pose_messages import pose_from_message
from lightwam_ros.ros.stamps import nanoseconds_to_stamp, stamp_to_nanoseconds, stamp_to_seconds

NODE_NAME = NODE_KINDS[POLICY].node_name
_WORKER_STOP_TIMEOUT = 120.0  # s: a full checkpoint load from a slow disk
_ANCHOR_STAMPS_KEPT = 64  # exact stamps of recent scene-camera frames (see _anchor_stamp)
_OVERTAKING_MARGIN = 1.0  # s: a sample may be stamped this far ahead of the /clock seen so far
_LEVEL = {
    PolicyStatus.STARTING: 1,
    PolicyStatus.WARMING_UP: 1,
    PolicyStatus.READY: 0,
    PolicyStatus.WAITING_FOR_INPUT: 1,
    PolicyStatus.ERROR: 2,
}
_INACTIVE = "inactive: no chunks until the node is activated"
_STATE_NAMES = {
    PolicyStatus.STARTING: "STARTING",
    PolicyStatus.WARMING_UP: "WARMING_UP",
    PolicyStatus.READY: "READY",
    PolicyStatus.WAITING_FOR_INPUT: "WAITING_FOR_INPUT",
    PolicyStatus.ERROR: "ERROR",
}


class PolicyNode(ManagedNode):
    """The policy node; build it with ``create_policy_node`` (or run ``main``)."""

    def __init__(
        self,
        node_name: str = NODE_NAME,
        *,
        context: Context | None = None,
        namespace: str | None = None,
        parameter_overrides: Sequence[Parameter] | None = None,
    ) -> None:
        # Set before the node is built: destroy_node (after a bad configuration too) uses them.
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        super().__init__(
            node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides
        )

    # ---------------------------------------------------------------- set-up

    def _configure(self) -> None:
        self.settings: PolicySettings = read_policy_settings(NodeSource(self))
        settings, spec = self.settings, self.settings.spec
        measured = tuple(pose.arm for pose in settings.poses)
        self._builder = StateBuilder(spec, default_chains(spec, measured))
        self._matcher = JointStateMatcher(self._builder.joint_names)
        self._anchor = anchor_stream(settings)

        streams, self._topics = input_streams(settings)
        self._assembler = ObservationAssembler(streams)
        self._inputs_lock = threading.Lock()  # guards the assembler and the input bookkeeping
        self._anchor_stamps: collections.deque[tuple[float, Time]] = collections.deque(
            maxlen=_ANCHOR_STAMPS_KEPT
        )
        self._latest_stamp: dict[str, float | None] = {name: None for name in streams}
        self._restarts = dict.fromkeys(streams, 0)  # per stream, as last logged
        self._jumped_from: float | None = None  # s: the clock jumped back from this time
        self._invalid = {name: 0 for name in streams}
        self._reporters = {name: ReasonReporter() for name in streams}  # per input stream
        self._error_reporter = ReasonReporter()  # inference failures
        self._instruction_reporter = ReasonReporter()  # unknown instructions

        self._instruction: str | None = settings.instruction or None
        self._runner: PolicyRunner | None = None
        self._active = False  # activated: triggers start inference, chunks are published
        self._busy = False
        self._trigger_lock = threading.Lock()
        self._chunk_id = 0
        self._skipped = 0
        self._failures = 0
        self._last_output: PolicyOutput | None = None
        # Read by the status and diagnostics timers; the runner's own statistics are updated by
        # the worker without a lock, so the worker copies them here after each prediction.
        self._latency_stats: LatencyStats | None = None
        self._last_latency = 0.0
        self._last_age = 0.0
        self._status_lock = threading.Lock()
        self._status: tuple[int, str, Any] | None = None  # state, message, change key
        self._create_interfaces()
        self._time_jumps = self.on_time_jump_back(self._on_time_jump_back)
        allow_runtime_changes(
            self, POLICY_SCHEMA, {"instruction": (self._unknown_task, self._set_instruction)}
        )
        self._set_status(PolicyStatus.STARTING, f"loading {settings.checkpoint}")
        self._runner = self._load()
        self._stop.clear()
        self._worker = threading.Thread(
            target=self._run_worker, name="lightwam_policy_inference", daemon=True
        )
        self._worker.start()

    def _activate(self) -> None:
        with self._trigger_lock:
            self._active = True
        self._set_status(PolicyStatus.READY, "active: inference on every trigger")

    def _deactivate(self) -> None:
        """No chunk is published once this returns (an inference in flight ends unpublished)."""
        with self._trigger_lock:
            self._active = False
        self._set_status(PolicyStatus.READY, _INACTIVE)

    def _teardown(self) -> None:
        """Stop the worker, then drop the model.  An inference in progress finishes first (up to
        ``_WORKER_STOP_TIMEOUT``): a thread left inside torch when the interpreter exits aborts
        the process."""
        self._stop.set()
        self._wake.set()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=1.0)
            if worker.is_alive():
                self.get_logger().info("stopping: waiting for the model to finish predicting")
                worker.join(timeout=_WORKER_STOP_TIMEOUT)
        self._runner = None

    def _create_interfaces(self) -> None:
        settings, topics = self.settings, self.settings.topics
        self._status_pub = self.create_publisher(PolicyStatus, topics["status_topic"], qos.LATCHED)
        chunk_topic = topics["shadow_chunk_topic" if settings.shadow else "chunk_topic"]
        self._chunk_pub = self.create_publisher(ActionChunk, chunk_topic, qos.COMMANDS)
        self._diagnostics_pub = self.create_publisher(
            DiagnosticArray, topics["diagnostics_topic"], qos.COMMANDS
        )

        # Best effort matches reliable and best-effort sensor publishers alike; reliable (opt-in
        # per camera) loses no frame of a burst of large images, but matches reliable ones only.
        for camera in settings.cameras:
            kind, convert = (
                (CompressedImage, compressed_to_rgb) if camera.compressed else (Image, image_to_rgb)
            )
            profile = qos.RELIABLE_CAMERA if camera.reliable else qos.SENSOR_CAMERA
            self.create_subscription(kind, camera.topic, self._image_callback(camera, convert), profile)
        self.create_subscription(
            JointState, topics["joint_state_topic"], self._on_joint_state, qos.SENSOR_STATE
        )
        for pose in settings.poses:
            self.create_subscription(PoseStamped, pose.topic, self._pose_callback(pose.arm), qos.SENSOR_STATE)
        self.create_subscription(String, topics["instruction_topic"], self._on_instruction, qos.COMMANDS)
        if settings.trigger == "timer":
            self.create_timer(1.0 / settings.rate, self._on_tick)
        else:
            self.create_subscription(Empty, topics["request_topic"], self._on_request, qos.COMMANDS)
            self.create_service(Trigger, topics["request_service"], self._on_request_service)
        self.create_timer(1.0 / settings.status_rate, self._publish_status)
        self.create_timer(1.0 / settings.diagnostics_rate, self._on_diagnostics)
        mode = f"SHADOW: chunks on {chunk_topic} only" if settings.shadow else f"chunks on {chunk_topic}"
        trigger = (
            f"every {1.0 / settings.rate:.3f} s"
            if settings.trigger == "timer"
            else f"on request ({topics['request_topic']}, {topics['request_service']})"
        )
        self.get_logger().info(
            f"policy for {settings.spec.name} ({settings.model_id}): {mode}, inference {trigger}; "
            f"inputs {self._topics}; instruction {self._instruction!r}"
        )

    # ---------------------------------------------------------------- input callbacks

    def _image_callback(
        self, camera: CameraInput, convert: Callable[[Any], np.ndarray]
    ) -> Callable[[Any], None]:
        stream = camera_stream(camera.role)

        def on_image(msg: Any) -> None:
            try:
                rgb = convert(msg)
                if camera.size is not None and rgb.shape[:2] != camera.size:
                    raise ImageConversionError(
                        f"frame is {rgb.shape[0]}x{rgb.shape[1]} (height x width), expected "
                        f"{camera.size[0]}x{camera.size[1]} (parameter cameras.{camera.role}.size)"
                    )
                self._accept(stream, msg.header.stamp, rgb)
            except Exception as error:  # noqa: BLE001 - never raise into rclpy
                self._reject(stream, error)

        return on_image

    def _on_joint_state(self, msg: JointState) -> None:
        try:
            self._accept(JOINT_STREAM, msg.header.stamp, self._matcher.extract(msg))
        except Exception as error:  # noqa: BLE001
            self._reject(JOINT_STREAM, error)

    def _pose_callback(self, arm: str) -> Callable[[PoseStamped], None]:
        stream = pose_stream(arm)

        def on_pose(msg: PoseStamped) -> None:
            try:
                self._accept(stream, msg.header.stamp, pose_from_message(msg))
            except Exception as error:  # noqa: BLE001
                self._reject(stream, error)

        return on_pose

    def _accept(self, stream: str, stamp: Time, value: Any) -> None:
        seconds = stamp_to_seconds(stamp)
        if seconds == 0.0:
            raise ValueError("header.stamp is zero: inputs must be stamped with their capture time")
        with self._inputs_lock:
            if self._from_before_jump(seconds):
                raise ValueError(
                    f"stamped {seconds:.3f} s, before the clock jumped back to "
                    f"{self._now_seconds():.3f} s: sent before a reset"
                )
            accepted = self._assembler.add(stream, seconds, value)
            stats = self._assembler.stats(stream)
            restart = stats.last_restart if stats.restarts > self._restarts[stream] else ""
            self._restarts[stream] = stats.restarts
            if restart and stream == self._anchor:
                self._anchor_stamps.clear()  # stamps of the stream's previous life
            message = "" if accepted else stats.last_rejection
            if accepted:
                self._latest_stamp[stream] = seconds
                if stream == self._anchor:
                    self._anchor_stamps.append((seconds, Time(sec=stamp.sec, nanosec=stamp.nanosec)))
        if restart:
            self.get_logger().warning(f"{self._topics[stream]}: {restart}")
        if message:
            self._warn_input(stream, f"dropped input from {self._topics[stream]}: {message}")
        else:
            self._reporters[stream].good()

    def _on_time_jump_back(self, reason: str, seconds_back: float) -> None:
        with self._inputs_lock:
            self._assembler.clear()
            self._anchor_stamps.clear()
            self._latest_stamp = dict.fromkeys(self._latest_stamp)
            self._jumped_from = self._now_seconds() + seconds_back
        self.get_logger().warning(f"{reason}: input history cleared, waiting for new inputs")

    def _now_seconds(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _from_before_jump(self, stamp: float) -> bool:
        """A sample still in flight when the clock jumped back is stamped between the new time
        (plus a margin for a sample that overtakes its clock message) and the time it jumped
        from; the window closes once the clock passes that time again."""
        if self._jumped_from is None:
            return False
        now = self._now_seconds()
        if now >= self._jumped_from:
            self._jumped_from = None
            return False
        return now + _OVERTAKING_MARGIN < stamp <= self._jumped_from

    def _reject(self, stream: str, error: BaseException) -> None:
        with self._inputs_lock:
            self._invalid[stream] += 1
        reason = str(error) if isinstance(error, ValueError) else f"unexpected error {error!r}"
        self._warn_input(stream, f"dropped input from {self._topics[stream]} ({stream}): {reason}")

    def _warn_input(self, stream: str, message: str) -> None:
        """Log a bad input at once, then at most once a second while the stream stays bad."""
        text = self._reporters[stream].bad(message)
        if text is not None:
            self.get_logger().warning(text)

    def _on_instruction(self, msg: String) -> None:
        refused = self._unknown_task(msg.data)
        if not refused:
            self._set_instruction(msg.data)
            self._instruction_reporter.good()
            return
        text = self._instruction_reporter.bad(
            f"unknown instruction {refused}, on {self.settings.topics['instruction_topic']}; "
            f"keeping {self._instruction!r}"
        )
        if text is not None:
            self.get_logger().warning(text)

    def _unknown_task(self, value: Any) -> str:
        """Why ``value`` is no instruction this policy knows ("" when it is one)."""
        task = str(value).strip()
        if task in self.settings.tasks:
            return ""
        return f"{quoted(task)} is not in the instruction cache (tasks: {list(self.settings.tasks)})"

    def _set_instruction(self, value: Any) -> None:
        """A known task (topic or parameter): the next prediction uses it."""
        task = str(value).strip()
        if task != self._instruction:
            self.get_logger().info(f"instruction set to {task!r} (was {self._instruction!r})")
        self._instruction = task

    # ---------------------------------------------------------------- triggers

    def _try_start(self) -> bool:
        """Wake the worker unless it is busy; a trigger while busy is dropped, never queued."""
        with self._trigger_lock:
            if not self._active or self._busy:
                return False
            self._busy = True
        self._wake.set()
        return True

    def _on_tick(self) -> None:
        if self._active and not self._try_start():
            self._skipped += 1

    def _on_request(self, _msg: Empty) -> None:
        if not self._try_start():
            self._skipped += 1
            self.get_logger().warning("chunk request dropped: " + self._busy_reason())

    def _on_request_service(self, _request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        response.success = self._try_start()
        if response.success:
            response.message = f"inference started; the chunk follows on {self._chunk_pub.topic}"
        else:
            self._skipped += 1
            response.message = self._busy_reason()
        return response

    def _busy_reason(self) -> str:
        if not self._active:
            return "the policy is inactive (activate it: ros2 lifecycle set <node> activate)"
        return "inference is still running (requests are not queued)"

    # ---------------------------------------------------------------- worker thread

    def _run_worker(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._infer_once()
            except Exception as error:  # noqa: BLE001 - e.g. publishing during shutdown
                if not self._stop.is_set():
                    self._fail(f"internal error: {error!r}")
            finally:
                with self._trigger_lock:
                    self._busy = False
                    active = self._active
                if not active:  # deactivated while it ran: say so again
                    self._set_status(PolicyStatus.READY, _INACTIVE)

    def _load(self) -> PolicyRunner:
        """The runner, loaded and warmed up; StartError when it cannot be (status ERROR)."""
        settings = self.settings
        started = time.monotonic()
        try:
            runner = PolicyRunner.from_files(
                settings.checkpoint,
                settings.instruction_cache,
                embodiment=settings.spec.source,
                device=settings.device,
                dtype=settings.dtype,
                compile=settings.compile,
                cuda_graphs=settings.cuda_graphs,
                warmup=0,
            )
        except Exception as error:  # any load failure fails configure
            message = f"cannot load the policy: {error}"
            self._set_status(PolicyStatus.ERROR, message, log=False)
            raise StartError(message) from error
        self._set_status(
            PolicyStatus.WARMING_UP, f"{settings.warmup} warm-up passes on {runner.device} ({runner.dtype})"
        )
        # from_files ran no pass (so that loading and warm-up show as separate states): run them
        # now.  With cuda_graphs this captures the graph a second time, which costs milliseconds.
        runner.warmup_iterations = settings.warmup
        sizes = {camera.role: camera.size for camera in settings.cameras if camera.size}
        if not runner.warmup(cancel=self.interrupted, source_sizes=sizes):
            raise StartError("interrupted during warm-up")
        self._set_status(
            PolicyStatus.READY, f"loaded and warmed up in {time.monotonic() - started:.1f} s; {_INACTIVE}"
        )
        return runner

    def _loaded_runner(self) -> PolicyRunner:
        """The runner, once loaded (inference starts only then)."""
        if self._runner is None:
            raise RuntimeError("the model is not loaded yet")
        return self._runner

    def _infer_once(self) -> None:
        started = time.monotonic()
        instruction = self._instruction
        if instruction is None:
            self._set_status(
                PolicyStatus.WAITING_FOR_INPUT,
                f"no instruction: publish a task on {self.settings.topics['instruction_topic']}",
            )
            return
        now = self.get_clock().now().nanoseconds * 1e-9
        with self._inputs_lock:
            try:
                observation = self._assembler.assemble_anchored(now, self._anchor)
                anchor_stamp = self._anchor_stamp(observation.samples[self._anchor].stamp)
            except StaleInputError as error:
                observation, problems = None, error.problems
        if observation is None:
            self._set_status(
                PolicyStatus.WAITING_FOR_INPUT,
                self._describe(problems),
                key=tuple((p.stream, p.kind) for p in problems),
            )
            return
        try:
            poses = {pose.arm: observation.value(pose_stream(pose.arm)) for pose in self.settings.poses}
            state = self._builder.build(observation.value(JOINT_STREAM), poses)
            images = {
                camera.role: observation.value(camera_stream(camera.role)) for camera in self.settings.cameras
            }
            output = self._loaded_runner().predict(
                images, state.vector, instruction, stamp_ns=stamp_to_nanoseconds(anchor_stamp)
            )
        except (StateAssemblyError, PolicyInputError) as error:
            self._set_status(PolicyStatus.WAITING_FOR_INPUT, f"unusable input: {error}")
            return
        except PolicyOutputError as error:
            self._fail(f"chunk refused, not published: {error}")
            return
        except Exception as error:  # noqa: BLE001 - the model failed; keep running
            self._fail(f"inference failed: {error!r}")
            return
        latency = time.monotonic() - started
        self._publish_chunk(output, observation.oldest_age, latency, instruction)

    def _anchor_stamp(self, seconds: float) -> Time:
        """The exact stamp of the scene-camera frame stored at ``seconds`` (float seconds lose
        nanoseconds at epoch times, and the chunk must carry the frame's stamp to the ns)."""
        for stored, stamp in reversed(self._anchor_stamps):
            if stored == seconds:
                return stamp
        raise RuntimeError(f"no exact stamp kept for the frame at {seconds:.9f}")

    def _describe(self, problems: tuple[StreamProblem, ...]) -> str:
        return "; ".join(f"{problem.message} [topic {self._topics[problem.stream]}]" for problem in problems)

    def _publish_chunk(self, output: PolicyOutput, age: float, latency: float, instruction: str) -> None:
        chunk = dataclasses.replace(
            output.chunk,
            chunk_id=self._chunk_id,
            inference_latency=latency,
            observation_age=age,
            model_id=self.settings.model_id,
        )
        with self._trigger_lock:  # deactivate takes it: no chunk after it returned
            if not self._active:
                return
            self._chunk_pub.publish(chunk_to_msg(chunk))
        self._chunk_id += 1
        self._last_output, self._last_latency, self._last_age = output, latency, age
        self._latency_stats = self._loaded_runner().latency_stats()
        self._error_reporter.good()
        what = "shadow chunks (never executed)" if self.settings.shadow else "chunks"
        self._set_status(PolicyStatus.READY, f"publishing {what} for {instruction!r}")

    def _fail(self, message: str) -> None:
        self._failures += 1
        text = self._error_reporter.bad(message)
        if text is not None:
            self.get_logger().error(text)
        self._set_status(PolicyStatus.ERROR, message, key=message.split(":")[0], log=False)

    # ---------------------------------------------------------------- status and diagnostics

    def _set_status(self, state: int, message: str, key: Any = None, log: bool = True) -> None:
        """Record the state; publish and log at once when the state or its key changes."""
        key = message if key is None else key
        with self._status_lock:
            previous = self._status
            self._status = (state, message, key)
        if previous is not None and (previous[0], previous[2]) == (state, key):
            return
        if log:  # one call site per severity: rclpy ties a severity to each
            text = f"{_STATE_NAMES[state]}: {message}"
            if state == PolicyStatus.ERROR:
                self.get_logger().error(text)
            elif state == PolicyStatus.WAITING_FOR_INPUT:
                self.get_logger().warning(text)
            else:
                self.get_logger().info(text)
        self._publish_status()

    def _publish_status(self) -> None:
        try:
            with self._status_lock:
                if self._status is None:
                    return  # no state yet: __init__ sets the first
                state, message, _ = self._status
                msg = PolicyStatus(
                    state=state,
                    message=message,
                    model_id=self.settings.model_id,
                    embodiment=self.settings.spec.name,
                    chunks_published=self._chunk_id,
                    frames_dropped=self._frames_dropped(),
                    observation_age=self._last_age,
                )
                msg.header.stamp = self.get_clock().now().to_msg()
                stats = self._latency_stats
                if stats is not None:
                    msg.latency_p50, msg.latency_p90 = stats.p50, stats.p90
                if self._last_output is not None:
                    msg.gpu_memory_peak = float(self._last_output.peak_memory_bytes)
                self._status_pub.publish(msg)
        except Exception as error:  # noqa: BLE001 - e.g. during shutdown
            self._log_internal(f"status not published: {error!r}")

    def _frames_dropped(self) -> int:
        return self._assembler.frames_dropped + sum(self._invalid.values())

    def _on_diagnostics(self) -> None:
        try:
            with self._status_lock:
                if self._status is None:
                    return
                state, message, _ = self._status
            now = self.get_clock().now().nanoseconds * 1e-9
            with self._inputs_lock:
                ages = {
                    f"input_age_s[{name}]": (now - stamp if stamp is not None else "none")
                    for name, stamp in self._latest_stamp.items()
                }
                dropped = self._frames_dropped()
                invalid = sum(self._invalid.values())
            values: dict[str, Any] = {
                "state": _STATE_NAMES[state],
                "instruction": self._instruction or "",
                "shadow": self.settings.shadow,
                "trigger": self.settings.trigger,
                "rate_hz": self.settings.rate,
                "chunks_published": self._chunk_id,
                "skipped_ticks": self._skipped,
                "inference_failures": self._failures,
                "frames_dropped": dropped,
                "frames_invalid": invalid,
                "observation_age_s": self._last_age,
                "inference_latency_s": self._last_latency,
                **ages,
            }
            output = self._last_output
            if output is not None:
                for stage, seconds in output.timing.as_dict().items():
                    values[f"{stage}_ms"] = "n/a" if seconds is None else 1e3 * seconds
                values["gpu_memory_peak_mb"] = output.peak_memory_bytes / 2**20
            stats = self._latency_stats
            if stats is not None:
                values.update(
                    latency_p50_ms=1e3 * stats.p50,
                    latency_p90_ms=1e3 * stats.p90,
                    latency_max_ms=1e3 * stats.max,
                )
            status = make_diagnostic_status(
                f"{self.get_name()}: {self.settings.spec.name}",
                _LEVEL[state],
                f"{_STATE_NAMES[state]}: {message}",
                values,
            )
            self._diagnostics_pub.publish(
                make_diagnostic_array([status], nanoseconds_to_stamp(self.get_clock().now().nanoseconds))
            )
        except Exception as error:  # noqa: BLE001
            self._log_internal(f"diagnostics not published: {error!r}")

    def _log_internal(self, message: str) -> None:
        if not self._stop.is_set():  # publishers fail while the node shuts down: expected
            self.get_logger().error(message)


def create_policy_node(
    node_name: str = NODE_NAME,
    *,
    context: Context | None = None,
    namespace: str | None = None,
    parameter_overrides: Sequence[Parameter] | None = None,
) -> PolicyNode:
    """Build a policy node (rclpy must be initialised on ``context``), configured (the model
    loaded and warmed up) and active unless its ``autostart`` parameter is false.

    For in-process bring-up: add it to any executor.  Bad parameters raise ValueError (or
    rclpy's ParameterException) before anything is loaded, a model that cannot be loaded
    StartError.
    """
    return autostarted(
        PolicyNode(node_name, context=context, namespace=namespace, parameter_overrides=parameter_overrides)
    )


def main(args: list[str] | None = None) -> int:
    """Run the policy until SIGINT; with ``autostart`` (the default) exit status 2 for an invalid
    configuration, 1 when the model cannot be loaded."""
    return run_node(PolicyNode, NODE_NAME, args)


if __name__ == "__main__":
    sys.exit(main())
