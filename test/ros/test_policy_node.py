"""The policy node in its own process, driven over real DDS by this process.

A tiny random-weight package (lightwam-make-tiny) stands in for the model.  This process plays the
robot: it publishes stamped camera images and joint states at 15 Hz and can stop a stream or make
it bad, then watches what the node publishes and logs.  Every wait is a condition with a deadline.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
PilImage = pytest.importorskip("PIL.Image")  # encodes the CompressedImage frames
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402
from std_msgs.msg import Empty, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from lightwam_ros.control.kinematics import panda_chain  # noqa: E402
from lightwam_ros.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from lightwam_ros.msg import ActionChunk, PolicyStatus  # noqa: E402
from lightwam_ros.nodes.image_conversion import rgb_to_image  # noqa: E402
from lightwam_ros.nodes.joint_state import make_joint_state  # noqa: E402
from lightwam_ros.nodes.policy_node import create_policy_node  # noqa: E402
from lightwam_ros.nodes.policy_visuals import PredictionVisuals  # noqa: E402
from lightwam_ros.nodes.stamps import (nanoseconds_to_stamp,  # noqa: E402
                                       stamp_to_nanoseconds, stamp_to_seconds)
from lightwam_ros.policy.embodiment import load_embodiment  # noqa: E402
from lightwam_ros.tools.make_tiny import make_tiny_package  # noqa: E402

CONFIG = Path(__file__).resolve().parents[2] / "config"
PUBLISH_PERIOD = 1 / 15
MAX_AGE = 0.6  # s, for every stream: generous, the 2-core CI machine is busy with inference
# Camera stamps differ per role, so a chunk stamp tells which camera's frame it carries.
ROLE_OFFSET_NS = {0: 0, 1: 3_000_000, 2: 6_000_000}
ALOHA_TASK = "beat the block with the hammer"
LIBERO_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def _wait(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class NodeProcess:
    """The policy node as a subprocess; its merged stdout/stderr lines are collected."""

    def __init__(self, parameters: dict[str, object], params_file: Path | None = None) -> None:
        args = [sys.executable, "-u", "-m", "lightwam_ros.nodes.policy_node", "--ros-args"]
        if params_file is not None:
            args += ["--params-file", str(params_file)]  # the -p values below override it
        for name, value in parameters.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{name}:={text}"]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, bufsize=1)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip())

    def wait_for_log(self, pattern: str, timeout: float, start: int = 0) -> str:
        regex = re.compile(pattern)
        return _wait(lambda: next((line for line in self.lines[start:] if regex.search(line)),
                                  None), timeout, f"a log line matching {pattern!r}; log:\n"
                     + "\n".join(self.lines[-30:]))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        return self.process.returncode


class Robot:
    """Publishes the inputs of one embodiment and records everything the policy node outputs."""

    def __init__(self, embodiment: str, joints: dict[str, float], chunk_topic: str,
                 compressed_roles: tuple[str, ...] = ()) -> None:
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
            for role in self.roles}
        self.joint_pub = node.create_publisher(JointState, "joint_states", 5)
        self.instruction_pub = node.create_publisher(String, "lightwam/instruction", 10)
        self.request_pub = node.create_publisher(Empty, "lightwam/request_chunk", 10)
        self.request_client = node.create_client(Trigger, "lightwam/request_chunk")
        self.joints = dict(joints)
        self.camera_modes = {role: "good" for role in self.roles}
        self.joint_mode = "good"
        self.sent: dict[str, list[int]] = {role: [] for role in self.roles}
        self.bad_sent: dict[str, list[int]] = {role: [] for role in self.roles}
        self.chunks: list[tuple[int, ActionChunk]] = []  # (status count when received, chunk)
        self.statuses: list[PolicyStatus] = []
        self.other_chunks: list[ActionChunk] = []
        self.trajectories: list[JointTrajectory] = []
        self.paths: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        other_topic = ("lightwam/shadow_chunk" if chunk_topic == "lightwam/action_chunk"
                       else "lightwam/action_chunk")
        node.create_subscription(ActionChunk, chunk_topic,
                                 lambda m: self.chunks.append((len(self.statuses), m)), 10)
        node.create_subscription(ActionChunk, other_topic, self.other_chunks.append, 10)
        node.create_subscription(PolicyStatus, "lightwam/policy_status", self.statuses.append,
                                 QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        node.create_subscription(JointTrajectory, "lightwam/predicted_trajectory",
                                 self.trajectories.append, 10)
        node.create_subscription(MarkerArray, "lightwam/predicted_path", self.paths.append, 10)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(node)
        self._running = True
        self._threads = [threading.Thread(target=self._spin, daemon=True),
                         threading.Thread(target=self._publish_loop, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def _publish_loop(self) -> None:
        frame = 0
        rng = np.random.default_rng(0)
        base = {role: rng.integers(0, 256, (*self.sizes[role], 3), dtype=np.uint8)
                for role in self.roles}
        while self._running:
            now = time.time_ns()
            for index, role in enumerate(self.roles):
                self._publish_camera(role, base[role] + np.uint8(frame % 256),
                                     now - ROLE_OFFSET_NS[index])
            self._publish_joints(now - 1_000_000)
            frame += 1
            time.sleep(PUBLISH_PERIOD)

    def _publish_camera(self, role: str, rgb: np.ndarray, stamp_ns: int) -> None:
        mode = self.camera_modes[role]
        if mode == "off":
            return
        if mode == "wrong_size":
            rgb = rgb[::2, ::2]
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
        msg = make_joint_state(names, positions, nanoseconds_to_stamp(stamp_ns))
        if mode == "nan":
            msg.position[names.index("fl_joint3")] = float("nan")
        elif mode == "missing":
            index = names.index("fr_joint7")
            msg.name = names[:index] + names[index + 1:]
            msg.position = positions[:index] + positions[index + 1:]
        self.joint_pub.publish(msg)

    # ---------------------------------------------------------------- queries

    def wait_for_status(self, state: int, timeout: float, contains: tuple[str, ...] = (),
                        start: int = 0) -> PolicyStatus:
        def match():
            return next((s for s in self.statuses[start:] if s.state == state
                         and all(text in s.message for text in contains)), None)
        return _wait(match, timeout, f"PolicyStatus {state} mentioning {contains}; got "
                     f"{[(s.state, s.message[:120]) for s in self.statuses[-5:]]}")

    def wait_for_chunks(self, count: int, timeout: float, start: int = 0) -> list[ActionChunk]:
        _wait(lambda: len(self.chunks) >= start + count, timeout,
              f"{count} chunks after #{start} (have {len(self.chunks)})")
        return [chunk for _, chunk in self.chunks[start:start + count]]

    def publish_instruction(self, task: str) -> None:
        _wait(lambda: self.instruction_pub.get_subscription_count() > 0, 10,
              "the node's instruction subscription")
        self.instruction_pub.publish(String(data=task))

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _png_message(rgb: np.ndarray, stamp_ns: int) -> CompressedImage:
    buffer = io.BytesIO()
    PilImage.fromarray(rgb).save(buffer, format="PNG", compress_level=1)
    msg = CompressedImage(format="png", data=buffer.getvalue())
    msg.header.stamp = nanoseconds_to_stamp(stamp_ns)
    return msg


def _call(client) -> object:
    """One Trigger call; the response when it succeeded, None when refused as busy."""
    future = client.call_async(Trigger.Request())
    response = _wait(lambda: future.done() and future.result(), 10, "a Trigger response")
    assert response.success or "still running" in response.message, response.message
    return response if response.success else None


def _aloha_joints() -> dict[str, float]:
    spec = load_embodiment("robotwin_aloha")
    joints = {}
    for arm in spec.arms:
        for name, limit in zip(arm.joints, arm.joint_limits):
            joints[name] = 0.5 * (limit.lower + limit.upper)
        joints[arm.gripper.joints[0]] = 0.02
    joints["fl_extra_camera_mount"] = 1.0  # a joint the policy does not use, listed first
    return dict(sorted(joints.items(), key=lambda item: item[0] != "fl_extra_camera_mount"))


@pytest.fixture(scope="class")
def aloha(tmp_path_factory):
    package = make_tiny_package("robotwin_aloha", tmp_path_factory.mktemp("aloha"))
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    node = NodeProcess({
        "checkpoint": package.checkpoint, "instruction_cache": package.instructions,
        "instruction": ALOHA_TASK, "warmup": 1, "joint_state_max_age": MAX_AGE,
        **{f"cameras.{role}.max_age": MAX_AGE for role in robot.roles},
        "cameras.right_wrist.size": "[240,320]"}, CONFIG / "policy_robotwin_aloha.yaml")
    try:
        yield package, robot, node
    finally:
        returncode = node.stop()
        robot.close()
        assert returncode == 0, "\n".join(node.lines[-30:])


class TestAlohaOnTimer:
    """One robotwin_aloha node (timer trigger) serves these tests in order; it stops after the
    class, before another node starts."""

    def test_chunks_carry_the_camera_stamp_increasing_ids_and_latency(self, aloha):
        package, robot, node = aloha
        robot.wait_for_status(PolicyStatus.READY, 60)
        chunks = robot.wait_for_chunks(3, 30)
        spec = robot.spec
        head, wrists = robot.roles[0], robot.roles[1:]
        ids = [chunk.chunk_id for chunk in chunks]
        assert ids == list(range(ids[0], ids[0] + 3))
        for chunk in chunks:
            assert (chunk.horizon, chunk.action_dim) == (32, 14)
            assert len(chunk.actions) == 32 * 14 and np.all(np.isfinite(chunk.actions))
            assert tuple(chunk.action_names) == spec.action.layout.dim_names
            assert (chunk.embodiment, chunk.action_mode) == ("robotwin_aloha", "absolute_joints")
            assert chunk.execute_steps == 24 and chunk.dt == pytest.approx(1 / spec.policy_rate_hz)
            stamp = stamp_to_nanoseconds(chunk.header.stamp)
            assert stamp in robot.sent[head]
            assert all(stamp not in robot.sent[role] for role in wrists)
            assert chunk.inference_latency > 0.0
            assert 0.0 <= chunk.observation_age <= MAX_AGE
            assert chunk.model_id == package.model_id and chunk.instruction == ALOHA_TASK
        # Nothing before READY: every chunk arrived after a READY status, none before warm-up ended.
        first_status_index = robot.chunks[0][0]
        assert any(s.state == PolicyStatus.READY for s in robot.statuses[:first_status_index])
        assert PolicyStatus.WARMING_UP in [s.state for s in robot.statuses]

        trajectory = _wait(lambda: robot.trajectories, 10, "a predicted trajectory")[0]
        assert len(trajectory.joint_names) == 14 and "fl_joint7" in trajectory.joint_names
        assert len(trajectory.points) == 24
        assert not robot.other_chunks, "nothing may appear on the shadow topic outside shadow mode"

        def skipped_ticks():
            for array in robot.diagnostics:
                values = {kv.key: kv.value for kv in array.status[0].values}
                if int(values.get("skipped_ticks", 0)) > 0 and "total_ms" in values:
                    return values
            return None
        # Inference (~2 s here) is far slower than 16.7 Hz: ticks are skipped, not queued.
        values = _wait(skipped_ticks, 10, "diagnostics reporting skipped ticks")
        assert float(values["total_ms"]) > 0.0


    def test_stale_camera_stops_chunks_and_names_the_camera(self, aloha):
        _, robot, node = aloha
        robot.wait_for_chunks(1, 30, start=len(robot.chunks) - 1)
        robot.camera_modes["left_wrist"] = "off"
        try:
            start = len(robot.statuses)
            status = robot.wait_for_status(PolicyStatus.WAITING_FOR_INPUT, 10,
                                           ("camera:left_wrist", "stale"), start=start)
            assert "right_wrist" not in status.message
            count = len(robot.chunks)
            time.sleep(1.5)
            assert len(robot.chunks) == count, "a chunk was published from a stale observation"
            node.wait_for_log(r"WAITING_FOR_INPUT.*left_wrist", 5)
        finally:
            robot.camera_modes["left_wrist"] = "good"
        start = len(robot.statuses)
        robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        robot.wait_for_status(PolicyStatus.READY, 5, start=start)


    def test_bad_inputs_are_logged_and_never_reach_a_chunk(self, aloha):
        _, robot, node = aloha
        robot.wait_for_chunks(1, 30, start=len(robot.chunks) - 1)
        log_start = len(node.lines)
        robot.camera_modes.update(head="bad_encoding", left_wrist="truncated",
                                  right_wrist="wrong_size")
        robot.joint_mode = "nan"
        try:
            node.wait_for_log(r"camera/head/image_raw.*unsupported image encoding '16UC1'", 10,
                              log_start)
            node.wait_for_log(r"camera/left_wrist/image_raw.*truncated", 10, log_start)
            node.wait_for_log(r"camera/right_wrist/image_raw.*120x160.*expected 240x320", 10,
                              log_start)
            node.wait_for_log(r"joint_states.*non-finite positions: fl_joint3=nan", 10, log_start)
            streams = ("camera:head", "camera:left_wrist", "camera:right_wrist", "joint_states")
            robot.wait_for_status(PolicyStatus.WAITING_FOR_INPUT, 10, streams,
                                  start=len(robot.statuses))
            count = len(robot.chunks)
            time.sleep(1.0)
            assert len(robot.chunks) == count

            robot.camera_modes.update(head="good", left_wrist="good", right_wrist="good")
            robot.joint_mode = "missing"
            node.wait_for_log(r"JointState lacks joints \['fr_joint7'\]", 10, log_start)
            status = robot.wait_for_status(PolicyStatus.WAITING_FOR_INPUT, 10, ("joint_states",),
                                           start=len(robot.statuses))
            assert "camera:" not in status.message
            count = len(robot.chunks)
            time.sleep(1.0)
            assert len(robot.chunks) == count
        finally:
            robot.camera_modes.update(head="good", left_wrist="good", right_wrist="good")
            robot.joint_mode = "good"
        robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        bad_heads = set(robot.bad_sent["head"])
        assert bad_heads and all(stamp_to_nanoseconds(c.header.stamp) not in bad_heads
                                 for _, c in robot.chunks)


    def test_unknown_instruction_is_logged_and_the_old_one_kept(self, aloha):
        _, robot, node = aloha
        log_start = len(node.lines)
        robot.publish_instruction("dance on the table")
        node.wait_for_log(r"unknown instruction 'dance on the table'.*keeping 'beat the block", 10,
                          log_start)
        [chunk] = robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        assert chunk.instruction == ALOHA_TASK
        robot.publish_instruction("stack the two blocks")
        _wait(lambda: any(c.instruction == "stack the two blocks" for _, c in robot.chunks), 20,
              "a chunk for the new instruction")


def test_bad_configuration_and_a_corrupt_checkpoint_exit_non_zero(tmp_path):
    package = make_tiny_package("robotwin_aloha", tmp_path)
    files = {"checkpoint": package.checkpoint, "instruction_cache": package.instructions}
    corrupt = tmp_path / "corrupt.safetensors"
    data = bytearray(package.checkpoint.read_bytes())
    data[-1] ^= 0xFF  # tensor data changed, header intact: found only when the weights load
    corrupt.write_bytes(bytes(data))
    runs = {  # all at once: each start-up mostly imports
        "instruction": (NodeProcess({**files, "instruction": "fly away"}), 2,
                        "parameter instruction 'fly away' is not in the instruction cache"),
        "embodiment": (NodeProcess({**files, "embodiment": "libero_franka"}), 2,
                       "parameter embodiment: 'libero_franka', but the checkpoint was trained "
                       "for 'robotwin_aloha'"),
        "corrupt": (NodeProcess({**files, "checkpoint": corrupt, "warmup": 0}), 1,
                    "cannot load the policy"),
    }
    for name, (node, code, message) in runs.items():
        assert node.process.wait(timeout=60) == code, (name, node.lines)
        node.stop()
        assert any(message in line for line in node.lines), (name, node.lines)


def test_libero_shadow_on_request_with_an_end_effector_path(tmp_path):
    package = make_tiny_package("libero_franka", tmp_path)
    joints = dict(zip(panda_chain().joint_names, LIBERO_Q))
    joints.update(panda_finger_joint1=0.03, panda_finger_joint2=0.03)
    robot = Robot("libero_franka", joints, "lightwam/shadow_chunk", compressed_roles=("wrist",))
    node = NodeProcess({"checkpoint": package.checkpoint,
                        "instruction_cache": package.instructions,
                        "instruction": "turn on the stove", "trigger": "request", "shadow": True,
                        "warmup": 1, "joint_state_max_age": MAX_AGE,
                        "cameras.wrist.compressed": True,
                        "cameras.wrist.topic": "camera/wrist/image_raw/compressed",
                        **{f"cameras.{role}.max_age": MAX_AGE for role in robot.roles}},
                       CONFIG / "policy_libero_franka.yaml")
    try:
        robot.wait_for_status(PolicyStatus.READY, 60)
        time.sleep(0.5)
        assert not robot.chunks, "request mode published without a request"
        assert robot.request_client.wait_for_service(timeout_sec=10)
        response = _wait(lambda: _call(robot.request_client), 10, "an accepted Trigger request")
        assert "inference started" in response.message
        [chunk] = robot.wait_for_chunks(1, 20)
        assert (chunk.horizon, chunk.action_dim, chunk.action_mode) == (32, 7, "delta_eef")
        assert chunk.header.frame_id == "panda_link0"
        assert stamp_to_nanoseconds(chunk.header.stamp) in robot.sent["agentview"]

        def request_by_topic():  # a message sent before DDS matched both ends is lost: resend
            robot.request_pub.publish(Empty())
            time.sleep(0.3)
            return len(robot.chunks) >= 2
        _wait(request_by_topic, 20, "a chunk requested by std_msgs/Empty")
        ids = [c.chunk_id for _, c in robot.chunks]
        assert ids == list(range(len(ids)))
        assert not robot.other_chunks, "shadow chunks must never reach the executable topic"

        markers = _wait(lambda: robot.paths, 10, "the predicted path")[-1].markers
        line = next(m for m in markers if m.type == Marker.LINE_STRIP and m.id == 0)
        assert line.header.frame_id == "panda_link0" and len(line.points) == 11
        # The path is the chunk's deltas integrated from the observation's end-effector pose.
        line_time = stamp_to_seconds(line.header.stamp)
        drawn = next(c for _, c in robot.chunks
                     if abs(stamp_to_seconds(c.header.stamp) - line_time) < 1e-6)
        deltas = np.asarray(drawn.actions, dtype=np.float64).reshape(32, 7)
        start = panda_chain().forward(LIBERO_Q)
        expected = PredictionVisuals(robot.spec).path_points(deltas, start)
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in line.points], expected[:11],
                                   atol=1e-6)
        assert not np.allclose(expected[10], expected[0]), "the path must move"
        assert not robot.trajectories, "delta-EEF chunks have no joint trajectory"
    finally:
        returncode = node.stop()
        robot.close()
    assert returncode == 0, "\n".join(node.lines[-30:])


def test_refused_chunks_are_reported_and_the_in_process_node_keeps_running(tmp_path, capfd):
    """Statistics that put every prediction far outside the joint limits: each chunk fails
    validation, is logged and reported as ERROR, never published, and the node carries on."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    loaded = load_checkpoint(package.checkpoint)
    stats = copy.deepcopy(loaded.meta.stats)
    stats["action"]["default"]["global_mean"][0] = 100.0  # fl_joint1 around 100 rad
    save_checkpoint(package.checkpoint, loaded.model, dataclasses.replace(loaded.meta, stats=stats))
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    context = rclpy.Context()
    rclpy.init(context=context)
    node = create_policy_node(context=context, parameter_overrides=[
        Parameter("checkpoint", value=str(package.checkpoint)),
        Parameter("instruction_cache", value=str(package.instructions)),
        Parameter("instruction", value=ALOHA_TASK), Parameter("warmup", value=0),
        Parameter("joint_state_max_age", value=MAX_AGE),
        *(Parameter(f"cameras.{role}.max_age", value=MAX_AGE) for role in robot.roles)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        error = robot.wait_for_status(PolicyStatus.ERROR, 60, ("chunk refused", "fl_joint1"))
        later = robot.wait_for_status(PolicyStatus.ERROR, 5,
                                      start=robot.statuses.index(error) + 1)
        assert node.fatal_error is None and later.chunks_published == 0
        assert not robot.chunks and not robot.trajectories
        assert "chunk refused, not published: invalid action chunk" in capfd.readouterr().err
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown(context=context)
        robot.close()


def test_path_points_follow_robosuite_scaling_and_clipping():
    visuals = PredictionVisuals(load_embodiment("libero_franka"))
    start = panda_chain().forward(LIBERO_Q)
    deltas = np.zeros((3, 7))
    deltas[:, 0] = [1.0, 2.0, -0.5]  # 2.0 is clipped to the controller's bound 1.0
    deltas[:, 5] = 1.0  # rotation does not move the tool point's position in this model
    points = visuals.path_points(deltas, start)
    np.testing.assert_allclose(points[:, 0] - start.position[0], [0.0, 0.05, 0.10, 0.075])
    np.testing.assert_allclose(points[:, 1:], np.tile(start.position[1:], (4, 1)))
    assert visuals.frame_id == "panda_link0" and visuals.path_arm == "arm"
    aloha = PredictionVisuals(load_embodiment("robotwin_aloha"))
    assert aloha.path_arm is None and aloha.frame_id == ""
