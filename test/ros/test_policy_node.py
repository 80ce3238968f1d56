"""The policy node in its own process, driven over real DDS by this process.

A tiny random-weight package (lightwam-make-tiny) stands in for the model.  This process plays the
robot: it publishes stamped camera images and joint states at 15 Hz and can stop a stream or make
it bad, then watches what the node publishes and logs.  Every wait is a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("PIL.Image")  # encodes the CompressedImage frames
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from ros_harness import (  # noqa: E402
    ALOHA_TASK,
    CONFIG,
    MAX_AGE,
    NodeProcess,
    Robot,
    change_state,
    quiet,
    set_action_stats,
    spin_in_background,
    wait_until,
)
from std_msgs.msg import Empty  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lightwam_ros.msg import PolicyStatus  # noqa: E402
from lightwam_ros.nodes.policy_node import PolicyNode, create_policy_node  # noqa: E402
from lightwam_ros.policy.embodiment import load_embodiment  # noqa: E402
from lightwam_ros.policy.kinematics import arm_chain  # noqa: E402
from lightwam_ros.policy.normalization import Normalizer  # noqa: E402
from lightwam_ros.policy.runner import PolicyRunner  # noqa: E402
from lightwam_ros.ros.stamps import stamp_to_nanoseconds  # noqa: E402
from lightwam_ros.tools.assets.make_tiny import TinyPackage, make_tiny_package  # noqa: E402

LIBERO_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])


def _call(client) -> object:
    """One Trigger call; the response when it succeeded, None when refused as busy."""
    future = client.call_async(Trigger.Request())
    response = wait_until(lambda: future.done() and future.result(), 10, "a Trigger response")
    assert response.success or "still running" in response.message, response.message
    return response if response.success else None


def _aloha_joints() -> dict[str, float]:
    spec = load_embodiment("robotwin_aloha")
    joints = {}
    for arm in spec.arms:
        for name, limit in zip(arm.joints, arm.joint_limits, strict=True):
            joints[name] = 0.5 * (limit.lower + limit.upper)
        joints[arm.gripper.joints[0]] = 0.02
    joints["fl_extra_camera_mount"] = 1.0  # a joint the policy does not use, listed first
    return dict(sorted(joints.items(), key=lambda item: item[0] != "fl_extra_camera_mount"))


@pytest.fixture(scope="class")
def aloha(tmp_path_factory):
    package = make_tiny_package("robotwin_aloha", tmp_path_factory.mktemp("aloha"))
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    node = NodeProcess(
        "policy_node",
        {
            "checkpoint": package.checkpoint,
            "instruction_cache": package.instructions,
            "instruction": ALOHA_TASK,
            "warmup": 1,
            "joint_state_max_age": MAX_AGE,
            **{f"cameras.{role}.max_age": MAX_AGE for role in robot.roles},
            "cameras.right_wrist.size": "[240,320]",
        },
        CONFIG / "policy_robotwin_aloha.yaml",
    )
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
        package, robot, _ = aloha
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
        # Nothing before READY: no status from before READY counts a published chunk (statuses
        # carry the count, so this holds in whatever order the two topics' messages arrive).
        early = [s for s in robot.statuses if s.state in (PolicyStatus.STARTING, PolicyStatus.WARMING_UP)]
        assert PolicyStatus.WARMING_UP in [s.state for s in early]
        assert all(s.chunks_published == 0 for s in early)

        assert not robot.other_chunks, "nothing may appear on the shadow topic outside shadow mode"

        def skipped_ticks():
            for array in robot.diagnostics:
                values = {kv.key: kv.value for kv in array.status[0].values}
                if int(values.get("skipped_ticks", 0)) > 0 and "total_ms" in values:
                    return values
            return None

        # Inference (~2 s here) is far slower than 16.7 Hz: ticks are skipped, not queued.
        values = wait_until(skipped_ticks, 10, "diagnostics reporting skipped ticks")
        assert float(values["total_ms"]) > 0.0

    def test_stale_camera_stops_chunks_and_names_the_camera(self, aloha):
        _, robot, node = aloha
        robot.wait_for_chunks(1, 30, start=len(robot.chunks) - 1)
        robot.camera_modes["left_wrist"] = "off"
        try:
            start = len(robot.statuses)
            status = robot.wait_for_status(
                PolicyStatus.WAITING_FOR_INPUT, 10, ("camera:left_wrist", "stale"), start=start
            )
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
        robot.camera_modes.update(head="bad_encoding", left_wrist="truncated", right_wrist="wrong_size")
        robot.joint_mode = "nan"
        try:
            node.wait_for_log(r"camera/head/image_raw.*unsupported image encoding '16UC1'", 10, log_start)
            node.wait_for_log(r"camera/left_wrist/image_raw.*truncated", 10, log_start)
            node.wait_for_log(r"camera/right_wrist/image_raw.*120x160.*expected 240x320", 10, log_start)
            node.wait_for_log(r"joint_states.*non-finite positions: fl_joint3=nan", 10, log_start)
            streams = ("camera:head", "camera:left_wrist", "camera:right_wrist", "joint_states")
            robot.wait_for_status(PolicyStatus.WAITING_FOR_INPUT, 10, streams, start=len(robot.statuses))
            count = len(robot.chunks)
            time.sleep(1.0)
            assert len(robot.chunks) == count

            robot.camera_modes.update(head="good", left_wrist="good", right_wrist="good")
            robot.joint_mode = "missing"
            node.wait_for_log(r"JointState lacks joints \['fr_joint7'\]", 10, log_start)
            status = robot.wait_for_status(
                PolicyStatus.WAITING_FOR_INPUT, 10, ("joint_states",), start=len(robot.statuses)
            )
            assert "camera:" not in status.message
            count = len(robot.chunks)
            time.sleep(1.0)
            assert len(robot.chunks) == count
        finally:
            robot.camera_modes.update(head="good", left_wrist="good", right_wrist="good")
            robot.joint_mode = "good"
        robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        bad_heads = set(robot.bad_sent["head"])
        assert bad_heads and all(
            stamp_to_nanoseconds(c.header.stamp) not in bad_heads for _, c in robot.chunks
        )

    def test_unknown_instruction_is_logged_and_the_old_one_kept(self, aloha):
        _, robot, node = aloha
        log_start = len(node.lines)
        robot.publish_instruction("dance on the table")
        node.wait_for_log(r"unknown instruction 'dance on the table'.*keeping 'beat the block", 10, log_start)
        [chunk] = robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        assert chunk.instruction == ALOHA_TASK
        robot.publish_instruction("stack the two blocks")
        wait_until(
            lambda: any(c.instruction == "stack the two blocks" for _, c in robot.chunks),
            20,
            "a chunk for the new instruction",
        )

    def test_instruction_parameter_changes_the_task_at_run_time_and_others_refuse(self, aloha):
        _, robot, _ = aloha
        client = AsyncParameterClient(robot.node, "lightwam_policy")
        assert client.wait_for_services(10.0)

        def set_parameter(name, value):
            future = client.set_parameters([Parameter(name, value=value)])
            wait_until(future.done, 10, f"the answer to setting {name}")
            return future.result().results[0]

        refused = set_parameter("instruction", "fly away")
        assert not refused.successful
        assert "'fly away' is not in the instruction cache" in refused.reason
        refused = set_parameter("rate", 1.0)
        assert not refused.successful and "read at start only" in refused.reason
        for task in ("stack the two blocks", ALOHA_TASK):
            assert set_parameter("instruction", task).successful
            start = len(robot.chunks)
            wait_until(
                lambda task=task, start=start: any(c.instruction == task for _, c in robot.chunks[start:]),
                20,
                f"a chunk for {task!r}",
            )

    def test_a_huge_unknown_instruction_gives_one_short_warning(self, aloha):
        _, robot, node = aloha
        log_start = len(node.lines)
        for _ in range(20):
            robot.publish_instruction("x" * 1_000_000)
        node.wait_for_log(r"unknown instruction 'xxx+\.\.\. \(1000002 chars\) is not in the ", 10, log_start)
        time.sleep(1.5)  # the rest arrive; the policy keeps its instruction meanwhile
        lines = [line for line in node.lines[log_start:] if "unknown instruction" in line]
        # Messages still arriving a second after the first may give one throttled line more.
        assert len(lines) == 1 or (len(lines) == 2 and "similar reports left out" in lines[1])
        assert all(len(line) < 600 for line in lines), [len(line) for line in lines]
        [chunk] = robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        assert chunk.instruction != "x" * 1_000_000

    @pytest.mark.parametrize(
        "stream, mode, log_pattern",
        [
            # Stamps 5 s behind, more than max_age: the stream restarts (once), then is stale.
            pytest.param(
                "camera:head",
                "backwards",
                r"camera/head/image_raw: stream 'camera:head' restarted: stamp [\d.]+ is "
                r"[45]\.\d+ s before the previous one, more than its max_age",
                id="camera_stamps_backwards",
            ),
            pytest.param(
                "joint_states",
                "backwards",
                r"joint_states: stream 'joint_states' restarted: stamp [\d.]+ is [45]\.\d+ s "
                r"before the previous one, more than its max_age",
                id="joint_stamps_backwards",
            ),
            pytest.param(
                "joint_states",
                "inf",
                r"dropped input from joint_states \(joint_states\): JointState has "
                r"non-finite positions: fl_joint3=inf",
                id="inf_joint_position",
            ),
        ],
    )
    def test_a_bad_stream_goes_stale_and_no_chunk_uses_it(self, aloha, stream, mode, log_pattern):
        """Every sample of the stream is refused (named in the log); once the last good one ages
        out the node waits, naming the stream, and publishes nothing until the stream is good."""
        _, robot, node = aloha
        robot.wait_for_chunks(1, 30, start=len(robot.chunks) - 1)
        log_start = len(node.lines)
        if stream == "joint_states":
            robot.joint_mode = mode
        else:
            robot.camera_modes["head"] = mode
        try:
            node.wait_for_log(log_pattern, 10, log_start)
            status = robot.wait_for_status(
                PolicyStatus.WAITING_FOR_INPUT, 10, (stream, "stale"), start=len(robot.statuses)
            )
            assert status.message.count("stale") == 1, status.message  # only this stream
            count = len(robot.chunks)
            time.sleep(1.0)
            assert len(robot.chunks) == count, "a chunk was published while the input was bad"
        finally:
            robot.joint_mode = "good"
            robot.camera_modes["head"] = "good"
        robot.wait_for_chunks(1, 20, start=len(robot.chunks))
        bad_heads = set(robot.bad_sent["head"])
        assert all(stamp_to_nanoseconds(c.header.stamp) not in bad_heads for _, c in robot.chunks)


def test_bad_configuration_and_a_corrupt_checkpoint_exit_non_zero(tmp_path):
    package = make_tiny_package("robotwin_aloha", tmp_path)
    files = {"checkpoint": package.checkpoint, "instruction_cache": package.instructions}
    corrupt = tmp_path / "corrupt.safetensors"
    data = bytearray(package.checkpoint.read_bytes())
    data[-1] ^= 0xFF  # tensor data changed, header intact: found only when the weights load
    corrupt.write_bytes(bytes(data))
    runs = {  # all at once: each start-up mostly imports
        "instruction": (
            NodeProcess("policy_node", {**files, "instruction": "fly away"}),
            2,
            "parameter instruction 'fly away' is not in the instruction cache",
        ),
        "embodiment": (
            NodeProcess("policy_node", {**files, "embodiment": "libero_franka"}),
            2,
            "parameter embodiment: 'libero_franka', but the checkpoint was trained for 'robotwin_aloha'",
        ),
        "corrupt": (
            NodeProcess("policy_node", {**files, "checkpoint": corrupt, "warmup": 0}),
            1,
            "cannot load the policy",
        ),
    }
    for name, (node, code, message) in runs.items():
        assert node.process.wait(timeout=60) == code, (name, node.lines)
        node.stop()
        assert any(message in line for line in node.lines), (name, node.lines)


def test_a_signal_during_warm_up_ends_the_process_cleanly(tmp_path):
    """Ctrl-C (SIGINT) or ros2 launch's SIGTERM while the model warms up: the node stops between
    passes and exits 0, instead of aborting with a worker thread inside torch."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    files = {"checkpoint": package.checkpoint, "instruction_cache": package.instructions}
    nodes = {
        signum: NodeProcess("policy_node", {**files, "warmup": 100000})
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    for signum, node in nodes.items():
        node.wait_for_log(r"WARMING_UP: 100000 warm-up passes", 60)
        node.process.send_signal(signum)
    for signum, node in nodes.items():
        assert node.process.wait(timeout=30) == 0, (signum, node.lines)
        node.stop()
        assert not any("terminate called" in line or "Traceback" in line for line in node.lines), node.lines


def test_libero_shadow_on_request(tmp_path):
    package = make_tiny_package("libero_franka", tmp_path)
    joints = dict(
        zip(arm_chain(load_embodiment("libero_franka").arm("arm")).joint_names, LIBERO_Q, strict=True)
    )
    joints.update(panda_finger_joint1=0.03, panda_finger_joint2=0.03)
    robot = Robot("libero_franka", joints, "lightwam/shadow_chunk", compressed_roles=("wrist",))
    node = NodeProcess(
        "policy_node",
        {
            "checkpoint": package.checkpoint,
            "instruction_cache": package.instructions,
            "instruction": "turn on the stove",
            "trigger": "request",
            "shadow": True,
            "warmup": 1,
            "joint_state_max_age": MAX_AGE,
            # Switched to compressed without a topic: the file's image topic + /compressed.
            "cameras.wrist.compressed": True,
            **{f"cameras.{role}.max_age": MAX_AGE for role in robot.roles},
        },
        CONFIG / "policy_libero_franka.yaml",
    )
    try:
        robot.wait_for_status(PolicyStatus.READY, 60)
        time.sleep(0.5)
        assert not robot.chunks, "request mode published without a request"
        assert robot.request_client.wait_for_service(timeout_sec=10)
        response = wait_until(lambda: _call(robot.request_client), 10, "an accepted Trigger request")
        assert "inference started" in response.message
        [chunk] = robot.wait_for_chunks(1, 20)
        assert (chunk.horizon, chunk.action_dim, chunk.action_mode) == (32, 7, "delta_eef")
        assert chunk.header.frame_id == "panda_link0"
        assert stamp_to_nanoseconds(chunk.header.stamp) in robot.sent["agentview"]

        def request_by_topic():  # a message sent before DDS matched both ends is lost: resend
            robot.request_pub.publish(Empty())
            time.sleep(0.3)
            return len(robot.chunks) >= 2

        wait_until(request_by_topic, 20, "a chunk requested by std_msgs/Empty")
        ids = [c.chunk_id for _, c in robot.chunks]
        assert ids == list(range(len(ids)))
        assert not robot.other_chunks, "shadow chunks must never reach the executable topic"
    finally:
        returncode = node.stop()
        robot.close()
    assert returncode == 0, "\n".join(node.lines[-30:])


@contextlib.contextmanager
def _in_process_policy(
    package: TinyPackage, roles: list[str], extra: Sequence[Parameter] = ()
) -> Iterator[PolicyNode]:
    """A robotwin_aloha policy node in this process (so a test can patch it), spinning."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = create_policy_node(
        context=context,
        parameter_overrides=[
            Parameter("checkpoint", value=str(package.checkpoint)),
            Parameter("instruction_cache", value=str(package.instructions)),
            Parameter("instruction", value=ALOHA_TASK),
            Parameter("warmup", value=0),
            Parameter("joint_state_max_age", value=MAX_AGE),
            *(Parameter(f"cameras.{role}.max_age", value=MAX_AGE) for role in roles),
            *extra,
        ],
    )
    executor, spinner = spin_in_background(context, [node])
    try:
        yield node
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_lifecycle_transitions_configure_activate_and_deactivate_the_policy(tmp_path):
    """A managed policy (autostart false): configure with a missing checkpoint fails with the
    reason and leaves it unconfigured; once the parameter is fixed, configure loads the model
    (READY, inactive, no chunk); activate starts the chunks, deactivate stops them, activate
    starts them again."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    missing = tmp_path / "missing.safetensors"
    managed = [Parameter("autostart", value=False), Parameter("checkpoint", value=str(missing))]
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    try:
        with _in_process_policy(package, robot.roles, managed) as node:
            name = node.get_name()
            assert not change_state(robot.node, name, Transition.TRANSITION_CONFIGURE)
            reason = node.fatal_error
            assert reason is not None and "checkpoint" in reason and str(missing) in reason, reason
            assert "\n" not in reason and len(reason) < 500
            client = AsyncParameterClient(robot.node, name)
            assert client.wait_for_services(10.0)
            future = client.set_parameters([Parameter("checkpoint", value=str(package.checkpoint))])
            wait_until(future.done, 10, "the checkpoint parameter to be set")
            assert future.result().results[0].successful, "unconfigured: every parameter may change"

            assert change_state(robot.node, name, Transition.TRANSITION_CONFIGURE)
            assert node.fatal_error is None
            ready = robot.wait_for_status(PolicyStatus.READY, 10, ("inactive",))
            assert ready.chunks_published == 0 and not robot.chunks

            assert change_state(robot.node, name, Transition.TRANSITION_ACTIVATE)
            robot.wait_for_chunks(1, 60)
            assert change_state(robot.node, name, Transition.TRANSITION_DEACTIVATE)
            # Longer than an inference (~2 s here): one in flight ends unpublished.
            wait_until(quiet(robot.chunks, 3.0), 10, "the chunks to stop")
            published = len(robot.chunks)
            status = robot.wait_for_status(PolicyStatus.READY, 5, ("inactive",), start=len(robot.statuses))
            assert status.chunks_published == published

            assert change_state(robot.node, name, Transition.TRANSITION_ACTIVATE)
            [chunk] = robot.wait_for_chunks(1, 60, start=published)
            assert chunk.chunk_id == published
    finally:
        robot.close()


def test_a_camera_can_be_subscribed_reliably_and_the_others_stay_best_effort(tmp_path):
    package = make_tiny_package("robotwin_aloha", tmp_path)
    roles = ["head", "left_wrist", "right_wrist"]
    with _in_process_policy(package, roles, [Parameter("cameras.head.reliable", value=True)]) as node:
        reliability = {sub.topic_name: sub.qos_profile.reliability for sub in node.subscriptions}
    assert reliability["/camera/head/image_raw"] == ReliabilityPolicy.RELIABLE
    assert reliability["/camera/left_wrist/image_raw"] == ReliabilityPolicy.BEST_EFFORT
    assert reliability["/camera/right_wrist/image_raw"] == ReliabilityPolicy.BEST_EFFORT


def test_meaningless_chunks_are_refused_and_the_in_process_node_keeps_running(tmp_path, monkeypatch):
    """A prediction with a NaN in fl_joint1: each chunk is refused, reported as ERROR, never
    published, and the node carries on."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    real_denormalize = Normalizer.denormalize_action

    def nan_in_fl_joint1(self, action):
        actions = real_denormalize(self, action)
        actions[..., 0] = np.nan
        return actions

    monkeypatch.setattr(Normalizer, "denormalize_action", nan_in_fl_joint1)
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    try:
        with _in_process_policy(package, robot.roles) as node:
            error = robot.wait_for_status(PolicyStatus.ERROR, 60, ("chunk refused", "fl_joint1"))
            later = robot.wait_for_status(PolicyStatus.ERROR, 5, start=robot.statuses.index(error) + 1)
            assert node.fatal_error is None and later.chunks_published == 0
            assert not robot.chunks
    finally:
        robot.close()


def test_chunks_past_the_joint_limits_are_published_for_the_executor_to_judge(tmp_path):
    """The executor owns joint limits: the policy publishes a finite chunk whatever its values
    (statistics that put fl_joint1 around 100 rad, far past its limit)."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    set_action_stats(package.checkpoint, global_mean={0: 100.0})
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    try:
        with _in_process_policy(package, robot.roles) as node:
            [chunk] = robot.wait_for_chunks(1, 60)
            assert node.fatal_error is None
    finally:
        robot.close()
    actions = np.asarray(chunk.actions).reshape(chunk.horizon, chunk.action_dim)
    upper = robot.spec.joint_limit("fl_joint1")[1]
    assert np.all(actions[:, 0] > upper + 10.0)


def test_a_model_exception_is_reported_and_the_node_recovers(tmp_path, capfd, monkeypatch):
    """PolicyRunner.predict raising (as a CUDA fault would): logged, status ERROR, nothing
    published, the node keeps trying; once predict works again, chunks flow and it is READY."""
    package = make_tiny_package("robotwin_aloha", tmp_path)
    failing = threading.Event()
    failing.set()
    attempts: list[bool] = []  # whether each predict call failed
    real_predict = PolicyRunner.predict

    def flaky_predict(self, *args, **kwargs):
        attempts.append(failing.is_set())
        if failing.is_set():
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_predict(self, *args, **kwargs)

    monkeypatch.setattr(PolicyRunner, "predict", flaky_predict)
    robot = Robot("robotwin_aloha", _aloha_joints(), "lightwam/action_chunk")
    try:
        with _in_process_policy(package, robot.roles) as node:
            error = robot.wait_for_status(
                PolicyStatus.ERROR, 60, ("inference failed", "illegal memory access")
            )
            wait_until(lambda: attempts.count(True) >= 3, 20, "two more inference attempts")
            assert node.fatal_error is None and error.chunks_published == 0
            assert not robot.chunks
            assert re.search(
                r"inference failed: RuntimeError\('CUDA error: an illegal memory "
                r"access was encountered'\)",
                capfd.readouterr().err,
            )
            failing.clear()
            [chunk] = robot.wait_for_chunks(1, 30)
            assert stamp_to_nanoseconds(chunk.header.stamp) in robot.sent["head"]
            assert chunk.chunk_id == 0, "a chunk was published while predict failed"
            robot.wait_for_status(
                PolicyStatus.READY, 10, ("publishing chunks",), start=robot.statuses.index(error) + 1
            )
            assert node.fatal_error is None
    finally:
        robot.close()
