"""The chunk executor node with real rclpy: a node process (or an in-process node) driven over DDS.

The test side plays robot and policy: it publishes joint states that follow the executor's own
commands (a perfectly tracking arm) and action chunks, and records what the executor commands.
All waits are condition-based with deadlines.
"""

import array
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

rclpy = pytest.importorskip("rclpy")
from lifecycle_msgs.msg import Transition  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from ros_harness import (  # noqa: E402
    A0,
    ALOHA_JOINTS,
    COMMAND_TOPIC,
    CONFIG,
    FORWARD_TOPIC,
    Q0,
    STAMP_JUMP_BACK_NS,
    TRAJECTORY_TOPIC,
    Harness,
    NodeProcess,
    aloha_harness,
    assert_within_caps,
    change_state,
    fresh_ros_context,
    quiet,
    spin_in_background,
    wait_until,
)
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Empty  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from lightwam_ros.control.command_layout import ChunkLayoutError, CommandLayout  # noqa: E402
from lightwam_ros.control.executor_core import ChunkExecutorCore, ExecutorConfig  # noqa: E402
from lightwam_ros.control.safety import JointSafetyLimits  # noqa: E402
from lightwam_ros.model.config import make_config  # noqa: E402
from lightwam_ros.msg import ActionChunk  # noqa: E402
from lightwam_ros.nodes.executor_node import TickStats, create_executor_node  # noqa: E402
from lightwam_ros.nodes.reason_reporter import ReasonReporter  # noqa: E402
from lightwam_ros.policy.chunk import Chunk  # noqa: E402
from lightwam_ros.policy.embodiment import load_embodiment  # noqa: E402
from lightwam_ros.policy.kinematics import arm_chain  # noqa: E402
from lightwam_ros.policy.normalization import Normalizer  # noqa: E402
from lightwam_ros.policy.runner import PolicyRunner  # noqa: E402
from lightwam_ros.ros.chunk_messages import chunk_to_msg, msg_to_chunk  # noqa: E402
from lightwam_ros.ros.stamps import seconds_to_stamp, stamp_to_nanoseconds  # noqa: E402
from lightwam_ros.tools.assets.make_tiny import demo_tasks, plausible_stats, random_model, standin_cache  # noqa: E402

ALOHA = load_embodiment("robotwin_aloha")
ALOHA_ACTIONS = ALOHA.action.layout.dim_names
ARM = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0], dtype=float)  # moving columns
VMAX, AMAX = 1.0, 5.0
DT, HORIZON, EXECUTE = 0.06, 32, 24
STAMP_JUMP_BACK = STAMP_JUMP_BACK_NS * 1e-9
CONFIG_ALOHA = str(CONFIG / "executor_robotwin_aloha.yaml")
CONFIG_FRANKA = str(CONFIG / "executor_libero_franka.yaml")


def make_chunk(
    actions,
    stamp,
    names=ALOHA_ACTIONS,
    embodiment="robotwin_aloha",
    mode="absolute_joints",
    dt=DT,
    execute=EXECUTE,
    chunk_id=0,
):
    actions = np.asarray(actions, dtype=np.float64)
    msg = ActionChunk()
    msg.header.stamp = seconds_to_stamp(stamp)
    msg.chunk_id = chunk_id
    msg.embodiment = embodiment
    msg.action_mode = mode
    msg.action_names = list(names)
    msg.dt = dt
    msg.horizon, msg.action_dim = actions.shape
    msg.actions = actions.astype(np.float32).ravel().tolist()
    msg.execute_steps = execute
    return msg


def ramp_actions(start, end, stamp, t0, t1):
    """Chunk rows moving linearly from ``start`` (at time t0) to ``end`` (at t1), then holding."""
    times = stamp + DT * np.arange(1, HORIZON + 1)
    frac = np.clip((times - t0) / (t1 - t0), 0.0, 1.0)[:, None]
    return start + frac * (end - start)


def sine_actions(stamp, origin, amplitude=0.2, frequency=0.4):
    """A smooth reference every chunk samples consistently, like a policy tracking one motion."""
    times = stamp + DT * np.arange(1, HORIZON + 1) - origin
    return A0 + amplitude * np.sin(2 * np.pi * frequency * times)[:, None] * ARM


ros_context = pytest.fixture(fresh_ros_context)
class_ros_context = pytest.fixture(scope="class")(fresh_ros_context)


@pytest.fixture
def harness(ros_context):
    yield from aloha_harness(ros_context)


@pytest.fixture(scope="class")
def class_harness(class_ros_context):
    """One harness for a test class: discovery (seconds on 2 cores) is paid once."""
    yield from aloha_harness(class_ros_context)


# ------------------------------------------------------------------ rate and chunk boundary


def test_overlapping_chunks_are_executed_at_control_rate_without_jumps(harness):
    node = NodeProcess(
        "executor_node",
        dict(
            output_modes="[forward_command,joint_state]",
            max_velocity=VMAX,
            max_acceleration=AMAX,
            ramp_time=0.1,
            chunk_timeout=2.0,
            joint_state_timeout=0.3,
            diagnostics_rate=10.0,
        ),
        CONFIG_ALOHA,
    )
    try:
        wait_until(lambda: len(harness.commands) > 50, 20, "commands from the executor")
        harness.wait_for_executor()
        # Chunk A moves the arm joints +0.3 rad over 1.4 s; chunk B, 0.5 s later and overlapping A,
        # turns back to -0.2 rad: the boundary reverses the motion.
        t0 = harness.now()
        harness.chunk_pub.publish(
            make_chunk(ramp_actions(A0, A0 + 0.3 * ARM, t0, t0, t0 + 1.4), t0, chunk_id=1)
        )
        wait_until(lambda: harness.current()[0] > Q0[0] + 0.05, 5, "motion along chunk A")
        start = len(harness.commands)
        t1 = harness.now()
        at_t1 = A0 + ARM * (harness.current() - Q0)
        harness.chunk_pub.publish(
            make_chunk(ramp_actions(at_t1, A0 - 0.2 * ARM, t1, t1, t1 + 1.4), t1, chunk_id=2)
        )
        forward_start = len(harness.forward)
        wait_until(lambda: harness.current()[0] < Q0[0] - 0.15, 5, "motion along chunk B")
        received = harness.forward[forward_start:]
        rate = (len(received) - 1) / (received[-1] - received[0])
        node.wait_for_log(r"state RAMP_IN -> RUNNING")
        commands = harness.commands[start:]
    finally:
        assert node.stop() == 0
    ticks = {key: harness.diagnostics.get(key) for key in ("tick_period_mean_ms", "missed_ticks")}
    print(f"received command rate {rate:.1f} Hz (nominal 500); executor ticks: {ticks}")
    assert rate >= 0.6 * 500, f"commands arrived at {rate:.1f} Hz, below 60 % of 500 Hz"
    speed, _ = assert_within_caps(commands, VMAX, AMAX)
    # The boundary really reversed the motion, and joints that the chunks leave alone stayed put.
    positions = np.array([c[1] for c in commands])
    assert positions[:, 0].max() > Q0[0] + 0.05 and positions[-1, 0] < Q0[0] - 0.15
    np.testing.assert_allclose(positions[:, ARM == 0], np.tile(Q0[ARM == 0], (len(positions), 1)), atol=1e-9)
    assert speed > 0.1  # the check above is not vacuous: the arm moved


# ------------------------------------------------------------------ runtime parameters


def set_parameter(client, name, value):
    future = client.set_parameters([Parameter(name, value=value)])
    wait_until(future.done, 10, f"the answer to setting {name}")
    [result] = future.result().results
    return result


def test_speed_scaling_slows_the_path_at_run_time_and_other_parameters_refuse(harness):
    node = NodeProcess(
        "executor_node",
        dict(
            output_modes="[forward_command,joint_state]",
            max_velocity=VMAX,
            max_acceleration=AMAX,
            ramp_time=0.1,
            chunk_timeout=5.0,
            diagnostics_rate=10.0,
        ),
        CONFIG_ALOHA,
    )
    try:
        client = AsyncParameterClient(harness.node, "lightwam_executor")
        assert client.wait_for_services(10.0)
        wait_until(lambda: len(harness.commands) > 50, 20, "commands from the executor")
        harness.wait_for_executor()
        refused = set_parameter(client, "speed_scaling", 1.5)
        assert not refused.successful and "must be in [0, 1], got 1.5" in refused.reason
        refused = set_parameter(client, "control_rate", 100.0)
        assert not refused.successful and "read at start only" in refused.reason
        assert set_parameter(client, "speed_scaling", 0.5).successful
        # A ramp of +0.3 rad over 1.4 s (0.21 rad/s) runs over 2.8 s at half speed.
        start = len(harness.commands)
        t0 = harness.now()
        harness.chunk_pub.publish(
            make_chunk(ramp_actions(A0, A0 + 0.3 * ARM, t0, t0, t0 + 1.4), t0, chunk_id=1)
        )
        wait_until(lambda: harness.current()[0] > Q0[0] + 0.29, 10, "the end of the ramp")
        commands = harness.commands[start:]
        times = np.array([c[0] for c in commands]) - commands[0][0]
        moved = np.array([c[1][0] for c in commands]) - Q0[0]
        halfway = np.interp(1.4, times, moved)
        assert 0.08 < halfway < 0.22, f"moved {halfway:.3f} rad by 1.4 s at half speed"
        assert times[np.argmax(moved > 0.29)] > 2.4, "the ramp ended too early for half speed"
        speed, _ = assert_within_caps(commands, VMAX, AMAX)
        assert 0.05 < speed < 0.2, f"peak speed {speed:.3f} rad/s (0.21 at full speed)"
        # 0 pauses: a hold with its reason, the chunks refused; raising it resumes.
        assert set_parameter(client, "speed_scaling", 0.0).successful
        wait_until(
            lambda: harness.state() == ("ESTOPPED", "e-stop: speed_scaling is 0: paused"),
            5,
            f"a paused hold, got {harness.state()}",
        )
        assert set_parameter(client, "speed_scaling", 1.0).successful
        wait_until(lambda: harness.state()[0] == "WAITING", 5, "the pause to be lifted")
        assert float(harness.diagnostics["speed_scaling"]) == 1.0
    finally:
        assert node.stop() == 0


# ------------------------------------------------------------------ bad inputs


def assert_holds_safely(harness, node, since_command, since_line, log_pattern, reason_pattern):
    """The bad input is logged, the executor holds, and the commands never left the envelope
    of the good motion (no jump, nothing of the bad input executed)."""
    node.wait_for_log(log_pattern, since=since_line)
    wait_until(
        lambda: harness.state()[0] == "HOLDING" and re.search(reason_pattern, harness.state()[1]),
        5,
        f"HOLDING with a reason matching {reason_pattern!r}, got {harness.state()}",
    )
    wait_until(lambda: harness.settled(since_command), 5, "the commands to stop changing")
    commands = harness.commands_since(since_command)
    assert_within_caps(commands, VMAX, AMAX)
    deviation = np.abs(np.array([c[1] for c in commands]) - Q0).max()
    assert deviation < 0.2 + 0.05, f"command left the good motion's envelope by {deviation:.3f}"


@pytest.fixture(scope="class")
def executor_process():
    """One executor process per test class (stopped before the in-process tests start)."""
    node = NodeProcess(
        "executor_node",
        dict(
            control_rate=250.0,
            output_modes="[forward_command,joint_state]",
            max_velocity=VMAX,
            max_acceleration=AMAX,
            ramp_time=0.1,
            chunk_timeout=0.4,
            joint_state_timeout=0.15,
            diagnostics_rate=20.0,
        ),
        CONFIG_ALOHA,
    )
    yield node
    assert node.stop() == 0


class TestBadInputsOnARunningExecutor:
    """One executor process; each test resets it, runs good chunks, then injects one bad input."""

    @pytest.fixture
    def harness(self, class_harness):
        class_harness.joint_source = class_harness.follow
        class_harness.chunk_source = None
        return class_harness

    @pytest.fixture
    def running(self, executor_process, harness):
        """The executor following a stream of good chunks (a sine around Q0), state RUNNING."""
        wait_until(lambda: harness.commands, 20, "commands from the executor")
        before_reset = len(executor_process.lines)
        harness.reset()
        harness.origin = origin = harness.now()
        harness.chunk_source = lambda now: make_chunk(sine_actions(now, origin), now)
        executor_process.wait_for_log(r"state RAMP_IN -> RUNNING", since=before_reset)
        wait_until(lambda: harness.state()[0] == "RUNNING", 5, "diagnostics saying RUNNING")
        return executor_process, len(harness.commands), len(executor_process.lines)

    def test_nan_joint_state_holds(self, running, harness):
        node, since_command, since_line = running

        def nan_state():
            positions = harness.current().copy()
            positions[2] = math.nan
            return harness.joint_state(positions)

        harness.joint_source = nan_state
        assert_holds_safely(
            harness,
            node,
            since_command,
            since_line,
            r"ignored joint state: .*non-finite.*fl_joint3=nan",
            r"joint state is .* old",
        )

    def test_missing_joint_holds(self, running, harness):
        node, since_command, since_line = running
        keep = [i for i, name in enumerate(ALOHA_JOINTS) if name != "fr_joint2"]
        harness.joint_source = lambda: harness.joint_state(
            harness.current()[keep], [ALOHA_JOINTS[i] for i in keep]
        )
        assert_holds_safely(
            harness,
            node,
            since_command,
            since_line,
            r"ignored joint state: .*lacks joints \['fr_joint2'\]",
            r"joint state is .* old",
        )

    def test_stale_joint_states_hold(self, running, harness):
        node, since_command, since_line = running
        harness.joint_source = lambda: None
        assert_holds_safely(
            harness,
            node,
            since_command,
            since_line,
            r"RUNNING -> HOLDING: holding: joint state is .* old",
            r"joint state is .* old",
        )

    @pytest.mark.parametrize(
        "bad_state, log_pattern",
        [
            pytest.param(
                lambda h: h.joint_state(h.current(), stamp=h.now() - STAMP_JUMP_BACK),
                r"ignored joint state: JointState stamped [45]\.\d+ s before the previous "
                r"one: out of order, ignored",
                id="stamps_backwards",
            ),
            pytest.param(
                lambda h: h.joint_state(np.where(np.arange(14) == 2, math.inf, h.current())),
                r"ignored joint state: .*non-finite.*fl_joint3=inf",
                id="inf_position",
            ),
        ],
    )
    def test_bad_joint_state_holds(self, running, harness, bad_state, log_pattern):
        node, since_command, since_line = running
        harness.joint_source = lambda: bad_state(harness)
        assert_holds_safely(harness, node, since_command, since_line, log_pattern, r"joint state is .* old")

    def test_reordered_joints_with_extras_are_matched_by_name(self, running, harness):
        node, since_command, since_line = running
        order = np.random.default_rng(0).permutation(len(ALOHA_JOINTS))
        names = [ALOHA_JOINTS[i] for i in order] + ["head_pan"]
        harness.joint_source = lambda: harness.joint_state(list(harness.current()[order]) + [0.0], names)
        # Had the names been matched by index, the deviation check would hold the arm at once.
        wait_until(lambda: len(harness.commands) > since_command + 150, 10, "150 more commands")
        assert harness.state()[0] == "RUNNING", harness.state()
        moved = np.ptp(np.array([c[1] for c in harness.commands_since(since_command)])[:, 0])
        assert moved > 0.01
        assert not any("ignored joint state" in line for line in node.lines[since_line:])

    @pytest.mark.parametrize(
        "bad_chunk, log_pattern",
        [
            pytest.param(
                lambda actions, now: make_chunk(np.where(np.arange(14) == 3, math.nan, actions + 0.5), now),
                r"rejected chunk #\d+: chunk action at step 0, dimension 3 \('fl_joint4'\) "
                r"is nan",
                id="nan",
            ),
            pytest.param(
                lambda actions, now: make_chunk(actions + 2.5 * ARM, now),
                r"rejected chunk #\d+: invalid chunk: .* outside \[",
                id="out_of_limits",
            ),
            pytest.param(
                lambda actions, now: make_chunk(actions + 0.5 * ARM, now, embodiment="libero_franka"),
                r"rejected chunk #\d+: chunk is for embodiment 'libero_franka', this executor "
                r"drives 'robotwin_aloha'",
                id="wrong_embodiment",
            ),
            pytest.param(
                lambda actions, now: make_chunk(actions[:, :13] + 0.5, now, names=ALOHA_ACTIONS[:13]),
                r"rejected chunk #\d+: ActionChunk #\d+: action_dim 13 with 13 action_names, "
                r"the embodiment has 14",
                id="wrong_action_dim",
            ),
            pytest.param(
                lambda actions, now: make_chunk(actions + 0.5, now, names=ALOHA_ACTIONS[:13] + ("extra",)),
                r"rejected chunk #\d+: chunk action_names .* do not match robotwin_aloha's "
                r"action dimensions .*; missing \['right_gripper'\]",
                id="wrong_action_names",
            ),
            # max_clock_skew is 0.1 s (config): a chunk from 1 s ahead means the clocks disagree.
            pytest.param(
                lambda actions, now: make_chunk(actions, now + 1.0),
                r"rejected chunk #\d+: chunk stamp is [01]\.\d+ s in the future: "
                r"clocks disagree",
                id="stamped_in_the_future",
            ),
            pytest.param(
                lambda actions, now: make_chunk(actions, now - 10.0),
                r"rejected chunk #\d+: stale chunk: its last executable step ended "
                r"[89]\.\d+ s ago",
                id="stamped_far_in_the_past",
            ),
        ],
    )
    def test_bad_chunk_is_refused_and_the_executor_holds(self, running, harness, bad_chunk, log_pattern):
        node, since_command, since_line = running
        harness.chunk_source = lambda now: bad_chunk(sine_actions(now, 0.0), now)
        assert_holds_safely(harness, node, since_command, since_line, log_pattern, r"no chunk for")

    def test_a_huge_chunk_is_refused_at_once_and_the_commands_keep_their_rate(self, running, harness):
        node, since_command, since_line = running
        rejected = int(harness.diagnostics["chunks_rejected"])
        huge = make_chunk(sine_actions(harness.now(), harness.origin), harness.now(), chunk_id=999_999)
        huge.horizon = 100_000  # valid in itself: 100000 x 14 zeros
        huge.actions = array.array("f", bytes(4 * 100_000 * 14))
        before = len(harness.commands)
        harness.chunk_pub.publish(huge)
        node.wait_for_log(
            r"rejected chunk #999999: ActionChunk #999999: horizon 100000 exceeds "
            r"64 \(2 x the embodiment's chunk length 32\)",
            since=since_line,
        )
        wait_until(
            lambda: int(harness.diagnostics["chunks_rejected"]) == rejected + 1,
            5,
            "the executor's diagnostics to count the rejected chunk",
        )
        wait_until(lambda: len(harness.commands) > before + 250, 10, "a second more commands")
        # 250 Hz here: no gap of more than a few periods around the huge chunk (the control
        # thread never parses it), and the good chunks keep the arm running.  rclpy turns the
        # 5.6 MB message into Python holding the GIL, which the control thread needs: that costs
        # a few periods (CI measured 22 ms at load), never the 430-580 ms of planning it.
        gaps = np.diff([c[0] for c in harness.commands[max(before - 50, since_command) :]])
        assert gaps.max() < 10 / 250, f"largest gap between commands {1e3 * gaps.max():.1f} ms"
        assert harness.state()[0] == "RUNNING", harness.state()

    def test_reordered_chunk_columns_are_matched_by_name(self, running, harness):
        node, since_command, since_line = running
        order = np.arange(14)[::-1]
        harness.chunk_source = lambda now: make_chunk(  # the same motion, columns reversed
            sine_actions(now, harness.origin)[:, order], now, names=[ALOHA_ACTIONS[i] for i in order]
        )
        wait_until(lambda: len(harness.commands) > since_command + 150, 10, "150 more commands")
        assert harness.state()[0] == "RUNNING", harness.state()
        assert not any("rejected chunk" in line for line in node.lines[since_line:])
        positions = np.array([c[1] for c in harness.commands_since(since_command)])
        # Reversed by index, gripper columns would land on arm joints, far outside Q0's range.
        assert np.abs(positions - Q0).max() < 0.25

    def test_estop_topic_latches_until_reset(self, running, harness):
        node, since_command, since_line = running
        harness.estop_pub.publish(Bool(data=True))
        node.wait_for_log(r"E-STOP latched by lightwam/estop topic", since=since_line)
        wait_until(lambda: harness.state()[0] == "ESTOPPED", 5, "state ESTOPPED")
        wait_until(lambda: harness.settled(since_command), 5, "the commands to stop changing")
        # Good chunks keep coming but are refused: the command stays frozen.
        node.wait_for_log(r"rejected chunk #\d+: e-stop latched", since=since_line)
        frozen = len(harness.commands)
        wait_until(lambda: len(harness.commands) > frozen + 100, 10, "100 more commands")
        held = np.array([c[1] for c in harness.commands[frozen:]])
        assert np.ptp(held, axis=0).max() < 1e-12
        assert harness.state()[0] == "ESTOPPED"
        assert_within_caps(harness.commands_since(since_command), VMAX, AMAX)
        # The reset service clears it; the next good chunk ramps in and the arm moves again.
        after_reset, line_before_reset = len(harness.commands), len(node.lines)
        harness.reset()
        node.wait_for_log(r"state ESTOPPED -> WAITING: reset", since=line_before_reset)
        node.wait_for_log(r"state WAITING -> RAMP_IN", since=line_before_reset)
        wait_until(lambda: not harness.settled(after_reset), 5, "the commands to change again")
        # The e-stop service latches the same hold.
        future = harness.estop_client.call_async(Trigger.Request())
        wait_until(future.done, 10, "the e-stop service to answer")
        assert future.result().success
        node.wait_for_log(r"E-STOP latched by lightwam/estop service", since=line_before_reset)
        wait_until(lambda: harness.state()[0] == "ESTOPPED", 5, "state ESTOPPED again")
        wait_until(lambda: harness.settled(after_reset), 5, "the commands to stop changing")
        assert_within_caps(harness.commands_since(since_command), VMAX, AMAX)


# ------------------------------------------------------------------ helpers of the node


def aloha_chunk(rows, names=ALOHA_ACTIONS, **changes) -> Chunk:
    fields = dict(
        stamp_ns=1_000_000_000,
        dt=DT,
        actions=rows,
        action_names=names,
        execute_steps=3,
        chunk_id=7,
        embodiment="robotwin_aloha",
    )
    fields.update(changes)
    return Chunk(**fields)


def test_command_layout_matches_chunk_columns_by_name_and_maps_grippers():
    layout = CommandLayout(ALOHA)
    assert layout.joint_names == ALOHA_JOINTS
    rows = np.tile(A0, (3, 1))
    rows[:, 6], rows[:, 13] = 1.0, 0.0  # left gripper open, right closed (RoboTwin: 1 = open)
    direct = layout.to_joint_targets(aloha_chunk(rows)).chunk
    np.testing.assert_allclose(direct.actions[0, [6, 13]], [0.045, -0.01])  # open / closed joint
    np.testing.assert_allclose(direct.actions[:, ARM == 1], rows[:, ARM == 1])
    assert direct.action_names == ALOHA_JOINTS and direct.stamp_ns == 1_000_000_000
    order = np.random.default_rng(1).permutation(14)
    shuffled = layout.to_joint_targets(aloha_chunk(rows[:, order], [ALOHA_ACTIONS[i] for i in order])).chunk
    np.testing.assert_array_equal(shuffled.actions, direct.actions)
    renamed = list(ALOHA_ACTIONS[:13]) + ["right_grip"]
    with pytest.raises(
        ChunkLayoutError,
        match=r"missing \['right_gripper'\]; unexpected "
        r"\['right_grip'\]",
    ):
        layout.to_joint_targets(aloha_chunk(rows, renamed))
    with pytest.raises(ChunkLayoutError, match="chunk is for embodiment 'libero_franka'"):
        layout.to_joint_targets(aloha_chunk(rows, embodiment="libero_franka"))
    with pytest.raises(ChunkLayoutError, match="chunk action_mode 'delta_eef'"):
        layout.to_joint_targets(aloha_chunk(rows, action_mode="delta_eef"))
    # A controller that lists its joints in another order gets the same targets in its order.
    reversed_layout = CommandLayout(ALOHA, joint_order=ALOHA_JOINTS[::-1])
    np.testing.assert_array_equal(
        reversed_layout.to_joint_targets(aloha_chunk(rows)).chunk.actions, direct.actions[:, ::-1]
    )
    np.testing.assert_array_equal(reversed_layout.upper, layout.upper[::-1])


def test_a_predicted_chunk_just_past_a_limit_is_published_then_clipped_and_executed():
    """One safety authority: the policy returns (and its node publishes) a chunk 1e-3 rad past
    fl_joint2's upper limit; through the ActionChunk message the executor accepts it, clips it
    within its limit_margin and drives the joint to the limit, never past it."""
    spec = ALOHA
    cfg = make_config("tiny", spec.action_dim, spec.state_dim, spec.chunk.length)
    normalizer = Normalizer.from_stats(
        plausible_stats(spec), spec.normalization.mode, spec.normalization.clamp
    )
    layout = CommandLayout(spec)
    joint = ALOHA_ACTIONS.index("fl_joint2")
    upper = layout.upper[layout.joint_names.index("fl_joint2")]
    target = A0.copy()
    target[joint] = upper + 1e-3
    # A model whose output is this action at every step: zero weights, the normalised target as
    # the bias of its last layer (normalisation is affine per dimension).
    zero, one = normalizer.denormalize_action(np.zeros(14)), normalizer.denormalize_action(np.ones(14))
    model = random_model(cfg, 0)
    last = model.expert.output[2]
    last.weight.data.zero_()
    last.bias.data.copy_(torch.from_numpy((target - zero) / (one - zero)))
    runner = PolicyRunner(
        model,
        spec,
        normalizer,
        standin_cache(demo_tasks(spec), cfg.dit.text_len, cfg.dit.text_dim),
        device="cpu",
        warmup=0,
    )
    runner.warmup()
    images = {cam.role: np.zeros((*cam.source_size, 3), np.uint8) for cam in spec.canvas.cameras}
    stamp_ns = 1_764_900_000_000_000_000
    chunk = runner.predict(images, np.zeros(spec.state_dim), runner.tasks[0], stamp_ns=stamp_ns).chunk
    assert chunk.actions[0, joint] == pytest.approx(upper + 1e-3, abs=1e-5)  # not refused

    received = msg_to_chunk(chunk_to_msg(chunk))  # what the policy node publishes
    targets = layout.to_joint_targets(received).chunk
    limits = JointSafetyLimits(
        lower=layout.lower,
        upper=layout.upper,
        max_velocity=1.0,
        max_acceleration=5.0,
        max_deviation=0.5,
        max_jump=0.3,
        limit_margin=0.01,
        ramp_time=0.0,
    )
    core = ChunkExecutorCore(ExecutorConfig(limits))
    start = targets.actions[0].copy()
    start[layout.joint_names.index("fl_joint2")] = upper - 0.05
    core.update_measured(start, stamp_ns)
    core.tick(stamp_ns)
    result = core.submit_chunk(targets)
    assert result.accepted, result.reason
    reached = []
    for k in range(1, 300):  # a tracking arm, 2 ms ticks
        t = stamp_ns + k * 2_000_000
        command = core.tick(t)
        core.update_measured(command.positions, t)
        reached.append(command.positions[layout.joint_names.index("fl_joint2")])
    assert max(reached) <= upper
    assert reached[-1] == pytest.approx(upper, abs=1e-3)  # at the limit (braking to the hold)


def test_reason_reporter_reports_the_first_problem_then_throttles():
    reporter = ReasonReporter(interval=0.05)
    assert reporter.bad("joint state has NaN") == "joint state has NaN"
    assert reporter.bad("joint state has NaN") is None  # within the interval: left out
    text = wait_until(lambda: reporter.bad("joint state has NaN"), 5, "the next report")
    assert re.fullmatch(r"joint state has NaN \(\d+ similar reports left out\)", text)
    reporter.good()
    assert reporter.bad("joint missing") == "joint missing"  # a new problem is never hidden


def test_tick_stats_count_missed_ticks():
    stats = TickStats(period=0.002)
    for t in (0.0, 0.002, 0.004, 0.010, 0.012):  # 0.004 -> 0.010 skips two ticks
        stats.record(t)
    assert stats.ticks == 5 and stats.missed == 2
    assert stats.summary()["tick_period_max_ms"] == pytest.approx(6.0)


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "override, message",
    [
        ("boundary_rule:=bogus", r"boundary_rule must be one of \['latest', 'blend', 'ensemble'\]"),
        (
            "joint_limits.left_fingr.max_velocity:=0.1",
            r"joint_limits\.left_fingr\.max_velocity: unknown joint",
        ),
    ],
)
def test_invalid_parameters_stop_the_process_with_a_reason(override, message):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightwam_ros.nodes.executor_node",
            "--ros-args",
            "--params-file",
            CONFIG_ALOHA,
            "-p",
            override,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert re.search(r"invalid configuration: parameter " + message, result.stderr + result.stdout)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"embodiment": ""}, "parameter embodiment is required"),
        ({"control_rate": -5.0}, "control_rate must be > 0"),
        (
            {"interpolation": "linear"},
            "interpolation must be one of ['cubic', 'quintic', 'minimum_jerk', 'min_jerk']",
        ),
        ({"output_modes": ["joint_trajectory", "teleport"]}, "output_modes must list distinct"),
        ({"max_acceleration": 0.0}, "max_acceleration must be > 0"),
        ({"joint_names": ["fl_joint1"]}, "joint_names must list each commanded joint"),
    ],
)
def test_invalid_parameters_raise_when_built_in_process(ros_context, overrides, message):
    base = {"embodiment": "robotwin_aloha"}
    base.update(overrides)
    with pytest.raises(ValueError, match=re.escape(message)):
        create_executor_node(
            context=ros_context,
            parameter_overrides=[Parameter(name, value=value) for name, value in base.items()],
        )
    # The refused node leaves the graph, although the raised error still references it: a node
    # left behind would answer lifecycle requests meant for a later executor (a launch's).
    probe = rclpy.create_node("leftover_probe", context=ros_context)
    try:
        wait_until(
            lambda: ("lightwam_executor", "/") not in probe.get_node_names_and_namespaces(),
            5,
            "the refused executor to leave the graph",
        )
    finally:
        probe.destroy_node()


# ------------------------------------------------------------------ in-process nodes


def test_shadow_mode_computes_but_commands_nothing(ros_context):
    executor_node = create_executor_node(
        context=ros_context,
        parameter_overrides=[
            Parameter("embodiment", value="robotwin_aloha"),
            Parameter("shadow", value=True),
            Parameter("control_rate", value=100.0),
            Parameter("ramp_time", value=0.1),
            Parameter("chunk_timeout", value=2.0),
            Parameter("output_modes", value=["joint_trajectory", "forward_command", "joint_state"]),
        ],
    )
    helper = Harness(ros_context, ALOHA_JOINTS)
    helper.start_positions = Q0
    shadow = []
    helper.node.create_subscription(
        JointState, "lightwam/shadow_command", lambda m: shadow.append(np.array(m.position)), 100
    )
    executor, thread = spin_in_background(ros_context, [executor_node, helper.node])
    try:
        wait_until(lambda: shadow, 10, "shadow commands")
        helper.wait_for_executor()
        helper.joint_source = lambda: helper.joint_state(shadow[-1])
        t0 = helper.now()
        helper.chunk_pub.publish(make_chunk(ramp_actions(A0, A0 + 0.2 * ARM, t0, t0, t0 + 0.6), t0))
        wait_until(lambda: shadow[-1][0] > Q0[0] + 0.1, 10, "the shadow command to follow")
        for topic in (COMMAND_TOPIC, FORWARD_TOPIC, TRAJECTORY_TOPIC):
            assert helper.node.count_publishers(topic) == 0, topic
        assert not helper.commands and not helper.forward and not helper.trajectories
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        executor_node.destroy_node()
        helper.node.destroy_node()


def test_executor_asks_for_the_next_chunk_before_its_plan_runs_out(ros_context):
    """request_lead_time: without a plan it asks every request_retry seconds; with one, once
    when the plan ends within the lead time, not before."""
    lead, retry = 0.3, 0.5
    executor_node = create_executor_node(
        context=ros_context,
        parameter_overrides=[
            Parameter("embodiment", value="robotwin_aloha"),
            Parameter("control_rate", value=100.0),
            Parameter("ramp_time", value=0.1),
            Parameter("chunk_timeout", value=2.0),
            Parameter("output_modes", value=["joint_state"]),
            Parameter("request_lead_time", value=lead),
            Parameter("request_retry", value=retry),
        ],
    )
    helper = Harness(ros_context, ALOHA_JOINTS)
    helper.start_positions = Q0
    requests = []
    helper.node.create_subscription(
        Empty, "lightwam/request_chunk", lambda _: requests.append(helper.now()), 10
    )
    executor, thread = spin_in_background(ros_context, [executor_node, helper.node])
    try:
        wait_until(lambda: len(requests) >= 3, 10, "repeated requests while nothing is planned")
        assert min(np.diff(requests)) > retry - 0.1, requests
        helper.wait_for_executor()
        t0 = helper.now()
        helper.chunk_pub.publish(make_chunk(ramp_actions(A0, A0 + 0.1 * ARM, t0, t0, t0 + 1.0), t0))
        asked = len(requests)
        plan_end = t0 + EXECUTE * DT
        wait_until(
            lambda: len(requests) > asked and requests[-1] > t0 + 0.2,
            10,
            "a request for the chunk after this one",
        )
        first_after = next(t for t in requests[asked:] if t > t0 + 0.2)
        assert plan_end - lead - 0.05 <= first_after <= plan_end + 0.1, (t0, first_after)
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        executor_node.destroy_node()
        helper.node.destroy_node()


def test_lifecycle_transitions_start_hold_and_resume_the_executor(ros_context):
    """A managed executor (autostart false) commands nothing until configured and activated;
    deactivated while the arm moves, it brakes to rest within the caps, then stops commanding and
    ignores chunks; activated again, it resumes from rest and executes chunks."""
    executor_node = create_executor_node(
        context=ros_context,
        parameter_overrides=[
            Parameter("embodiment", value="robotwin_aloha"),
            Parameter("autostart", value=False),
            Parameter("control_rate", value=200.0),
            Parameter("max_velocity", value=VMAX),
            Parameter("max_acceleration", value=AMAX),
            Parameter("ramp_time", value=0.1),
            Parameter("chunk_timeout", value=2.0),
            Parameter("joint_state_timeout", value=0.3),
            Parameter("output_modes", value=["joint_state"]),
            Parameter("diagnostics_rate", value=20.0),
        ],
    )
    helper = Harness(ros_context, ALOHA_JOINTS)
    helper.start_positions = Q0
    executor, thread = spin_in_background(ros_context, [executor_node, helper.node])
    name = executor_node.get_name()

    def moving():
        return helper.commands and np.abs(helper.commands[-1][2]).max() > 0.1

    try:
        assert executor_node.count_subscribers("lightwam/action_chunk") == 0, "unconfigured"
        assert change_state(helper.node, name, Transition.TRANSITION_CONFIGURE)
        helper.wait_for_executor()
        wait_until(lambda: "inactive" in helper.state()[1], 5, f"an inactive hold, got {helper.state()}")
        assert not helper.commands, "commanded while inactive"

        assert change_state(helper.node, name, Transition.TRANSITION_ACTIVATE)
        origin = helper.now()
        helper.chunk_source = lambda now: make_chunk(sine_actions(now, origin), now)
        wait_until(moving, 10, "motion along the chunks")
        start = len(helper.commands) - 1
        assert change_state(helper.node, name, Transition.TRANSITION_DEACTIVATE)
        wait_until(quiet(helper.commands, 0.3), 5, "the commands to stop")
        braking = helper.commands_since(start)
        speed, accel = assert_within_caps(braking, VMAX, AMAX)
        assert np.abs(braking[0][2]).max() > 0.1 and not np.any(braking[-1][2]), "braked to rest"
        assert len(braking) > 2 and braking[-1][0] - braking[0][0] < 1.0
        print(
            f"deactivated at {np.abs(braking[0][2]).max():.3f} rad/s: at rest after "
            f"{braking[-1][0] - braking[0][0]:.3f} s, {len(braking)} commands, peak {speed:.3f} rad/s "
            f"and {accel:.2f} rad/s^2 (caps {VMAX}, {AMAX})"
        )
        assert helper.state()[0] == "HOLDING" and "deactivated" in helper.state()[1], helper.state()
        stopped = len(helper.commands)  # chunks kept coming (10 Hz) while it stayed quiet

        assert change_state(helper.node, name, Transition.TRANSITION_ACTIVATE)
        wait_until(lambda: helper.state()[0] == "RUNNING", 10, f"running again, got {helper.state()}")
        wait_until(moving, 10, "motion again")
        resumed = helper.commands_since(stopped)
        np.testing.assert_allclose(resumed[0][1], braking[-1][1], atol=1e-9)  # from rest, where it stopped
        assert_within_caps(resumed, VMAX, AMAX)

        for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP):
            assert change_state(helper.node, name, transition)
        wait_until(lambda: helper.chunk_pub.get_subscription_count() == 0, 10, "the chunk subscription gone")
        assert change_state(helper.node, name, Transition.TRANSITION_CONFIGURE), "configure after cleanup"
    finally:
        executor.shutdown()
        thread.join(timeout=5)
        executor_node.destroy_node()
        helper.node.destroy_node()


PANDA_HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04, 0.04])
PANDA_JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1", "panda_finger_joint2"]


def test_delta_eef_chunk_moves_the_end_effector_by_the_integrated_delta():
    """LIBERO Franka in-process from its shipped config: a chunk of +x deltas with a close
    command becomes joint commands whose FK moves 5 steps x 0.1 x 0.05 m = 2.5 cm along x.  The
    last 5 executable steps stand still, so the arm settles on the target before the plan ends
    (at the end of a plan the executor brakes from wherever the capped command is).

    A second chunk (+y) then shows that the path RViz gets is the path the arm takes: the
    executor's planned trajectory is what it commands, and the planned end-effector path is the
    FK of that trajectory, integrated from the current command (not from an observation)."""
    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", CONFIG_FRANKA])
    try:
        executor_node = create_executor_node(
            context=context,
            parameter_overrides=[
                Parameter("control_rate", value=100.0),
                Parameter("ramp_time", value=0.05),
                Parameter("chunk_timeout", value=3.0),
                Parameter("joint_state_timeout", value=0.3),
                Parameter("diagnostics_rate", value=20.0),
                # Fingers fast enough to close within the 0.5 s chunk (the plan's end is a hold).
                *(
                    Parameter(f"joint_limits.{finger}.{cap}", value=value)
                    for finger in PANDA_JOINTS[7:]
                    for cap, value in (("max_velocity", 0.2), ("max_acceleration", 2.0))
                ),
                Parameter("output_modes", value=["joint_trajectory", "joint_state"]),
            ],
        )
        helper = Harness(context, PANDA_JOINTS)
        helper.start_positions = PANDA_HOME
        planned, paths, exact = [], [], []  # exact: (stamp ns, positions) of every command
        helper.node.create_subscription(JointTrajectory, "lightwam/planned_trajectory", planned.append, 10)
        helper.node.create_subscription(MarkerArray, "lightwam/planned_path", paths.append, 10)
        helper.node.create_subscription(
            JointState,
            "lightwam/joint_command",
            lambda m: exact.append((stamp_to_nanoseconds(m.header.stamp), np.array(m.position))),
            1000,
        )
        executor, thread = spin_in_background(context, [executor_node, helper.node])
        try:
            wait_until(lambda: len(helper.poses) > 5, 10, "target poses")
            helper.wait_for_executor()
            start_pose = helper.poses[-1].pose
            deltas = np.zeros((32, 7))
            deltas[:5, 0] = 0.1
            deltas[:, 6] = 1.0  # robosuite: +1 closes
            t0 = helper.now()
            helper.chunk_pub.publish(
                make_chunk(
                    deltas,
                    t0,
                    names=("dx", "dy", "dz", "drx", "dry", "drz", "gripper"),
                    embodiment="libero_franka",
                    mode="delta_eef",
                    dt=0.05,
                    execute=10,
                )
            )
            wait_until(lambda: "plan exhausted" in helper.state()[1], 10, "the end of the plan")
            wait_until(lambda: helper.settled(0, count=5), 5, "the arm to settle")
            end = helper.poses[-1].pose
            final = helper.commands[-1][1]
            last = helper.trajectories[-1]

            deltas = np.zeros((32, 7))
            deltas[:8, 1] = [0.02, 0.05, 0.08, 0.1, 0.1, 0.08, 0.05, 0.02]  # gently: no cap acts
            deltas[:, 6] = 1.0  # stays closed
            t1 = helper.now()
            helper.chunk_pub.publish(
                make_chunk(
                    deltas,
                    t1,
                    names=("dx", "dy", "dz", "drx", "dry", "drz", "gripper"),
                    embodiment="libero_franka",
                    mode="delta_eef",
                    dt=0.05,
                    execute=10,
                    chunk_id=1,
                )
            )
            wait_until(lambda: all(len(x) == 2 for x in drawn(planned, paths)), 10, "the second plan")
            plans, shown = drawn(planned, paths)
            path_end = stamp_to_nanoseconds(plans[1].header.stamp) + (
                duration_ns(plans[1].points[-1].time_from_start)
            )
            wait_until(lambda: exact[-1][0] > path_end + 200_000_000, 10, "the second plan's end")
            # Holding at the plan's end: nothing more is planned, and RViz is told so.
            wait_until(
                lambda: not planned[-1].points and paths[-1].markers[0].action == Marker.DELETEALL,
                5,
                "a cleared plan",
            )
        finally:
            executor.shutdown()
            thread.join(timeout=5)
            executor_node.destroy_node()
            helper.node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    xyz = lambda p: np.array([p.position.x, p.position.y, p.position.z])  # noqa: E731
    moved = xyz(end) - xyz(start_pose)
    np.testing.assert_allclose(moved, [0.025, 0.0, 0.0], atol=5e-4)
    quat = lambda o: np.array([o.w, o.x, o.y, o.z])  # noqa: E731
    assert abs(np.dot(quat(end.orientation), quat(start_pose.orientation))) > 0.9999
    np.testing.assert_allclose(final[7:], [0.0, 0.0], atol=1e-6)  # both fingers closed
    # The published pose is the FK of the published joints.
    fk = arm_chain(load_embodiment("libero_franka").arm("arm")).forward(final[:7])
    np.testing.assert_allclose(fk.position, xyz(end), atol=1e-9)
    # The JointTrajectory output carries the same command, reached one control period ahead.
    assert list(last.joint_names) == PANDA_JOINTS and len(last.points) == 1
    assert last.points[0].time_from_start.nanosec == 10_000_000
    np.testing.assert_allclose(last.points[0].positions, final, atol=1e-12)
    assert_planned_path_is_commanded(plans[1], shown[1], exact, final)


def drawn(planned: list, paths: list) -> tuple[list, list]:
    """The planned trajectories and paths that show a plan (not the clearing messages)."""
    return ([t for t in planned if t.points], [m for m in paths if m.markers[0].action == Marker.ADD])


def duration_ns(duration) -> int:
    return duration.sec * 1_000_000_000 + duration.nanosec


def assert_planned_path_is_commanded(trajectory, markers, commands, start):
    """The planned trajectory starts at a published command and every later command lies on it;
    the marker path is its end-effector path by forward kinematics."""
    chain = arm_chain(load_embodiment("libero_franka").arm("arm"))
    assert list(trajectory.joint_names) == PANDA_JOINTS
    t0 = stamp_to_nanoseconds(trajectory.header.stamp)
    times = t0 + np.array([duration_ns(p.time_from_start) for p in trajectory.points])
    positions = np.array([p.positions for p in trajectory.points])
    np.testing.assert_allclose(positions[0], start, atol=1e-9)  # from the current command ...
    stamps = np.array([t for t, _ in commands])
    assert t0 in stamps  # ... which is a command the executor published
    on_path = [(t, q) for t, q in commands if t0 <= t <= times[-1]]
    assert len(on_path) >= 10  # at 100 Hz about 45; fewer on a loaded machine
    for t, q in on_path:
        expected = [np.interp(t - t0, times - t0, column) for column in positions.T]
        np.testing.assert_allclose(q, expected, atol=5e-4)  # 20 ms spacing, linear between
    after = [q for t, q in commands if t > times[-1] + 100_000_000]
    np.testing.assert_allclose(after[-1], positions[-1], atol=1e-6)  # and it ends there
    moved = chain.forward(positions[-1, :7]).position - chain.forward(start[:7]).position
    np.testing.assert_allclose(moved, [0.0, 0.025, 0.0], atol=5e-4)
    line, spheres = markers.markers
    assert line.header.frame_id == "panda_link0" and line.header.stamp == trajectory.header.stamp
    fk = np.array([chain.forward(q[:7]).position for q in positions])
    for marker in (line, spheres):
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in marker.points], fk, atol=1e-12)
