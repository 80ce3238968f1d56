"""lightwam-bench-ros: what ROS adds around the model, and how steady the 500 Hz executor stays.

Both parts run the nodes as separate processes exactly as users start them (the command lines of
``bringup_plan``: ``python -m lightwam_ros.nodes.<node> --ros-args --params-file
config/<node>_<embodiment>.yaml -p ...``) on a random-weight package from ``make_tiny`` (tiny
preset, on the CPU), with loopback-only discovery and a private domain id.  A benchmark, not a
test: the goals are printed beside the figures, never asserted.

(a) ROS overhead.  The policy runs with ``trigger:=request``.  This process publishes every
camera image and a joint state stamped with the current time, then one ``std_msgs/Empty`` request,
and receives the ActionChunk, whose ``header.stamp`` is the stamp of the frame it used.
end-to-end = receive time - image stamp; model time = the runner's stages (preprocess, VAE,
backbone, expert, postprocess incl. chunk validation) of *that* prediction, from the node's
DiagnosticArray.  The pairing is exact: a DiagnosticArray counts only when its
``inference_latency_s`` equals the chunk's own ``inference_latency`` (same float, same formatting)
and its ``chunks_published`` is the chunk id + 1; the node stores a prediction's output before its
latency and the diagnostics read the latency first, so a match cannot carry older timings.
overhead = end-to-end - model time.  It splits into the in-node part before the model (chunk
``inference_latency`` - model time: observation assembly and state building) and the rest: DDS
transport of the images, joint state and request in and of the chunk out, image/joint conversion
in the callbacks, waking the inference thread, chunk message building and publishing, and this
process's deserialisation.  A request that overtakes its frames is answered from an older frame
(or, once that frame is too old, not at all): such samples are discarded and counted, so every
sample is one frame's full path - which leaves out the slowest image deliveries (see the count).

(b) Executor timing.  The policy runs on its timer at its default rate, the executor at
``control_rate`` 500 Hz publishing its ``joint_trajectory`` output (stamped with the tick's time,
taken before the control step; ``forward_command`` carries no stamp), and ``nodes.loopback_robot``
feeds both (camera images, joint states following the commands).  Over a window of
``--seconds``: the period error |dt - period| of consecutive command stamps and the ticks missing
between them, the command rate at this receiver, the executor's own TickStats (monotonic clock)
from its diagnostics, and the chunks that flowed.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Empty
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.state_builder import StateBuilder, default_chains
from lightwam_ros.ros import qos
from lightwam_ros.ros.diagnostics import format_value
from lightwam_ros.ros.image_conversion import rgb_to_image
from lightwam_ros.ros.joint_state import make_joint_state
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS, POLICY
from lightwam_ros.ros.node_schemas import NODE_SCHEMAS
from lightwam_ros.ros.param_files import DEFAULT_EMBODIMENT, EMBODIMENTS, ParamFileError, read_params
from lightwam_ros.ros.stamps import nanoseconds_to_stamp, stamp_to_nanoseconds
from lightwam_ros.tools.assets.model_files import ModelFiles, ensure_tiny_package
from lightwam_ros.tools.launch.bringup_observer import POLICY_STATES
from lightwam_ros.tools.launch.bringup_plan import (
    BringupOptions,
    NodePlan,
    ParamOverride,
    PlanError,
    build_plan,
)
from lightwam_ros.tools.launch.child_process import ChildProcess
from lightwam_ros.tools.launch.ros_env import isolated_ros_env

GOAL_OVERHEAD_P50_MS = 5.0
GOAL_PERIOD_ERROR_P99_MS = 1.0
STAGES = ("preprocess", "vae", "backbone", "expert", "postprocess")
START_TIMEOUT = 120.0  # s: model load + warm-up on a busy 2-core machine
REPLY_TIMEOUT = 30.0  # s: the diagnostics paired with a chunk
NO_CHUNK_TIMEOUT = 2.0  # s: the least wait for a chunk before a request counts as unanswered
LOG_LINES_KEPT = 40
T = TypeVar("T")


class BenchError(RuntimeError):
    """The bench cannot go on (a node died, nothing arrived in time); the message says why."""


class WaitTimeout(BenchError):
    """What was waited for did not come in time (the nodes are still running)."""


# ------------------------------------------------------------------------------------------
# Numbers
# ------------------------------------------------------------------------------------------


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50/p90/p99/max/mean and count of ``values`` (empty: NaN figures, count 0)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {key: math.nan for key in ("p50", "p90", "p99", "max", "mean")} | {"count": 0}
    return {
        "p50": float(np.percentile(data, 50)),
        "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "count": int(data.size),
    }


def period_errors(stamps_ns: Sequence[int], period_s: float) -> tuple[np.ndarray, int]:
    """|dt - period| in ms between consecutive stamps, and the ticks missing between them (a gap
    of about k periods means k - 1 missing)."""
    gaps = np.diff(np.asarray(stamps_ns, dtype=np.int64)).astype(np.float64) * 1e-9
    missed = int(np.maximum(np.rint(gaps / period_s) - 1, 0).sum())
    return np.abs(gaps - period_s) * 1e3, missed


# ------------------------------------------------------------------------------------------
# Node processes
# ------------------------------------------------------------------------------------------


class NodeProcess(ChildProcess):
    """One node as a child process that dies with the bench; its last lines kept for errors."""

    def __init__(self, name: str, command: Sequence[str]) -> None:
        self.name = name
        self.lines: collections.deque[str] = collections.deque(maxlen=LOG_LINES_KEPT)
        super().__init__(command, self.lines.append, die_with_parent=True)

    def tail(self) -> str:
        return "\n".join(f"    {line}" for line in list(self.lines))

    def check(self) -> None:
        """Raise BenchError with the log tail when the process has exited."""
        code = self.process.poll()
        if code is not None:
            self.stop()  # reads the output to its end
            raise BenchError(f"{self.name} exited with status {code}; its last output:\n{self.tail()}")


class Processes:
    """The nodes of one part, run as a user would (``python -m ... --ros-args``): checked while
    waiting, stopped together."""

    def __init__(self, nodes: Sequence[NodePlan]) -> None:
        self.running: list[NodeProcess] = []
        try:
            # Every fork before any thread of ours starts (the readers, the probe's spinner).
            for node in nodes:
                self.running.append(NodeProcess(f"{node.role} node", node.command()))
        except BaseException:
            self.__exit__()
            raise
        for process in self.running:
            process.start_reading()

    def check(self) -> None:
        for process in self.running:
            process.check()

    def tails(self) -> str:
        return "\n".join(f"  {process.name}:\n{process.tail()}" for process in self.running)

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for process in reversed(self.running):
            process.stop()


# ------------------------------------------------------------------------------------------
# The bench's side of the graph
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    ns: int  # time.time_ns() when the callback ran
    msg: Any


@dataclass(frozen=True)
class ProbeTopics:
    chunk: str
    status: str
    diagnostics: str
    command: tuple[str, str] | None = None  # (executor output mode, topic) to record


class Probe:
    """One rclpy node in this process, spun on a thread, recording what the nodes publish.

    Callbacks only append and notify ``changed``; waits block on it with a deadline.  Executor
    commands are kept as raw bytes and decoded after the window: decoding 500 messages a second
    in Python would make this process, not the executor, the bottleneck on a 2-core machine.
    """

    def __init__(self, topics: ProbeTopics) -> None:
        self.changed = threading.Condition()
        self.chunks: list[Received] = []
        self.statuses: list[Received] = []
        self.diagnostics: dict[str, list[Received]] = {
            NODE_KINDS[POLICY].node_name: [],
            NODE_KINDS[EXECUTOR].node_name: [],
        }
        self.commands: list[tuple[int, bytes]] = []
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("lightwam_bench_ros", context=self.context)
        # Deeper queues than the observers': every message of a benchmark run counts.
        self.node.create_subscription(
            ActionChunk, topics.chunk, self._recorder(self.chunks), qos.profile(100)
        )
        self.node.create_subscription(
            PolicyStatus, topics.status, self._recorder(self.statuses), qos.profile(10, latched=True)
        )
        self.node.create_subscription(
            DiagnosticArray, topics.diagnostics, self._on_diagnostics, qos.profile(100)
        )
        if topics.command is not None:
            mode, topic = topics.command
            self.node.create_subscription(
                command_type(mode), topic, self._on_command, qos.profile(1000), raw=True
            )
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._running = True
        self._spinner = threading.Thread(target=self._spin, daemon=True)
        self._spinner.start()

    def _spin(self) -> None:
        while self._running:
            self._executor.spin_once(timeout_sec=0.05)

    def _recorder(self, log: list[Received]) -> Callable[[Any], None]:
        def record(msg: Any) -> None:
            received = Received(time.time_ns(), msg)
            with self.changed:
                log.append(received)
                self.changed.notify_all()

        return record

    def _on_diagnostics(self, msg: Any) -> None:
        now = time.time_ns()
        for status in msg.status:
            node = status.name.split(":")[0]
            if node in self.diagnostics:
                values = {kv.key: kv.value for kv in status.values}
                with self.changed:
                    self.diagnostics[node].append(Received(now, values))
                    self.changed.notify_all()

    def _on_command(self, raw: bytes) -> None:
        self.commands.append((time.time_ns(), raw))  # list.append is atomic: no lock, no notify

    def last_diagnostics(self, role: str) -> dict[str, str]:
        log = self.diagnostics[NODE_KINDS[role].node_name]
        return log[-1].msg if log else {}

    def wait_for(
        self, condition: Callable[[], T | None], timeout: float, what: str, processes: Processes
    ) -> T:
        """The first truthy ``condition()``, re-checked on every message (and every 0.2 s);
        BenchError after ``timeout`` or as soon as a node process has exited."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                result = condition()
                if result:
                    return result
                processes.check()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WaitTimeout(
                        f"timed out after {timeout:g} s waiting for {what}; "
                        f"the nodes' last output:\n{processes.tails()}"
                    )
                self.changed.wait(min(left, 0.2))

    def publisher(self, kind: type, topic: str) -> Any:
        return self.node.create_publisher(kind, topic, qos.COMMANDS)

    def close(self) -> None:
        self._running = False
        self._spinner.join(timeout=5)
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def command_type(mode: str) -> type:
    """The message type of a stamped executor output mode."""
    return {"joint_trajectory": JointTrajectory, "joint_state": JointState}[mode]


def wait_ready(probe: Probe, processes: Processes) -> None:
    """Until the policy reports READY (model loaded and warmed up)."""
    probe.wait_for(
        lambda: any(r.msg.state == PolicyStatus.READY for r in probe.statuses),
        START_TIMEOUT,
        "the policy to report READY",
        processes,
    )


def _overrides(role: str, **values: Any) -> tuple[ParamOverride, ...]:
    return tuple(ParamOverride(role, name, value) for name, value in values.items())


def _effective_parameters(node: NodePlan, embodiment: str) -> dict[str, Any]:
    """A node's parameters (the defaults, its file, then the overrides), flat as ROS names them."""
    from_file = {} if node.params_file is None else read_params(node.params_file, node.node_name)
    roles = [camera.role for camera in load_embodiment(embodiment).canvas.cameras]
    return NODE_SCHEMAS[node.role].effective({**from_file, **node.overrides}, {"role": roles})


# ------------------------------------------------------------------------------------------
# (a) ROS overhead
# ------------------------------------------------------------------------------------------


class ObservationSender:
    """Publishes one frame per camera and a joint state, all with the same stamp, and requests.

    Each camera publishes from its own DDS participant, as separate camera drivers do: from one
    participant, a burst of large messages outgrows Fast DDS's buffers here and a best-effort
    reader (the node's camera subscriptions) loses the first of them, often for many bursts in a
    row (measured: 3 x 230 KB at 4 Hz, up to a third of the first stream lost; none with one
    participant per camera).
    """

    def __init__(self, probe: Probe, embodiment: str, policy: dict[str, Any], seed: int) -> None:
        spec = load_embodiment(embodiment)
        rng = np.random.default_rng(seed)
        self._cameras: list[tuple[rclpy.Context, Any]] = []  # (context, node) per camera
        self.frames = []  # (publisher, message), the scene camera (the chunk's anchor) first
        for camera in spec.canvas.cameras:
            context = rclpy.Context()
            rclpy.init(context=context)
            node = rclpy.create_node(f"lightwam_bench_camera_{camera.role}", context=context)
            self._cameras.append((context, node))
            size = camera.source_size or (camera.height, camera.width)
            rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            publisher = node.create_publisher(Image, policy[f"cameras.{camera.role}.topic"], 10)
            self.frames.append((publisher, rgb_to_image(rgb, 1.0, camera.role)))
        names = StateBuilder(spec, default_chains(spec)).joint_names
        middle = [float(np.mean(spec.joint_limit(name))) for name in names]
        self.joints = (
            probe.publisher(JointState, policy["joint_state_topic"]),
            make_joint_state(names, middle, 1.0),
        )
        self.request = (probe.publisher(Empty, policy["request_topic"]), Empty())

    def close(self) -> None:
        for context, node in self._cameras:
            node.destroy_node()
            rclpy.shutdown(context=context)

    def matched(self) -> bool:
        """Every publisher has the policy node as a subscriber (discovery finished)."""
        publishers = [pub for pub, _ in (*self.frames, self.joints, self.request)]
        return all(pub.get_subscription_count() > 0 for pub in publishers)

    def send(self, stamp_ns: int) -> None:
        for publisher, msg in (*self.frames, self.joints):
            msg.header.stamp = nanoseconds_to_stamp(stamp_ns)
            publisher.publish(msg)

    def send_and_request(self, stamp_ns: int) -> None:
        self.send(stamp_ns)
        publisher, msg = self.request
        publisher.publish(msg)


def measure_overhead(
    embodiment: str, model: ModelFiles, requests: int, warmup: int, diagnostics_rate: float, seed: int
) -> dict[str, Any]:
    plan = build_plan(
        BringupOptions(
            embodiment,
            params=_overrides("policy", device="cpu", trigger="request", diagnostics_rate=diagnostics_rate),
        ),
        model,
    )
    policy = _effective_parameters(plan.node("policy"), embodiment)
    with Processes([plan.node("policy")]) as processes:
        probe = Probe(ProbeTopics(policy["chunk_topic"], policy["status_topic"], policy["diagnostics_topic"]))
        sender = ObservationSender(probe, embodiment, policy, seed)
        try:
            wait_ready(probe, processes)
            probe.wait_for(sender.matched, START_TIMEOUT, "the policy's subscriptions", processes)
            primed = _prime(probe, processes, sender)
            return _request_loop(Requester(probe, processes, sender, primed), requests, warmup)
        finally:
            sender.close()
            probe.close()


def _inputs_seen(probe: Probe) -> bool:
    """The latest policy diagnostics show a sample of every input stream."""
    ages = [value for key, value in probe.last_diagnostics("policy").items() if key.startswith("input_age_s")]
    return bool(ages) and "none" not in ages


def _prime(probe: Probe, processes: Processes, sender: ObservationSender) -> set[int]:
    """Send observations until the node holds one of every input, so that the first request
    finds inputs even when it overtakes its frames; the stamps sent."""
    deadline = time.monotonic() + START_TIMEOUT
    stamps = set()
    while True:
        stamp = time.time_ns()
        stamps.add(stamp)
        sender.send(stamp)
        try:
            probe.wait_for(lambda: _inputs_seen(probe), 0.5, "every input in the diagnostics", processes)
            return stamps
        except WaitTimeout:
            if time.monotonic() > deadline:
                raise


def _paired_diagnostics(probe: Probe, chunk: Any) -> Callable[[], dict[str, str] | None]:
    """The policy DiagnosticArray that describes exactly the prediction of ``chunk``."""
    latency, count = format_value(chunk.inference_latency), str(chunk.chunk_id + 1)

    def find() -> dict[str, str] | None:
        return next(
            (
                r.msg
                for r in reversed(probe.diagnostics[NODE_KINDS[POLICY].node_name])
                if r.msg.get("chunks_published") == count and r.msg.get("inference_latency_s") == latency
            ),
            None,
        )

    return find


def _status_text(probe: Probe) -> str:
    with probe.changed:
        status = probe.statuses[-1].msg
    return f"{POLICY_STATES.get(status.state, status.state)}: {status.message}"


class Requester:
    """One request at a time, each answered by a chunk or known to have none.

    A chunk answers the current request when it carries the request's stamp, or the stamp of a
    settled frame (the request overtook its frames and the node reused that one): the priming
    frames and those of earlier requests that got an answer.  A chunk stamped with the frame of
    an unanswered earlier request is that request's late answer and is skipped.  A sample is
    only ever taken from a chunk stamped with its own request's frame, so it cannot be mispaired.
    A request has no answer when the node counts it as skipped (it was busy), or after 10x the
    slowest answer so far (at least NO_CHUNK_TIMEOUT; the first request, which calibrates this,
    waits up to START_TIMEOUT).  Each request ends with a fresh policy DiagnosticArray, so the
    node is idle before the next one and its skipped count is current.
    """

    def __init__(
        self, probe: Probe, processes: Processes, sender: ObservationSender, settled: set[int]
    ) -> None:
        self.probe, self.processes, self.sender = probe, processes, sender
        self.settled = set(settled)
        self.slowest: float | None = None  # s, from a request to its answer

    def request(self) -> tuple[int, Received | None, dict[str, str] | None]:
        """The request's stamp, its answer (None: no chunk) and the answer's diagnostics."""
        probe = self.probe
        log = probe.diagnostics[NODE_KINDS[POLICY].node_name]
        skipped = int(probe.last_diagnostics("policy").get("skipped_ticks", 0))
        chunks_before = len(probe.chunks)
        stamp = time.time_ns()
        self.sender.send_and_request(stamp)

        def outcome() -> Received | str | None:
            answer = next(
                (
                    r
                    for r in probe.chunks[chunks_before:]
                    if stamp_to_nanoseconds(r.msg.header.stamp) in self.settled | {stamp}
                ),
                None,
            )
            if answer is None and int(probe.last_diagnostics("policy").get("skipped_ticks", 0)) > skipped:
                return "skipped"
            return answer

        timeout = START_TIMEOUT if self.slowest is None else max(NO_CHUNK_TIMEOUT, 10 * self.slowest)
        try:
            answer = probe.wait_for(outcome, timeout, "a chunk after a request", self.processes)
        except WaitTimeout:
            answer = None
        diagnostics = None
        if isinstance(answer, Received):
            self.slowest = max(self.slowest or 0.0, (answer.ns - stamp) * 1e-9)
            self.settled.add(stamp)
            diagnostics = probe.wait_for(
                _paired_diagnostics(probe, answer.msg),
                REPLY_TIMEOUT,
                f"the diagnostics of chunk #{answer.msg.chunk_id}",
                self.processes,
            )
        else:
            answer = None
        seen = len(log)
        probe.wait_for(lambda: len(log) > seen, REPLY_TIMEOUT, "the policy's diagnostics", self.processes)
        return stamp, answer, diagnostics


def _request_loop(requester: Requester, requests: int, warmup: int) -> dict[str, Any]:
    """``warmup`` + ``requests`` samples of requests answered from their own frame."""
    samples: list[dict[str, float]] = []
    older_frame = no_chunk = 0
    no_chunk_status: collections.Counter[str] = collections.Counter()
    while len(samples) < requests + warmup:
        if older_frame + no_chunk > 2 * (requests + warmup):
            raise BenchError(
                f"{older_frame} requests got a chunk from an older frame and "
                f"{no_chunk} none; only {len(samples)} got their own frame's; "
                f"policy status after those without: {dict(no_chunk_status)}"
            )
        stamp, received, diagnostics = requester.request()
        if received is None:
            no_chunk += 1  # busy, or the older inputs were too old by then
            no_chunk_status[_status_text(requester.probe)] += 1
            continue
        assert diagnostics is not None, "an answered request comes with the answer's diagnostics"
        chunk = received.msg
        if stamp_to_nanoseconds(chunk.header.stamp) != stamp:
            older_frame += 1
            continue
        stages = {stage: float(diagnostics[f"{stage}_ms"]) for stage in STAGES}
        end_to_end = (received.ns - stamp) * 1e-6
        model = sum(stages.values())
        samples.append(
            {
                "end_to_end": end_to_end,
                "model": model,
                "overhead": end_to_end - model,
                "in_node_before_model": chunk.inference_latency * 1e3 - model,
                "transport_and_messages": end_to_end - chunk.inference_latency * 1e3,
                **stages,
            }
        )
    measured = samples[warmup:]
    figures = {key: summarize([sample[key] for sample in measured]) for key in measured[0]}
    return {
        "requests": requests,
        "warmup_requests": warmup,
        "discarded_older_frame": older_frame,
        "discarded_no_chunk": no_chunk,
        "no_chunk_status": dict(no_chunk_status),
        "ms": figures,
        "goal_overhead_p50_ms": GOAL_OVERHEAD_P50_MS,
        "meets_goal": figures["overhead"]["p50"] <= GOAL_OVERHEAD_P50_MS,
    }


# ------------------------------------------------------------------------------------------
# (b) Executor timing
# ------------------------------------------------------------------------------------------


def measure_executor(
    embodiment: str, model: ModelFiles, seconds: float, control_rate: float
) -> dict[str, Any]:
    plan = build_plan(
        BringupOptions(
            embodiment,
            loopback_robot=True,
            params=_overrides("policy", device="cpu")
            + _overrides("executor", control_rate=control_rate, output_modes=["joint_trajectory"]),
        ),
        model,
    )
    observed = plan.observed
    assert observed is not None, "a loopback plan is observed"
    with Processes(plan.nodes) as processes:
        probe = Probe(
            ProbeTopics(
                observed.chunk_topic,
                observed.status_topic,
                observed.diagnostics_topic,
                (observed.command_type, observed.command_topic),
            )
        )
        try:
            wait_ready(probe, processes)
            probe.wait_for(
                lambda: probe.last_diagnostics("executor").get("state") == "RUNNING",
                START_TIMEOUT,
                "the executor to run a chunk",
                processes,
            )
            window = _record_window(probe, processes, seconds)
        finally:
            probe.close()
    return _executor_figures(window, observed.command_type, control_rate)


@dataclass(frozen=True)
class Window:
    seconds: float
    commands: list[tuple[int, bytes]]  # (receive time ns, serialized command)
    chunks: int
    executor: list[Received]  # diagnostics: the last before the window (if any), those within
    policy: tuple[dict[str, str], dict[str, str]]  # diagnostics before and after


def _record_window(probe: Probe, processes: Processes, seconds: float) -> Window:
    executor_log = probe.diagnostics[NODE_KINDS[EXECUTOR].node_name]
    with probe.changed:
        commands, chunks, diagnostics = len(probe.commands), len(probe.chunks), len(executor_log)
        policy_before = probe.last_diagnostics("policy")
    start = time.monotonic()
    probe.wait_for(
        lambda: time.monotonic() - start >= seconds, seconds + 1.0, "the end of the window", processes
    )
    with probe.changed:
        return Window(
            time.monotonic() - start,
            probe.commands[commands:],
            len(probe.chunks) - chunks,
            executor_log[max(diagnostics - 1, 0) :],
            (policy_before, probe.last_diagnostics("policy")),
        )


def _tick_stats(diagnostics: list[Received]) -> dict[str, float]:
    """The executor's TickStats over the window: counter differences between its first and last
    diagnostics, and the worst of the period figures each reports (over its last 1000 ticks)."""
    first, last = diagnostics[0], diagnostics[-1]
    during = [d.msg for d in diagnostics[1:]]

    def delta(key: str) -> int:
        return int(last.msg[key]) - int(first.msg[key])

    def worst(key: str) -> float:
        return max((float(values[key]) for values in during), default=math.nan)

    return {
        "span_s": (last.ns - first.ns) * 1e-9,
        "ticks": delta("ticks"),
        "missed_ticks": delta("missed_ticks"),
        "chunks_accepted": delta("chunks_accepted"),
        "period_p99_ms_worst": worst("tick_period_p99_ms"),
        "period_max_ms_worst": worst("tick_period_max_ms"),
        "diagnostics_in_window": len(during),
    }


def _executor_figures(window: Window, mode: str, control_rate: float) -> dict[str, Any]:
    if len(window.commands) < 2:
        raise BenchError(
            f"{len(window.commands)} executor commands arrived in the "
            f"{window.seconds:.1f} s window: nothing to time"
        )
    kind = command_type(mode)
    stamps = [stamp_to_nanoseconds(deserialize_message(raw, kind).header.stamp) for _, raw in window.commands]
    errors, missed = period_errors(stamps, 1.0 / control_rate)
    first, last = window.commands[0][0], window.commands[-1][0]
    period = summarize(errors)
    policy_before, policy_after = window.policy
    return {
        "seconds": window.seconds,
        "control_rate_hz": control_rate,
        "command_output": mode,
        "commands_received": len(stamps),
        "command_rate_hz": (len(stamps) - 1) / max((last - first) * 1e-9, 1e-9),
        "period_error_ms": period,
        "missed_ticks_from_stamps": missed,
        "goal_period_error_p99_ms": GOAL_PERIOD_ERROR_P99_MS,
        "meets_goal": period["p99"] <= GOAL_PERIOD_ERROR_P99_MS,
        "executor_tick_stats": _tick_stats(window.executor),
        "chunks_received": window.chunks,
        "policy_skipped_ticks": (
            int(policy_after.get("skipped_ticks", 0)) - int(policy_before.get("skipped_ticks", 0))
        ),
        "executor_state": window.executor[-1].msg.get("state", "unknown"),
    }


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def print_overhead(result: dict[str, Any]) -> None:
    ms = result["ms"]
    print(
        f"(a) ROS overhead of the policy node: {ms['overhead']['count']} requests after "
        f"{result['warmup_requests']} warm-up; discarded: {result['discarded_older_frame']} "
        f"answered from an older frame, {result['discarded_no_chunk']} without a chunk"
    )
    print(f"    {'':<46}{'p50 ms':>9}{'p90 ms':>9}{'max ms':>9}   goal")
    goal = f"p50 <= {result['goal_overhead_p50_ms']:g} ms: {'met' if result['meets_goal'] else 'NOT met'}"
    rows = (
        ("end-to-end (image stamp -> chunk received)", "end_to_end", ""),
        ("model (runner: preprocess..postprocess)", "model", ""),
        ("overhead = end-to-end - model", "overhead", goal),
        ("  in node before the model (assembly, state)", "in_node_before_model", ""),
        ("  transport, callbacks, chunk message", "transport_and_messages", ""),
    )
    for label, key, note in rows:
        cells = "".join(f"{ms[key][q]:>9.2f}" for q in ("p50", "p90", "max"))
        print(f"    {label:<46}{cells}   {note}")
    stages = ", ".join(f"{stage} {ms[stage]['p50']:.2f}" for stage in STAGES)
    print(f"    model stages, p50 ms: {stages}")


def print_executor(result: dict[str, Any]) -> None:
    error, ticks = result["period_error_ms"], result["executor_tick_stats"]
    print(
        f"(b) executor at {result['control_rate_hz']:g} Hz while the policy runs on its timer "
        f"({result['seconds']:.1f} s window, {result['command_output']} stamps)"
    )
    goal = f"p99 <= {result['goal_period_error_p99_ms']:g} ms: {'met' if result['meets_goal'] else 'NOT met'}"
    print(f"    {'':<46}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}   goal")
    cells = "".join(f"{error[q]:>9.3f}" for q in ("p50", "p99", "max"))
    print(f"    {'period error |dt - period| (command stamps)':<46}{cells}   {goal}")
    print(
        f"    commands received: {result['commands_received']}, "
        f"{result['command_rate_hz']:.1f} Hz at this receiver; ticks missing between their "
        f"stamps: {result['missed_ticks_from_stamps']}"
    )
    print(
        f"    executor TickStats over {ticks['span_s']:.1f} s: {ticks['ticks']} ticks, "
        f"{ticks['missed_ticks']} missed; worst reported period p99 "
        f"{ticks['period_p99_ms_worst']:.3f} ms, max {ticks['period_max_ms_worst']:.3f} ms"
    )
    print(
        f"    chunks during the window: {result['chunks_received']} received here, "
        f"{ticks['chunks_accepted']} accepted by the executor; policy ticks skipped (busy) "
        f"{result['policy_skipped_ticks']}; executor state {result['executor_state']}"
    )


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightwam-bench-ros",
        description="ROS overhead of the policy node, and executor timing at 500 Hz while the "
        "policy runs, with the nodes as separate processes on a tiny random-weight "
        "package (CPU).  Goals are printed, not asserted.",
    )
    parser.add_argument("--embodiment", choices=EMBODIMENTS, default=DEFAULT_EMBODIMENT)
    parser.add_argument(
        "--requests", type=int, default=50, help="measured requests for the overhead (default: 50)"
    )
    parser.add_argument(
        "--warmup-requests", type=int, default=3, help="requests before those, not measured (default: 3)"
    )
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="executor measurement window [s] (default: 20)"
    )
    parser.add_argument(
        "--control-rate", type=float, default=500.0, help="executor control rate [Hz] (default: 500)"
    )
    parser.add_argument(
        "--diagnostics-rate",
        type=float,
        default=50.0,
        help="policy diagnostics rate [Hz] in part (a), so that each chunk's "
        "timings follow it closely (default: 50)",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="folder for the tiny package (default: a temporary one)"
    )
    parser.add_argument("--seed", type=int, default=0, help="camera pixels in part (a)")
    parser.add_argument(
        "--json", type=Path, default=Path("bench_ros.json"), help="report file (default: bench_ros.json)"
    )
    return parser


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    model = ensure_tiny_package(args.embodiment, workdir)
    print(
        f"lightwam-bench-ros: {args.embodiment}, tiny random-weight preset on the CPU "
        f"({os.cpu_count()} cores); nodes as separate processes, ROS_DOMAIN_ID "
        f"{os.environ['ROS_DOMAIN_ID']}, discovery on loopback"
    )
    report: dict[str, Any] = {
        "embodiment": args.embodiment,
        "preset": "tiny",
        "device": "cpu",
        "cpu_count": os.cpu_count(),
        "goals": {"overhead_p50_ms": GOAL_OVERHEAD_P50_MS, "period_error_p99_ms": GOAL_PERIOD_ERROR_P99_MS},
    }
    report["overhead"] = measure_overhead(
        args.embodiment, model, args.requests, args.warmup_requests, args.diagnostics_rate, args.seed
    )
    print_overhead(report["overhead"])
    report["executor"] = measure_executor(args.embodiment, model, args.seconds, args.control_rate)
    print_executor(report["executor"])
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.requests < 1 or args.warmup_requests < 0:
        parser.error("--requests must be >= 1 and --warmup-requests >= 0")
    if not (args.seconds > 0 and args.control_rate > 0 and args.diagnostics_rate > 0):
        parser.error("--seconds, --control-rate and --diagnostics-rate must be > 0")
    os.environ.update(isolated_ros_env())  # before rclpy starts, here and in the children
    # SIGTERM unwinds like SIGINT does, so the nodes are stopped cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if args.workdir is not None:
            report = run(args, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="lightwam_bench_ros_") as workdir:
                report = run(args, Path(workdir))
    except (BenchError, PlanError, ParamFileError) as error:
        print(f"lightwam-bench-ros: {error}", file=sys.stderr)
        return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
