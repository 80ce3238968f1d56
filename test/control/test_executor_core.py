"""The executor end to end: chunks at 20 Hz in, 500 Hz commands out, holds, e-stop, refusals."""

import math

import numpy as np
import pytest

from lightwam_ros.control.executor_core import ChunkExecutorCore, ExecutorConfig
from lightwam_ros.control.interpolation import INTERPOLATION_KINDS
from lightwam_ros.control.safety import JointSafetyLimits
from lightwam_ros.control.watchdog import ExecutorState
from lightwam_ros.policy.chunk import Chunk
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.kinematics import chain_params

TICK = 0.002  # 500 Hz
DT = 0.05  # 20 Hz policy
VMAX = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61, 0.1])  # Panda datasheet + finger
AMAX = np.array([15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0, 1.0])
Q_START = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4, 0.04])
AMPLITUDE = np.array([0.2, 0.15, -0.2, 0.2, 0.3, -0.2, 0.3, 0.0])
MOTION_START = 0.2
PANDA_JOINTS = chain_params(load_embodiment("libero_franka").arm("arm"))["joints"]
NAMES = [j["name"] for j in PANDA_JOINTS] + ["finger"]


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def limits(ramp_time: float) -> JointSafetyLimits:
    joints = PANDA_JOINTS
    return JointSafetyLimits(
        lower=[j["lower"] for j in joints] + [0.0],
        upper=[j["upper"] for j in joints] + [0.04],
        max_velocity=VMAX,
        max_acceleration=AMAX,
        max_deviation=0.2,
        max_jump=[0.3] * 7 + [0.04],
        limit_margin=[0.01] * 7 + [0.001],
        ramp_time=ramp_time,
    )


def executor(rule="latest", kind="quintic", ramp_time=0.0, **config) -> ChunkExecutorCore:
    return ChunkExecutorCore(
        ExecutorConfig(limits(ramp_time), boundary_rule=rule, interpolation=kind, **config)
    )


def reference(t: float) -> np.ndarray:
    """At rest until MOTION_START, then a smooth swing of every arm joint."""
    phase = max(0.0, t - MOTION_START) * math.pi
    return Q_START + AMPLITUDE * (1.0 - math.cos(phase))


def joint_chunk(stamp: float, actions: np.ndarray, execute_steps: int = 10) -> Chunk:
    return Chunk(
        stamp_ns=ns(stamp),
        dt=DT,
        actions=actions,
        action_names=NAMES[: actions.shape[1]],
        execute_steps=execute_steps,
    )


def predicted_chunk(stamp: float, offset: float = 0.0, execute_steps: int = 10) -> Chunk:
    actions = np.array([reference(stamp + (i + 1) * DT) for i in range(32)])
    actions[:, :7] += offset  # chunks predicted from different observations disagree a little
    return joint_chunk(stamp, actions, execute_steps)


def run(core: ChunkExecutorCore, arrivals: dict[int, Chunk], ticks: int, estop_at=None):
    """Tick at 500 Hz; a perfectly tracking arm reports the last command as its joint state."""
    commands = []
    measured = Q_START.copy()
    for n in range(ticks):
        t = ns(n * TICK)
        core.update_measured(measured, t)
        if n in arrivals:
            result = core.submit_chunk(arrivals[n])
            assert result.accepted, result.reason
        if n == estop_at:
            core.estop("test button")
        command = core.tick(t)
        commands.append(command)
        measured = command.positions
    return commands


def assert_within_caps(commands):
    positions = np.array([c.positions for c in commands])
    velocities = np.diff(positions, axis=0) / TICK
    accelerations = np.diff(velocities, axis=0) / TICK
    assert np.all(np.abs(velocities) <= VMAX + 1e-9)
    assert np.all(np.abs(accelerations) <= AMAX + 1e-6)
    return positions, velocities, accelerations


# Chunk A from the observation at 0.10 arrives at 0.17 (70 ms inference); chunk B from 0.15
# arrives at 0.22 and disagrees with A by OFFSET rad.  Both execute 10 steps.
OFFSET = 0.0005
ARRIVAL_A, ARRIVAL_B = 85, 110  # tick indices: 0.17 s and 0.22 s


def expected_after_b(rule: str) -> dict[float, np.ndarray]:
    """The merged targets at B's still-future waypoints, computed here from the rules' text."""
    a, b = predicted_chunk(0.10), predicted_chunk(0.15, OFFSET)
    a_at = dict(zip(a.waypoint_times_ns().tolist(), a.executable(), strict=True))
    b_at = dict(zip(b.waypoint_times_ns().tolist(), b.executable(), strict=True))
    now = ns(ARRIVAL_B * TICK + 0.004)  # arrival plus the executor's min_lead
    future = [t for t in sorted(b_at) if t > now]
    overlap = [t for t in future if t in a_at and t > now]
    expected = {}
    for t in future:
        if rule == "latest" or t not in a_at:
            expected[t] = b_at[t]
        elif rule == "blend":
            w = (overlap.index(t) + 1) / (len(overlap) + 1)
            expected[t] = w * b_at[t] + (1 - w) * a_at[t]
        else:  # ensemble, ACT weights exp(-k i), oldest first, k = 0.01
            w_old, w_new = 1.0, math.exp(-0.01)
            expected[t] = (w_old * a_at[t] + w_new * b_at[t]) / (w_old + w_new)
    return expected


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
@pytest.mark.parametrize("rule", ["latest", "blend", "ensemble"])
def test_two_overlapping_chunks_give_continuous_bounded_commands(rule, kind):
    core = executor(rule, kind)
    arrivals = {ARRIVAL_A: predicted_chunk(0.10), ARRIVAL_B: predicted_chunk(0.15, OFFSET)}
    commands = run(core, arrivals, ticks=int(0.5 / TICK))
    assert all(c.state == ExecutorState.RUNNING for c in commands[ARRIVAL_A + 1 :])
    _, velocities, accelerations = assert_within_caps(commands)

    # Across the boundary the interpolation alone keeps the motion smooth: the safety filter
    # never had to step in, and the acceleration stays far below its caps.
    window = slice(ARRIVAL_B - 25, ARRIVAL_B + 75)
    assert not any(c.limited for c in commands[window])
    assert np.all(np.abs(accelerations[window]) <= 0.6 * AMAX)
    # Commands pass through the merged targets of the boundary rule.
    for t, target in expected_after_b(rule).items():
        n = round(t / ns(TICK))
        if n < len(commands):
            np.testing.assert_allclose(commands[n].positions, target, atol=1e-9)
    # Velocity reported with each command is the finite difference the arm will see.
    np.testing.assert_allclose(commands[150].velocities, velocities[149], atol=1e-9)


def test_blending_smooths_a_disagreement_that_latest_wins_passes_on():
    big = 0.01
    peaks = {}
    for rule in ("latest", "blend"):
        core = executor(rule, "quintic")
        commands = run(
            core, {ARRIVAL_A: predicted_chunk(0.10), ARRIVAL_B: predicted_chunk(0.15, big)}, ticks=200
        )
        _, _, accelerations = assert_within_caps(commands)
        peaks[rule] = np.abs(accelerations[ARRIVAL_B - 1 : ARRIVAL_B + 40, :7]).max()
    assert peaks["blend"] < 0.5 * peaks["latest"]


def test_when_chunks_stop_the_arm_decelerates_to_a_hold_without_jumping():
    core = executor("latest", "quintic", chunk_timeout=0.15)
    arrivals = {ARRIVAL_A + 25 * k: predicted_chunk(0.10 + 0.05 * k) for k in range(6)}
    commands = run(core, arrivals, ticks=int(1.2 / TICK))
    positions, velocities, _ = assert_within_caps(commands)
    last_chunk = max(arrivals) * TICK
    hold_start = next(n for n, c in enumerate(commands) if c.state == ExecutorState.HOLDING)
    assert hold_start * TICK == pytest.approx(last_chunk + 0.15, abs=2 * TICK)
    assert "no chunk for" in commands[hold_start].reason
    assert np.abs(velocities[hold_start - 1]).max() > 0.1  # it was moving when the hold began
    assert np.all(np.abs(positions[hold_start:] - positions[hold_start]).max(axis=0) < 0.1)
    assert np.allclose(velocities[-50:], 0.0)  # stopped, and stays stopped
    assert np.all(np.abs(positions[-1] - Q_START) < 0.5)  # near where it was, not at zero
    assert not np.allclose(positions[-1][:7], 0.0)

    # A new chunk resumes from the held position without a jump (and without a new ramp).
    t = len(commands) * TICK
    core.update_measured(positions[-1], ns(t))
    assert core.submit_chunk(predicted_chunk(t - 0.07)).accepted
    assert core.state == ExecutorState.RUNNING
    resumed = [core.tick(ns(t + k * TICK)) for k in range(100)]
    assert_within_caps(commands[-2:] + resumed)


def test_estop_latches_until_reset_then_ramps_in_again():
    core = executor("latest", "quintic", ramp_time=0.1)
    arrivals = {ARRIVAL_A + 25 * k: predicted_chunk(0.10 + 0.05 * k) for k in range(4)}
    commands = run(core, arrivals, ticks=250, estop_at=160)
    positions, velocities, _ = assert_within_caps(commands)
    assert all(c.state == ExecutorState.ESTOPPED for c in commands[160:])
    assert "test button" in commands[-1].reason
    assert np.allclose(velocities[-20:], 0.0)

    refused = core.submit_chunk(predicted_chunk(0.45))
    assert not refused.accepted and "e-stop" in refused.reason
    core.reset()
    assert core.state == ExecutorState.WAITING
    t = 250 * TICK
    core.update_measured(positions[-1], ns(t))
    assert core.submit_chunk(predicted_chunk(t - 0.07)).accepted
    assert core.state == ExecutorState.RAMP_IN
    resumed = core.tick(ns(t))
    assert np.abs(resumed.positions - positions[-1]).max() <= VMAX.max() * TICK


def test_ramp_in_then_running():
    core = executor("latest", "quintic", ramp_time=0.1)
    commands = run(core, {ARRIVAL_A: predicted_chunk(0.10)}, ticks=200)
    states = [c.state for c in commands]
    assert states[0] == ExecutorState.WAITING
    assert states[ARRIVAL_A] == ExecutorState.RAMP_IN
    assert states[ARRIVAL_A + 55] == ExecutorState.RUNNING  # 0.1 s ramp is over
    assert_within_caps(commands)


def test_stale_joint_state_makes_the_executor_hold():
    core = executor(measured_timeout=0.05)
    core.update_measured(Q_START, 0)
    core.tick(0)
    assert core.submit_chunk(predicted_chunk(-0.02)).accepted
    for n in range(1, 60):  # the joint state never updates again
        command = core.tick(ns(n * TICK))
    assert command.state == ExecutorState.HOLDING and "joint state is" in command.reason


def test_refusals_name_the_reason():
    core = executor()
    assert "no joint state" in core.submit_chunk(predicted_chunk(0.0)).reason
    assert core.tick(0).positions is None  # nothing to command yet, and no NaN either
    core.update_measured(Q_START, ns(1.0))
    first = core.tick(ns(1.0))
    np.testing.assert_array_equal(first.positions, Q_START)

    stale = core.submit_chunk(predicted_chunk(0.0))
    assert not stale.accepted and "stale chunk" in stale.reason
    future = core.submit_chunk(predicted_chunk(1.5))
    assert not future.accepted and "in the future" in future.reason
    broken = predicted_chunk(0.95)
    far = broken.actions.copy()
    far[4, 2] = 3.0  # joint 2's limit is 2.8973 and its margin 0.01
    result = core.submit_chunk(joint_chunk(0.95, far))
    assert not result.accepted and result.reason.startswith("invalid chunk: step 4, joint 2")
    narrow = joint_chunk(0.95, broken.actions[:, :7])
    assert "drives 8 joints" in core.submit_chunk(narrow).reason
    assert core.state == ExecutorState.WAITING  # nothing was accepted
    assert core.submit_chunk(predicted_chunk(0.95)).accepted
    with pytest.raises(ValueError, match="shape"):
        core.update_measured(Q_START[:7], ns(1.0))
    with pytest.raises(ValueError, match="finite"):
        core.update_measured(np.full(8, np.nan), ns(1.0))


def test_time_jumping_back_restarts_from_the_measured_state_at_rest():
    core = executor()
    run(core, {85: predicted_chunk(0.10)}, 200)  # moving at t = 0.4
    assert core.state == ExecutorState.RUNNING
    core.restart_clock("time jumped back by 0.400 s")
    assert core.state == ExecutorState.WAITING and "jumped back" in core.reason
    assert core.plan_end_ns is None
    assert core.tick(0).positions is None  # no joint state since the jump: command nothing
    held = Q_START.copy()
    held[:7] += 0.01  # the arm joints (the gripper is at its limit)
    core.update_measured(held, 0)
    for n in range(1, 50):  # time runs again from 0: the arm is held where it is measured
        command = core.tick(ns(n * TICK))
        np.testing.assert_allclose(command.positions, held)
        assert command.state == ExecutorState.WAITING
    assert core.submit_chunk(predicted_chunk(0.05)).accepted  # a new chunk moves it again


def test_time_jumping_back_keeps_a_latched_estop():
    core = executor()
    run(core, {85: predicted_chunk(0.10)}, 150, estop_at=120)
    core.restart_clock("time jumped back by 0.300 s")
    assert core.state == ExecutorState.ESTOPPED
    core.update_measured(Q_START, 0)
    assert not core.submit_chunk(predicted_chunk(0.0)).accepted


def test_a_chunk_just_past_a_limit_is_clipped_and_executed():
    """The executor is the one authority on limits: 1e-3 rad past joint 3's lower limit (within
    the 0.01 margin) is accepted, and the arm is driven to the limit, never past it."""
    core = executor()
    lower = core.config.limits.lower[3]
    actions = np.tile(Q_START, (32, 1))
    actions[:10, 3] = np.linspace(Q_START[3], lower - 1e-3, 11)[1:]
    actions[10:, 3] = lower - 1e-3
    commands = run(core, {10: joint_chunk(0.0, actions)}, ticks=500)
    assert commands[-1].state == ExecutorState.HOLDING  # the plan ran out: it was followed
    reached = np.array([c.positions[3] for c in commands])
    assert reached.min() >= lower
    assert reached[-1] == pytest.approx(lower, abs=1e-3)  # the hold brakes just short of it
    core = executor()
    run(core, {0: joint_chunk(0.0, actions)}, ticks=1)
    assert core.planned_path(ns(TICK))[1][-1, 3] == lower  # the plan ends at the clipped target


def test_the_planned_path_is_what_the_executor_commands():
    core = executor("latest", "quintic")
    phase = np.clip((0.10 + DT * np.arange(1, 33) - 0.15) / 0.3, 0.0, 1.0)
    smooth = phase**3 * (10 - 15 * phase + 6 * phase**2)  # a move that ends at rest
    actions = Q_START + 0.5 * AMPLITUDE * smooth[:, None]
    commands = run(core, {ARRIVAL_A: joint_chunk(0.10, actions)}, ticks=ARRIVAL_A + 1)
    times, path = core.planned_path(ns(TICK))
    assert times[0] == ns(ARRIVAL_A * TICK) and times[-1] == core.plan_end_ns
    np.testing.assert_allclose(path[0], commands[-1].positions, atol=1e-12)
    measured = commands[-1].positions
    for t, expected in zip(times[1:], path[1:], strict=True):
        core.update_measured(measured, t)
        command = core.tick(t)
        assert not command.limited
        np.testing.assert_allclose(command.positions, expected, atol=1e-9)
        measured = command.positions
    assert core.planned_path(ns(TICK))[0].size == 0  # the plan is over: nothing ahead
