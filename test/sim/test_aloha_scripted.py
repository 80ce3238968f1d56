"""Scripted ALOHA cube transfer: the IK it plans with, the plan, and whole episodes judged by
gym-aloha's own success signal (and by where the cube ends up)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lightwam_ros.policy.kinematics import Pose
from lightwam_ros.sim.aloha import GRIPPER_BODIES, MJCF_JOINTS, AlohaSim
from lightwam_ros.sim.aloha_scripted import GRASP_POINT, ArmIK, TransferCubeScript, run_episode
from lightwam_ros.sim.base import SimError, configure_offscreen_rendering

configure_offscreen_rendering()  # before gym-aloha imports dm_control, which fixes its GL backend
pytest.importorskip("gym_aloha.tasks.sim", reason="needs requirements/sim.txt")

EPISODE = 7  # any cube pose; this one is in the middle of the sampled range


@pytest.fixture(scope="module")
def sim():
    simulator = AlohaSim("transfer_cube")
    yield simulator
    simulator.close()


def grasp_point_at(sim: AlohaSim, arm: str, slots: list[int], q: np.ndarray) -> np.ndarray:
    """The grasp point for arm joints ``q``, by dm_control's forward pass on a copy of the data."""
    physics = sim.physics.copy(share_model=True)
    for slot, value in zip(slots, q, strict=True):
        physics.named.data.qpos[MJCF_JOINTS[sim.joint_names[slot]]] = value
    physics.forward()
    body = GRIPPER_BODIES[arm]
    return physics.named.data.xpos[body] + physics.named.data.xmat[body].reshape(3, 3) @ GRASP_POINT


def test_forward_kinematics_agrees_with_the_simulated_gripper(sim):
    state = sim.reset(EPISODE)
    for arm in ("left", "right"):
        ik = ArmIK(sim, arm)
        pose = ik.forward(state.positions[ik.slots])
        eef = state.eef_poses[arm]
        x, y, z, w = eef.quaternion_xyzw
        assert np.allclose(
            Pose.from_quaternion(eef.position, [w, x, y, z]).rotation, pose.rotation, atol=1e-9
        )
        assert np.allclose(pose.position, eef.position + pose.rotation @ GRASP_POINT, atol=1e-9)


@pytest.mark.parametrize("arm", ["left", "right"])
def test_ik_reaches_a_reachable_pose_without_moving_the_simulator(sim, arm):
    start = sim.reset(EPISODE).positions
    before = sim.physics.data.qpos.copy()
    ik = ArmIK(sim, arm)
    goal = start[ik.slots] + np.array([0.3, 0.25, -0.3, 0.2, 0.4, -0.3])
    target = ik.forward(goal)

    result = ik.solve(target, start[ik.slots])

    assert result.converged
    assert result.position_error <= 5e-4 and result.rotation_error <= 5e-3
    assert np.all(result.q >= ik.lower) and np.all(result.q <= ik.upper)
    reached = grasp_point_at(sim, arm, ik.slots, result.q)
    assert np.linalg.norm(reached - target.position) <= 5e-4
    assert np.array_equal(sim.physics.data.qpos, before)


def test_ik_prefers_the_wrist_solution_without_a_half_turned_forearm(sim):
    start = sim.reset(EPISODE).positions
    ik = ArmIK(sim, "right")
    goal = start[ik.slots] + np.array([0.1, 0.3, -0.2, 0.3, 0.5, -0.4])
    # The same gripper pose with the forearm rolled half a turn and the wrist bent the other way.
    flipped = goal.copy()
    flipped[3:] = goal[3] - np.pi, -goal[4], goal[5] + np.pi
    assert np.allclose(ik.forward(flipped).position, ik.forward(goal).position, atol=1e-12)

    result = ik.solve(ik.forward(goal), flipped)

    assert result.converged and result.iterations == 0
    assert np.allclose(result.q, goal, atol=1e-12)


def test_ik_says_when_a_pose_is_out_of_reach(sim):
    start = sim.reset(EPISODE).positions
    ik = ArmIK(sim, "left")
    far = Pose(np.array([1.5, 0.5, 0.3]), np.eye(3))

    result = ik.solve(far, start[ik.slots])

    assert not result.converged
    assert result.position_error > 0.5
    assert np.all(result.q >= ik.lower) and np.all(result.q <= ik.upper)


def test_unknown_arm_is_refused(sim):
    with pytest.raises(SimError, match="unknown ALOHA arm 'middle'"):
        ArmIK(sim, "middle")


def test_script_refuses_another_task():
    insertion = AlohaSim("insertion")
    try:
        with pytest.raises(SimError, match="needs the transfer_cube task, not 'insertion'"):
            TransferCubeScript(insertion)
    finally:
        insertion.close()


def test_plan_starts_where_the_robot_is_and_stays_in_limits(sim):
    script = TransferCubeScript(sim)
    state = sim.reset(EPISODE)
    with pytest.raises(SimError, match="call start"):
        script.targets(state)
    before = sim.physics.data.qpos.copy()

    script.start(state)

    assert np.array_equal(sim.physics.data.qpos, before)
    # No jump at start: the first 20 ms of a 0.15 s ramp (~1e-3 rad), not a step at full speed.
    assert np.max(np.abs(script.targets(state) - state.positions)) < 3e-3
    steps = round(script.duration / sim.control_dt)
    plan = np.array([script.targets(replace(state, time=step * sim.control_dt)) for step in range(steps + 1)])
    assert np.all(plan >= sim.joint_limits[:, 0]) and np.all(plan <= sim.joint_limits[:, 1])
    assert np.max(np.abs(np.diff(plan, axis=0))) < 0.1  # rad or m per 20 ms step: smooth
    rolls = [sim.joint_names.index(f"{arm}_forearm_roll") for arm in ("left", "right")]
    assert np.max(np.abs(plan[:, rolls])) < np.pi / 2  # never a forearm turned half over


def test_scripted_episode_succeeds_by_the_simulators_signal(sim):
    start = sim.reset(EPISODE)
    assert not start.success
    seen, distances = [], []

    def on_step(state, targets):
        seen.append(state.success)
        distances.append(state.object_distance)

    success, steps = run_episode(sim, EPISODE, on_step=on_step)

    assert success
    assert len(seen) == steps
    # The right gripper link closes in on the cube from across the table (0.39 m on this seed) to
    # the grasp, where the cube sits between the finger pads, ~0.12 m out along the link's x.
    assert start.object_distance > 0.3 and min(distances) < 0.15
    assert not any(seen)  # it stopped at the first success
    cube = sim.physics.named.data.qpos["red_box_joint"][:3]
    assert cube[2] > 0.15  # in the air, not on the table


def test_full_demonstration_ends_with_the_cube_in_the_left_gripper(sim):
    script = TransferCubeScript(sim)
    script.start(sim.reset(EPISODE))

    success, steps = run_episode(sim, EPISODE, stop_on_success=False)

    assert success
    assert steps == round(script.duration / sim.control_dt)  # the whole script, release included
    cube = sim.physics.named.data.qpos["red_box_joint"][:3]
    grippers = {arm: sim.physics.named.data.xpos[body] for arm, body in GRIPPER_BODIES.items()}
    assert cube[2] > 0.15
    assert np.linalg.norm(cube - grippers["left"]) < np.linalg.norm(cube - grippers["right"])


def test_perturbed_demonstration_records_clean_labels_and_still_succeeds(sim):
    """DART: drifting noise on the executed arm joints outside the grasp and the handover, the
    clean target as the label, the same noise for the same episode."""
    script = TransferCubeScript(sim, perturbation=0.05)
    state = sim.reset(EPISODE)
    script.start(state)
    steps = round(script.duration / sim.control_dt)
    at = [replace(state, time=step * sim.control_dt) for step in range(steps)]
    offsets = np.array([script.executed(s) - script.targets(s) for s in at])
    times = np.arange(steps) * sim.control_dt + sim.control_dt
    fingers = [i for i, name in enumerate(sim.joint_names) if "finger" in name]
    assert np.all(offsets[:, fingers] == 0.0)  # grippers are never perturbed
    grasp_and_handover = (times > 2.6) & (times < 6.4)
    assert np.all(offsets[grasp_and_handover] == 0.0)
    free = times < 2.2
    assert 0.02 < np.std(offsets[free][:, [i for i in range(14) if i not in fingers]]) < 0.1
    again = TransferCubeScript(sim, perturbation=0.05)
    again.start(sim.reset(EPISODE))
    assert np.array_equal(again.executed(at[10]), script.executed(at[10]))

    labels = []
    success, _ = run_episode(
        sim, EPISODE, perturbation=0.05, on_step=lambda s, targets: labels.append(targets)
    )
    assert success
    assert np.array_equal(labels[10], script.targets(at[10]))  # the label is the clean target
    with pytest.raises(SimError, match="perturbation must be >= 0"):
        TransferCubeScript(sim, perturbation=-1.0)
