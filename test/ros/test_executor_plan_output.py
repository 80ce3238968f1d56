"""The executor's plan output (``output_modes: [joint_trajectory_plan]``) with real rclpy: one
JointTrajectory per accepted chunk and per hold, never per tick, holding the motion the executor
itself commands from then on (its joint_state output, which the test's arm follows, shows it)."""

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.parameter import Parameter  # noqa: E402
from ros_harness import A0, ALOHA_JOINTS, Q0, Harness, spin_in_background, wait_until  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from lightwam_ros.nodes.executor_node import create_executor_node  # noqa: E402
from lightwam_ros.policy.chunk import Chunk  # noqa: E402
from lightwam_ros.policy.embodiment import load_embodiment  # noqa: E402
from lightwam_ros.ros.chunk_messages import chunk_to_msg  # noqa: E402
from lightwam_ros.ros.stamps import stamp_to_nanoseconds  # noqa: E402

VMAX, AMAX, RATE = 1.0, 5.0, 100.0
PERIOD_NS = round(1e9 / RATE)
DT, HORIZON, EXECUTE = 0.06, 32, 12
ARM = np.array([1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0], dtype=float)
ALOHA_ACTIONS = load_embodiment("robotwin_aloha").action.layout.dim_names


def sine_chunk(stamp_ns: int, origin_ns: int, chunk_id: int) -> Chunk:
    """A swing of the arm joints from rest (0.3 (1 - cos(pi t)) rad: up to 0.94 rad/s, 3 rad/s^2,
    within the caps), sampled from one reference by every chunk, as a policy tracking one motion."""
    times = (stamp_ns - origin_ns) * 1e-9 + DT * np.arange(1, HORIZON + 1)
    actions = A0 + 0.3 * (1 - np.cos(np.pi * times))[:, None] * ARM
    return Chunk(
        stamp_ns=stamp_ns,
        dt=DT,
        actions=actions,
        action_names=ALOHA_ACTIONS,
        execute_steps=EXECUTE,
        chunk_id=chunk_id,
        embodiment="robotwin_aloha",
    )


def points(trajectory: JointTrajectory):
    """(times [ns], positions, velocities) of a trajectory's points."""
    t0 = stamp_to_nanoseconds(trajectory.header.stamp)
    times = np.array(
        [t0 + p.time_from_start.sec * 10**9 + p.time_from_start.nanosec for p in trajectory.points]
    )
    return (
        times,
        np.array([p.positions for p in trajectory.points]),
        np.array([p.velocities for p in trajectory.points]),
    )


def test_the_plan_output_hands_over_the_commanded_motion_per_chunk_and_hold():
    context = rclpy.Context()
    rclpy.init(context=context)
    commands = []  # (stamp ns, positions, velocities) of every tick's command
    try:
        executor_node = create_executor_node(
            context=context,
            parameter_overrides=[
                Parameter("embodiment", value="robotwin_aloha"),
                Parameter("output_modes", value=["joint_trajectory_plan", "joint_state"]),
                Parameter("control_rate", value=RATE),
                Parameter("max_velocity", value=VMAX),
                Parameter("max_acceleration", value=AMAX),
                Parameter("ramp_time", value=0.0),
                Parameter("chunk_timeout", value=3.0),
                Parameter("joint_state_timeout", value=0.3),
                Parameter("diagnostics_rate", value=20.0),
            ],
        )
        helper = Harness(context, ALOHA_JOINTS)
        helper.start_positions = Q0
        helper.node.create_subscription(
            JointState,
            "lightwam/joint_command",
            lambda m: commands.append(
                (stamp_to_nanoseconds(m.header.stamp), np.array(m.position), np.array(m.velocity))
            ),
            1000,
        )
        executor, thread = spin_in_background(context, [executor_node, helper.node])
        try:
            wait_until(lambda: len(helper.commands) > 20, 10, "commands from the executor")
            helper.wait_for_executor()
            assert not helper.trajectories  # nothing planned yet: nothing handed over
            origin = helper.node.get_clock().now().nanoseconds
            for chunk_id in range(3):
                stamp = helper.node.get_clock().now().nanoseconds
                helper.chunk_pub.publish(chunk_to_msg(sine_chunk(stamp, origin, chunk_id)))
                wait_until(
                    lambda n=chunk_id + 1: (
                        len(helper.trajectories) == n and helper.diagnostics.get("chunks_accepted") == str(n)
                    ),
                    10,
                    f"chunk {chunk_id} accepted and its plan",
                )
                wait_until(lambda s=stamp: commands[-1][0] > s + 300_000_000, 10, "0.3 s of following")
            stop_from = len(commands)
            helper.estop_pub.publish(Bool(data=True))
            wait_until(lambda: len(helper.trajectories) == 4, 10, "the stopping trajectory")
            wait_until(lambda: helper.settled(stop_from, count=10), 10, "the arm at rest")
            ticks = len(commands)
        finally:
            executor.shutdown()
            thread.join(timeout=5)
            executor_node.destroy_node()
            helper.node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    assert ticks > 100 and len(helper.trajectories) == 4  # per chunk and hold, not per tick
    stamps = np.array([c[0] for c in commands])
    positions = np.array([c[1] for c in commands])
    velocities = np.array([c[2] for c in commands])
    for index, trajectory in enumerate(helper.trajectories):
        assert list(trajectory.joint_names) == list(ALOHA_JOINTS)
        times, planned, planned_velocity = points(trajectory)
        assert times[0] in stamps  # stamped at a tick: the command it starts from
        np.testing.assert_allclose(planned[0], positions[stamps == times[0]][0], atol=1e-12)
        assert not planned_velocity[-1].any()  # it ends at rest
        # Velocities and accelerations between waypoints within the caps.
        step = np.diff(times)[:, None] * 1e-9
        assert np.all(np.abs(np.diff(planned, axis=0)) <= VMAX * step * 1.001)
        assert np.all(np.abs(np.diff(planned_velocity, axis=0)) <= AMAX * step * 1.001)
        # The executor commands this motion until the next chunk or hold replaces it.
        until = times[-1] if index == 3 else stamp_to_nanoseconds(helper.trajectories[index + 1].header.stamp)
        followed = (times <= until) & (times <= stamps[-1])
        assert followed.sum() >= 2
        commanded = np.column_stack([np.interp(times[followed], stamps, column) for column in positions.T])
        error = np.abs(planned[followed] - commanded).max()
        print(f"trajectory {index}: {len(times)} waypoints, {followed.sum()} followed, error {error:.2e} rad")
        assert error < AMAX * (PERIOD_NS * 1e-9) ** 2  # ticks come late on a busy machine
        # A command's velocity is its tick's average: within one tick's change of the waypoint's.
        nearest = velocities[[np.argmin(np.abs(stamps - t)) for t in times[followed]]]
        assert np.all(np.abs(planned_velocity[followed] - nearest) <= AMAX * PERIOD_NS * 1e-9 * 1.01)
    # The chunks' plans reach their last step time; the hold's is a short brake to rest.
    plan_times = points(helper.trajectories[0])[0]
    assert plan_times[-1] - plan_times[0] > 0.3e9 and len(plan_times) >= 5
    hold_times, hold_positions, _ = points(helper.trajectories[3])
    assert len(hold_times) <= 4 and hold_times[-1] - hold_times[0] < 0.3e9
    np.testing.assert_allclose(hold_positions[-1], positions[-1], atol=5e-4)  # where it came to rest


def test_the_plan_output_and_the_per_tick_trajectory_output_exclude_each_other():
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        modes = Parameter("output_modes", value=["joint_trajectory", "joint_trajectory_plan"])
        with pytest.raises(Exception, match="both publish on joint_trajectory_topic"):
            create_executor_node(
                context=context, parameter_overrides=[Parameter("embodiment", value="robotwin_aloha"), modes]
            )
    finally:
        rclpy.shutdown(context=context)
