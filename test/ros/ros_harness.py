"""Shared test-side harness for the node tests: nodes as subprocesses, a fake robot, recorders.

The node tests (policy, executor, the two together) run real rclpy over real DDS.  This module
holds what they share, so each test file keeps only its scenarios:

- ``wait_until``: every wait is a condition with a deadline, never a fixed sleep;
- ``change_state``: a lifecycle transition through a managed node's service, as
  ``ros2 lifecycle set`` makes it;
- ``NodeProcess``: ``python -m lightwam_ros.nodes.<node> --ros-args ...`` with its log collected;
- ``Robot``: the policy's side of a robot (camera images and joint states at 15 Hz, which a test
  can stop or make bad) that records everything the policy publishes;
- ``Harness``: the executor's side of a robot (joint states that follow the executor's own
  commands at 100 Hz, a chunk source) that records the commands;
- ``assert_within_caps``: velocity and acceleration of recorded commands against the caps;
- ``set_action_stats``: edits a tiny package's action statistics (where its predictions land).

Import it after ``pytest.importorskip("rclpy")``: it imports rclpy at the top.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Bool, Empty, Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from lightwam_ros.model.checkpoint import load_checkpoint, save_checkpoint
from lightwam_ros.msg import ActionChunk, PolicyStatus
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.image_conversion import rgb_to_image
from lightwam_ros.ros.joint_state import make_joint_state
from lightwam_ros.ros.stamps import nanoseconds_to_stamp, seconds_to_stamp, stamp_to_nanoseconds
from lightwam_ros.tools.launch.child_process import ChildProcess

CONFIG = Path(__file__).resolve().parents[2] / "config"

# ------------------------------------------------------------------ robotwin_aloha constants

ALOHA_TASK = "beat the block with the hammer"
ALOHA_JOINTS = (
    "fl_joint1",
    "fl_joint2",
    "fl_joint3",
    "fl_joint4",
    "fl_joint5",
    "fl_joint6",
    "fl_joint7",
    "fr_joint1",
    "fr_joint2",
    "fr_joint3",
    "fr_joint4",
    "fr_joint5",
    "fr_joint6",
    "fr_joint7",
)
# A mid-range pose (rad for arm joints, m for the grippers); as actions the grippers are 0.5.
Q0 = np.array([0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0175, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0175])
A0 = Q0.copy()
A0[[6, 13]] = 0.5

# ------------------------------------------------------------------ policy-side robot

PUBLISH_PERIOD = 1 / 15
MAX_AGE = 0.6  # s, for every stream: generous, the 2-core CI machine is busy with inference
# Camera stamps differ per role, so a chunk stamp tells which camera's frame it carries.
ROLE_OFFSET_NS = {0: 0, 1: 3_000_000, 2: 6_000_000}
STAMP_JUMP_BACK_NS = 5_000_000_000  # how far a "backwards" stream's stamps lag its good stamps

# ------------------------------------------------------------------ executor topics

COMMAND_TOPIC = "lightwam/joint_command"
FORWARD_TOPIC = "forward_position_controller/commands"
TRAJECTORY_TOPIC = "joint_trajectory_controller/joint_trajectory"


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it is truthy and return its value; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.005)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def quiet(log: Sequence[object], seconds: float) -> Callable[[], bool]:
    """A condition for ``wait_until``: ``log`` (a list that a subscription appends to) has not
    grown for ``seconds``."""
    last = [len(log), time.monotonic()]

    def check() -> bool:
        if len(log) != last[0]:
            last[:] = [len(log), time.monotonic()]
            return False
        return time.monotonic() - last[1] >= seconds

    return check


def change_state(node: Node, target: str, transition: int, timeout: float = 60.0) -> bool:
    """Whether ``transition`` (a ``lifecycle_msgs/Transition`` id) of the managed node ``target``
    succeeded, asked through its ``change_state`` service from ``node`` (which must be spinning)."""
    client = node.create_client(ChangeState, f"{target}/change_state")
    try:
        assert client.wait_for_service(timeout_sec=10), f"no {target}/change_state service"
        future = client.call_async(ChangeState.Request(transition=Transition(id=transition)))
        wait_until(future.done, timeout, f"{target} to answer transition {transition}")
        return bool(future.result().success)
    finally:
        node.destroy_client(client)


class NodeProcess(ChildProcess):
    """``python -m lightwam_ros.nodes.<node>`` in its own process; its merged stdout/stderr lines
    are collected as they come, so a test can wait for a log line."""

    def __init__(
        self, node: str, parameters: Mapping[str, object] | None = None, params_file: Path | str | None = None
    ) -> None:
        args = [sys.executable, "-u", "-m", f"lightwam_ros.nodes.{node}", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]  # the -p values below override it
        for name, value in (parameters or {}).items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{name}:={text}"]
        env = dict(
            os.environ,
            PYTHONUNBUFFERED="1",
            RCUTILS_LOGGING_BUFFERED_STREAM="0",
            RCUTILS_COLORIZED_OUTPUT="0",
        )
        self.lines: list[str] = []
        super().__init__(args, self.lines.append, env=env)
        self.start_reading()

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """The first line from index ``since`` on that matches the regex ``pattern``."""
        regex = re.compile(pattern)

        def found():
            return next((line for line in self.lines[since:] if regex.search(line)), None)

        return wait_until(
            found,
            timeout,
            f"a log line matching {pattern!r}; lines so far:\n" + "\n".join(self.lines[since:][-30:]),
        )

    def stop(self) -> int:
        """SIGINT (escalating after 15 s), then the exit status; the log tail is printed, which
        pytest shows when the test fails."""
        code = super().stop()
        print(f"{self.process.args[3]} output:", *self.lines[-40:], sep="\n  ")
        return code


def spin_in_background(
    context: Context, nodes: Sequence[Node]
) -> tuple[SingleThreadedExecutor, threading.Thread]:
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    return executor, thread


def fresh_ros_context() -> Iterator[Context]:
    """An initialised rclpy context for the test's own nodes (wrap it with pytest.fixture)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


def set_action_stats(checkpoint: Path, **fields: Mapping[int, float]) -> None:
    """Overwrite entries of a package's action statistics in place, e.g.
    ``global_mean={0: 100.0}``: with z-score normalisation they decide where the random model's
    predictions land (mean + std * output)."""
    loaded = load_checkpoint(checkpoint)
    stats = copy.deepcopy(loaded.meta.stats)
    for key, values in fields.items():
        for index, value in values.items():
            stats["action"]["default"][key][index] = float(value)
    save_checkpoint(checkpoint, loaded.model, dataclasses.replace(loaded.meta, stats=stats))


# ------------------------------------------------------------------ the policy's robot


class Robot:
    """Publishes the inputs of one embodiment and records everything the policy node outputs.

    ``camera_modes`` (per role) and ``joint_mode`` switch a stream while it runs: ``good``,
    ``off``, or a fault: ``wrong_size``, ``bad_encoding``, ``truncated`` (cameras), ``nan``,
    ``inf``, ``missing`` (joints), ``backwards`` (stamps STAMP_JUMP_BACK_NS behind, both)."""

    def __init__(
        self,
        embodiment: str,
        joints: dict[str, float],
        chunk_topic: str,
        compressed_roles: tuple[str, ...] = (),
        joint_mode: str = "good",
    ) -> None:
        self.spec = load_embodiment(embodiment)
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node("policy_node_test_robot", context=self.context)
        node = self.node
        self.roles = [camera.role for camera in self.spec.canvas.cameras]
        self.sizes = {camera.role: camera.source_size for camera in self.spec.canvas.cameras}
        self.compressed_roles = compressed_roles
        self.camera_pubs = {
            role: node.create_publisher(CompressedImage, f"camera/{role}/image_raw/compressed", 5)
            if role in compressed_roles
            else node.create_publisher(Image, f"camera/{role}/image_raw", 5)
            for role in self.roles
        }
        self.joint_pub = node.create_publisher(JointState, "joint_states", 5)
        self.instruction_pub = node.create_publisher(String, "lightwam/instruction", 10)
        self.request_pub = node.create_publisher(Empty, "lightwam/request_chunk", 10)
        self.request_client = node.create_client(Trigger, "lightwam/request_chunk")
        self.joints = dict(joints)
        self.camera_modes = {role: "good" for role in self.roles}
        self.joint_mode = joint_mode
        self.sent: dict[str, list[int]] = {role: [] for role in self.roles}
        self.bad_sent: dict[str, list[int]] = {role: [] for role in self.roles}
        self.chunks: list[tuple[int, ActionChunk]] = []  # (status count when received, chunk)
        self.statuses: list[PolicyStatus] = []
        self.other_chunks: list[ActionChunk] = []
        self.diagnostics: list[DiagnosticArray] = []
        other_topic = (
            "lightwam/shadow_chunk" if chunk_topic == "lightwam/action_chunk" else "lightwam/action_chunk"
        )
        node.create_subscription(
            ActionChunk, chunk_topic, lambda m: self.chunks.append((len(self.statuses), m)), 10
        )
        node.create_subscription(ActionChunk, other_topic, self.other_chunks.append, 10)
        node.create_subscription(
            PolicyStatus,
            "lightwam/policy_status",
            self.statuses.append,
            QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL),
        )
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._running = True
        self._threads = [
            threading.Thread(target=self._spin, daemon=True),
            threading.Thread(target=self._publish_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def _publish_loop(self) -> None:
        frame = 0
        rng = np.random.default_rng(0)
        base = {role: rng.integers(0, 256, (*self.sizes[role], 3), dtype=np.uint8) for role in self.roles}
        while self._running:
            now = time.time_ns()
            for index, role in enumerate(self.roles):
                self._publish_camera(role, base[role] + np.uint8(frame % 256), now - ROLE_OFFSET_NS[index])
            self._publish_joints(now - 1_000_000)
            frame += 1
            time.sleep(PUBLISH_PERIOD)

    def _publish_camera(self, role: str, rgb: np.ndarray, stamp_ns: int) -> None:
        mode = self.camera_modes[role]
        if mode == "off":
            return
        if mode == "wrong_size":
            rgb = rgb[::2, ::2]
        elif mode == "backwards":
            stamp_ns -= STAMP_JUMP_BACK_NS
        if role in self.compressed_roles:
            msg = _png_message(rgb, stamp_ns)
        else:
            msg = rgb_to_image(rgb, nanoseconds_to_stamp(stamp_ns), role)
        if mode == "bad_encoding":
            msg.encoding = "16UC1"
        elif mode == "truncated":
            msg.data = bytes(msg.data)[: len(msg.data) // 2]
        (self.sent if mode == "good" else self.bad_sent)[role].append(stamp_ns)
        self.camera_pubs[role].publish(msg)

    def _publish_joints(self, stamp_ns: int) -> None:
        mode = self.joint_mode
        if mode == "off":
            return
        names, positions = list(self.joints), list(self.joints.values())
        if mode == "backwards":
            stamp_ns -= STAMP_JUMP_BACK_NS
        msg = make_joint_state(names, positions, nanoseconds_to_stamp(stamp_ns))
        if mode in ("nan", "inf"):
            msg.position[names.index("fl_joint3")] = float(mode)
        elif mode == "missing":
            index = names.index("fr_joint7")
            msg.name = names[:index] + names[index + 1 :]
            msg.position = positions[:index] + positions[index + 1 :]
        self.joint_pub.publish(msg)

    # ---------------------------------------------------------------- queries

    def wait_for_status(
        self, state: int, timeout: float, contains: tuple[str, ...] = (), start: int = 0
    ) -> PolicyStatus:
        def match():
            return next(
                (
                    s
                    for s in self.statuses[start:]
                    if s.state == state and all(text in s.message for text in contains)
                ),
                None,
            )

        return wait_until(
            match,
            timeout,
            f"PolicyStatus {state} mentioning {contains}; got "
            f"{[(s.state, s.message[:120]) for s in self.statuses[-5:]]}",
        )

    def wait_for_chunks(self, count: int, timeout: float, start: int = 0) -> list[ActionChunk]:
        wait_until(
            lambda: len(self.chunks) >= start + count,
            timeout,
            f"{count} chunks after #{start} (have {len(self.chunks)})",
        )
        return [chunk for _, chunk in self.chunks[start : start + count]]

    def publish_instruction(self, task: str) -> None:
        wait_until(
            lambda: self.instruction_pub.get_subscription_count() > 0,
            10,
            "the node's instruction subscription",
        )
        self.instruction_pub.publish(String(data=task))

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _png_message(rgb: np.ndarray, stamp_ns: int) -> CompressedImage:
    from PIL import Image as PilImage  # only the compressed-camera tests need Pillow

    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    msg = CompressedImage(format="png", data=buffer.getvalue())
    msg.header.stamp = nanoseconds_to_stamp(stamp_ns)
    return msg


# ------------------------------------------------------------------ the executor's robot


_COMMAND_ORIGIN_NS = time.time_ns()


def _decode_command(raw: bytes) -> Command:
    """(stamp s since the harness started, positions, velocities) of a JointState command.  The
    executor steps its safety filter by differences of integer-ns stamps; seconds from a recent
    origin keep those differences to ~1e-14 s, where float seconds since the epoch resolve only
    ~0.24 us, which would be 1e-4 of a 2 ms tick."""
    msg = deserialize_message(raw, JointState)
    return (
        (stamp_to_nanoseconds(msg.header.stamp) - _COMMAND_ORIGIN_NS) * 1e-9,
        np.array(msg.position),
        np.array(msg.velocity),
    )


Command = tuple[float, np.ndarray, np.ndarray]  # (stamp s since the harness started, positions, velocities)


class DecodedLog:
    """Received messages kept as bytes and decoded once, on first access (a read-only list)."""

    def __init__(self, decode: Callable[[bytes], object]) -> None:
        self._decode = decode
        self._raw: list[bytes] = []
        self._decoded: dict[int, object] = {}

    def append(self, raw: bytes) -> None:
        self._raw.append(raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, index: int | slice):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self._raw)))]
        index = range(len(self._raw))[index]  # negative indices, IndexError
        if index not in self._decoded:
            self._decoded[index] = self._decode(self._raw[index])
        return self._decoded[index]


class Harness:
    """The test's side of the executor's graph: a tracking 'robot', a 'policy' and recorders."""

    def __init__(
        self,
        context: Context,
        joint_names: Sequence[str],
        chunk_period: float = 0.1,
        joint_period: float = 0.01,
    ) -> None:
        self.node = Node("executor_test_harness", context=context)
        self.joint_names = list(joint_names)
        reliable = QoSProfile(depth=1000)
        self.joint_pub = self.node.create_publisher(JointState, "joint_states", 10)
        self.chunk_pub = self.node.create_publisher(ActionChunk, "lightwam/action_chunk", 10)
        self.estop_pub = self.node.create_publisher(Bool, "lightwam/estop", 10)
        self.reset_client = self.node.create_client(Trigger, "lightwam/reset")
        self.estop_client = self.node.create_client(Trigger, "lightwam/estop")
        self.commands = DecodedLog(_decode_command)  # (stamp s, positions, velocities)
        self.forward = []  # monotonic receive times
        self.trajectories = []
        self.poses = []
        self.diagnostics = {}
        # Raw subscriptions: at 500 Hz on two topics, decoding in the callback would make this
        # process, not the executor, the bottleneck on a 2-core machine.
        self.node.create_subscription(JointState, COMMAND_TOPIC, self.commands.append, reliable, raw=True)
        self.node.create_subscription(
            Float64MultiArray,
            FORWARD_TOPIC,
            lambda raw: self.forward.append(time.monotonic()),
            reliable,
            raw=True,
        )
        self.node.create_subscription(JointTrajectory, TRAJECTORY_TOPIC, self.trajectories.append, reliable)
        self.node.create_subscription(PoseStamped, "lightwam/target_pose", self.poses.append, reliable)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.start_positions = None  # what the 'robot' reports before any command
        self.joint_source = self.follow  # callable() -> JointState or None
        self.chunk_source = None  # callable(now) -> ActionChunk or None
        self.origin = 0.0  # time origin of the sine the good chunks sample
        self.node.create_timer(joint_period, self._publish_joint_state)
        self.node.create_timer(chunk_period, self._publish_chunk)

    # -------------------------------------------------------------- recorders

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith("lightwam_executor"):
                self.diagnostics = {kv.key: kv.value for kv in status.values}

    def state(self) -> tuple[str | None, str]:
        return self.diagnostics.get("state"), self.diagnostics.get("reason", "")

    # -------------------------------------------------------------- sources

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    def joint_state(
        self, positions: Sequence[float], names: Sequence[str] | None = None, stamp: float | None = None
    ) -> JointState:
        """A JointState for ``positions``, stamped now unless ``stamp`` (float s) is given."""
        msg = JointState(name=list(names or self.joint_names), position=list(positions))
        msg.header.stamp = seconds_to_stamp(self.now() if stamp is None else stamp)
        return msg

    def current(self) -> np.ndarray:
        return self.commands[-1][1] if self.commands else self.start_positions

    def follow(self) -> JointState:
        """A perfectly tracking arm: reports the last command as its position."""
        return self.joint_state(self.current())

    def _publish_joint_state(self):
        msg = self.joint_source()
        if msg is not None:
            self.joint_pub.publish(msg)

    def _publish_chunk(self):
        if self.chunk_source is not None:
            msg = self.chunk_source(self.now())
            if msg is not None:
                self.chunk_pub.publish(msg)

    def wait_for_executor(self) -> None:
        """Until the executor subscribes to our chunks (a chunk sent earlier would be lost)."""
        wait_until(
            lambda: self.chunk_pub.get_subscription_count() > 0, 10, "the executor's chunk subscription"
        )

    def reset(self) -> None:
        assert self.reset_client.wait_for_service(timeout_sec=10), "reset service not available"
        future = self.reset_client.call_async(Trigger.Request())
        wait_until(future.done, 10, "the reset service to answer")
        assert future.result().success

    # -------------------------------------------------------------- checks

    def commands_since(self, index: int) -> list[Command]:
        return self.commands[index:]

    def settled(self, since: int, count: int = 20) -> bool:
        """The last ``count`` commands (after index ``since``) are identical: the arm holds."""
        recent = self.commands[max(since, len(self.commands) - count) :]
        if len(recent) < count:
            return False
        return bool(np.ptp(np.array([c[1] for c in recent]), axis=0).max() < 1e-12)


def aloha_harness(context: Context) -> Iterator[Harness]:
    """A Harness reporting the aloha joints from Q0 on, spinning in a thread (a fixture body)."""
    helper = Harness(context, ALOHA_JOINTS)
    helper.start_positions = Q0
    executor, thread = spin_in_background(context, [helper.node])
    yield helper
    executor.shutdown()
    thread.join(timeout=5)
    helper.node.destroy_node()


def command_rates(commands: Sequence[Command]) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint velocities (N-1, D) and accelerations (at most N-2, D) of recorded commands, by
    finite differences on the commanded positions over their stamps.

    With the executor's clock arithmetic (see ``_decode_command``) a finite-difference velocity
    equals the velocity the executor sent with the later command, unless a command was lost in
    between; accelerations next to such a gap are left out, as they are not the executor's."""
    stamps = np.array([c[0] for c in commands])
    positions = np.array([c[1] for c in commands])
    reported = np.array([c[2] for c in commands])[1:]
    dt = np.diff(stamps)[:, None]
    assert np.all(dt > 0), "command stamps must increase"
    velocities = np.diff(positions, axis=0) / dt
    accelerations = np.diff(velocities, axis=0) / dt[1:]
    intact = np.all(np.abs(velocities - reported) <= 1e-9 * (1.0 + np.abs(reported)), axis=1)
    return velocities, accelerations[intact[:-1] & intact[1:]]


def assert_within_caps(
    commands: Sequence[Command], vmax: float | np.ndarray, amax: float | np.ndarray
) -> tuple[float, float]:
    """Consecutive commands respect the velocity cap (|dq| <= vmax dt) and the acceleration cap
    (|dv| <= amax dt), both by finite differences (``command_rates``); caps are scalars or per
    joint.  Returns the largest speed and acceleration."""
    velocities, accelerations = command_rates(commands)
    assert len(accelerations) >= 0.9 * (len(commands) - 2), (
        "over 10 % of the commands' velocities disagree with their positions (lost commands?)"
    )
    speed, accel = np.abs(velocities), np.abs(accelerations)
    vmax, amax = np.broadcast_to(vmax, speed.shape[1:]), np.broadcast_to(amax, accel.shape[1:])
    worst_v, worst_a = np.argmax((speed / vmax).max(axis=0)), np.argmax((accel / amax).max(axis=0))
    assert np.all(speed <= vmax * 1.001 + 1e-9), (
        f"velocity {speed[:, worst_v].max():.4f} above the cap {vmax[worst_v]} (joint {worst_v})"
    )
    assert np.all(accel <= amax * 1.001 + 1e-6), (
        f"acceleration {accel[:, worst_a].max():.4f} above cap {amax[worst_a]} (joint {worst_a})"
    )
    return float(speed.max()), float(accel.max())
