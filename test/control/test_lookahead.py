"""The executor's ticks run ahead (control.lookahead): the motion a plan output hands a joint
trajectory controller is what the executor itself would command, and a cubic spline through its
waypoints (the controller's interpolation with positions and velocities) keeps the caps."""

import numpy as np
import pytest
from test_executor_core import AMAX, AMPLITUDE, DT, NAMES, Q_START, TICK, VMAX, executor, joint_chunk, ns, run

from lightwam_ros.control.interpolation import INTERPOLATION_KINDS
from lightwam_ros.control.lookahead import PlannedMotion
from lightwam_ros.policy.chunk import Chunk


def smooth_move(scale: float, stamp: float = 0.0) -> np.ndarray:
    """32 chunk rows from Q_START towards Q_START + scale * AMPLITUDE, ending at rest."""
    phase = np.clip((stamp + DT * np.arange(1, 33) - 0.05) / 0.3, 0.0, 1.0)
    return Q_START + scale * AMPLITUDE * (phase**3 * (10 - 15 * phase + 6 * phase**2))[:, None]


def tick_on(core, last, ticks: int):
    """The real ticks after ``last`` with a perfectly tracking arm: (times, positions, velocities)."""
    times, positions, velocities = [last.t_ns], [last.positions], [last.velocities]
    for _ in range(ticks):
        t = times[-1] + ns(TICK)
        core.update_measured(positions[-1], t)
        command = core.tick(t)
        times.append(t)
        positions.append(command.positions)
        velocities.append(command.velocities)
    return np.array(times), np.array(positions), np.array(velocities)


def spline(motion: PlannedMotion, times_ns: np.ndarray):
    """The cubic Hermite spline through the waypoints at ``times_ns``: (positions, velocities,
    accelerations), as a joint trajectory controller interpolates positions with velocities."""
    segment = np.clip(
        np.searchsorted(motion.times_ns, times_ns, side="right") - 1, 0, len(motion.times_ns) - 2
    )
    h = ((motion.times_ns[segment + 1] - motion.times_ns[segment]) * 1e-9)[:, None]
    s = ((times_ns - motion.times_ns[segment]) * 1e-9)[:, None] / h
    p0, p1 = motion.positions[segment], motion.positions[segment + 1]
    v0, v1 = motion.velocities[segment] * h, motion.velocities[segment + 1] * h
    c2, c3 = 3 * (p1 - p0) - 2 * v0 - v1, -2 * (p1 - p0) + v0 + v1
    position = p0 + v0 * s + c2 * s**2 + c3 * s**3
    return position, (v0 + 2 * c2 * s + 3 * c3 * s**2) / h, (2 * c2 + 6 * c3 * s) / h**2


def assert_spline_within_caps(motion: PlannedMotion) -> None:
    """Every segment sampled densely (both ends included): |v| <= VMAX and |a| <= AMAX."""
    dense = np.unique(
        np.concatenate(
            [
                np.linspace(a, b, 41).round().astype(np.int64)
                for a, b in zip(motion.times_ns[:-1], motion.times_ns[1:], strict=True)
            ]
        )
    )
    _, velocity, acceleration = spline(motion, dense[:-1])  # the last instant belongs to no segment
    assert np.all(np.abs(velocity) <= VMAX * (1 + 1e-6)), np.max(np.abs(velocity) / VMAX)
    assert np.all(np.abs(acceleration) <= AMAX * (1 + 1e-6)), np.max(np.abs(acceleration) / AMAX)


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
def test_the_motion_ahead_is_what_the_ticks_command_within_the_caps(kind):
    """A move twice as fast as the caps allow, during the ramp-in: the filter shapes most ticks.
    The waypoints are the real ticks' commands; a spline through them keeps the caps."""
    core = executor("latest", kind, ramp_time=0.1)
    commands = run(core, {5: joint_chunk(0.0, smooth_move(2.5))}, ticks=40)
    motion = core.lookahead().motion(ns(TICK))
    times, positions, velocities = tick_on(core, commands[-1], 400)
    assert motion.times_ns[0] == commands[-1].t_ns
    np.testing.assert_allclose(motion.positions[0], commands[-1].positions, atol=1e-12)
    # The plan's step times are waypoints; the caps bent the motion, which added the bends.
    steps = ns(DT) * np.arange(1, 11)
    assert set(steps[steps > motion.times_ns[0]]) <= set(motion.times_ns.tolist())
    shaped = np.abs(np.diff(velocities, axis=0)) / TICK
    assert np.max(np.max(np.abs(velocities), axis=0) / VMAX) > 0.999  # the velocity cap acted
    assert np.max(np.max(shaped, axis=0) / AMAX) > 0.999  # and the acceleration cap
    # Waypoints on the ticks' commands (a tick's velocity is its average: within one tick's change).
    for t, q, v in zip(motion.times_ns, motion.positions, motion.velocities, strict=True):
        expected = [np.interp(t, times, column) for column in positions.T]
        np.testing.assert_allclose(q, expected, atol=1e-4)
        nearest = velocities[np.argmin(np.abs(times - t))]
        assert np.all(np.abs(v - nearest) <= AMAX * TICK * 1.001)
    # It ends at rest where the ticks come to rest, and the spline follows the ticks in between.
    assert not motion.velocities[-1].any()
    at_rest = times[np.argmax(~np.abs(velocities).any(axis=1) & (times > motion.times_ns[-2]))]
    assert abs(at_rest - motion.times_ns[-1]) <= ns(TICK)
    inside = (times >= motion.times_ns[0]) & (times <= motion.times_ns[-1])
    np.testing.assert_allclose(spline(motion, times[inside])[0], positions[inside], atol=1e-4)
    assert_spline_within_caps(motion)


@pytest.mark.parametrize("kind", INTERPOLATION_KINDS)
def test_a_gentle_plan_is_handed_over_at_its_step_times(kind):
    """Nothing to shape: the waypoints are the start, the plan's step times and the rest, and a
    spline through them is the executor's own path within 0.2 mrad here (a cubic between 50 ms
    steps where the executor interpolates a quintic)."""
    core = executor("latest", kind)
    commands = run(core, {5: joint_chunk(0.0, smooth_move(0.5))}, ticks=40)
    motion = core.lookahead().motion(ns(TICK))
    times, positions, _ = tick_on(core, commands[-1], 300)
    steps = ns(DT) * np.arange(1, 11)
    ahead = steps[steps > commands[-1].t_ns].tolist()
    # The plan ends at rest at its last step: the motion is at rest within a tick of it (the
    # brake's first tick may add a waypoint or two there).
    interior = motion.times_ns[1:-1].tolist()
    assert interior[: len(ahead) - 1] == ahead[:-1] and len(interior) <= len(ahead) + 1
    assert abs(motion.times_ns[-1] - ahead[-1]) <= ns(TICK)
    inside = (times >= motion.times_ns[0]) & (times <= motion.times_ns[-1])
    tolerance = 2e-4
    np.testing.assert_allclose(spline(motion, times[inside])[0], positions[inside], atol=tolerance)
    assert_spline_within_caps(motion)


def test_a_hold_is_the_brake_to_rest_and_then_the_hold_point():
    core = executor("latest", "quintic")
    commands = run(core, {5: joint_chunk(0.0, smooth_move(2.0))}, ticks=100)
    assert np.abs(commands[-1].velocities).max() > 0.5  # moving fast
    core.estop("test button")
    motion = core.lookahead().motion(ns(TICK))
    times, positions, velocities = tick_on(core, commands[-1], 200)
    assert len(motion.times_ns) <= 4  # a straight brake: start, its last bends, rest
    end = np.argmax(~np.abs(velocities[1:]).any(axis=1)) + 1
    np.testing.assert_allclose(motion.positions[-1], positions[end], atol=1e-4)
    assert abs(motion.times_ns[-1] - times[end]) <= ns(TICK)
    assert_spline_within_caps(motion)
    held = core.lookahead().motion(ns(TICK))  # at rest: the hold point, at rest
    np.testing.assert_array_equal(held.positions, [positions[-1]] * 2)
    assert not held.velocities.any() and len(held.times_ns) == 2


def test_no_motion_before_the_first_command():
    assert executor().lookahead() is None
    core = executor()
    run(core, {}, ticks=1)
    with pytest.raises(ValueError, match="period_ns"):
        core.lookahead().motion(0)


def test_waypoint_times_are_exact_nanoseconds_on_an_epoch_clock():
    """Stamps since 1970 need all of int64's nanoseconds (float64 keeps ~256 ns of them)."""
    core, t = executor(), 1_796_453_186_175_538_689
    core.update_measured(Q_START, t)
    core.tick(t)
    chunk = Chunk(stamp_ns=t, dt=DT, actions=smooth_move(0.5), action_names=tuple(NAMES), execute_steps=10)
    assert core.submit_chunk(chunk).accepted
    motion = core.lookahead().motion(ns(TICK))
    assert motion.times_ns[0] == t
    assert set(chunk.waypoint_times_ns()[:-1].tolist()) <= set(motion.times_ns.tolist())
