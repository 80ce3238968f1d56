"""AlohaSim: gym-aloha's tasks behind the Simulator interface, checked against the aloha_sim
embodiment and gym-aloha's own conventions (object poses, gripper normalisation, qpos)."""

from __future__ import annotations

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.runner import PolicyRunner
from lightwam_ros.policy.state_builder import StateBuilder
from lightwam_ros.sim.aloha import MJCF_JOINTS, AlohaSim
from lightwam_ros.sim.base import SimError, configure_offscreen_rendering
from lightwam_ros.tools.assets.make_tiny import make_tiny_package

configure_offscreen_rendering()  # before gym-aloha imports dm_control, which fixes its GL backend
gym_aloha_sim = pytest.importorskip("gym_aloha.tasks.sim", reason="needs requirements/sim.txt")

SPEC = load_embodiment("aloha_sim")
FINGERS = [AlohaSim.joint_names.index(name) for name in ("left_finger", "right_finger")]


@pytest.fixture(scope="module")
def sim():
    simulator = AlohaSim("transfer_cube")
    yield simulator
    simulator.close()


def box_position(sim: AlohaSim) -> np.ndarray:
    return sim.physics.named.data.qpos["red_box_joint"][:3].copy()


def controls(sim: AlohaSim, joints: list[str]) -> np.ndarray:
    """The actuator commands (data.ctrl) of the named joints' position servos."""
    model = sim.physics.model
    ids = [model.name2id(MJCF_JOINTS[name], "joint") for name in joints]
    return sim.physics.data.ctrl[
        [int(np.flatnonzero(model.actuator_trnid[:, 0] == i)[0]) for i in ids]
    ].copy()


def run(sim: AlohaSim, targets: np.ndarray, steps: int):
    for _ in range(steps):
        state = sim.step(targets)
    return state


# ------------------------------------------------------------------------ embodiment agreement
def test_joints_limits_cameras_and_frames_match_the_embodiment(sim):
    assert sim.embodiment == SPEC.name == "aloha_sim"
    assert sim.joint_names == SPEC.robot_joints
    for name, (lower, upper) in zip(sim.joint_names, sim.joint_limits, strict=True):
        spec_lower, spec_upper = SPEC.joint_limit(name)
        if name in ("left_finger", "right_finger"):  # gym-aloha's normalisation spans the range
            assert spec_lower <= lower < upper <= spec_upper
        else:
            assert (lower, upper) == (spec_lower, spec_upper)
    assert [c.role for c in sim.cameras] == list(SPEC.canvas.roles)
    for camera, spec_camera in zip(sim.cameras, SPEC.canvas.cameras, strict=True):
        assert (camera.height, camera.width) == spec_camera.source_size
    for arm in SPEC.arms:
        for body in (arm.base_frame, arm.ee_frame):
            assert sim.physics.model.name2id(body, "body") >= 0


def test_state_vector_equals_gym_alohas_own_qpos_observation(sim):
    sim.reset(2)
    state = run(
        sim, np.array([0.1, -0.5, 0.8, 0.2, -0.1, 0.3, 0.045, -0.1, -0.7, 1.0, -0.2, 0.1, -0.3, 0.03]), 10
    )
    builder = StateBuilder(SPEC, {})
    joints = [state.positions[sim.joint_names.index(name)] for name in builder.joint_names]
    expected = gym_aloha_sim.BimanualViperXTask.get_qpos(sim.physics)
    np.testing.assert_allclose(builder.build(np.array(joints)).vector, expected, atol=1e-12)


# ------------------------------------------------------------------------ reset and time
def test_reset_is_deterministic_per_episode_and_restarts_time(sim):
    first = sim.reset(3)
    pose = sim.box_pose
    np.testing.assert_array_equal(box_position(sim), pose[:3])
    run(sim, first.positions + 0.1, 5)
    again = sim.reset(3)
    np.testing.assert_array_equal(sim.box_pose, pose)
    np.testing.assert_array_equal(again.positions, first.positions)
    assert again.time == 0.0 and not again.success
    sim.reset(4)
    assert np.linalg.norm(sim.box_pose[:3] - pose[:3]) > 1e-3
    np.testing.assert_array_equal(box_position(sim), sim.box_pose[:3])


def test_each_step_advances_control_dt(sim):
    start = sim.reset(0)
    assert sim.control_dt == pytest.approx(0.02)
    times = [sim.step(start.positions).time for _ in range(5)]
    np.testing.assert_allclose(times, sim.control_dt * np.arange(1, 6), rtol=1e-9)


def test_insertion_samples_peg_and_socket_and_starts_unsolved():
    sim = AlohaSim("insertion", camera_size=(48, 64))
    try:
        state = sim.reset(1)
        assert sim.box_pose.shape == (14,) and not state.success
        assert "insert the peg" in sim.instruction
        assert {k: v.shape for k, v in sim.render().items()} == {
            role: (48, 64, 3) for role in SPEC.canvas.roles
        }
    finally:
        sim.close()


# ------------------------------------------------------------------------ commands
def test_targets_move_the_joints_to_them(sim):
    start = sim.reset(0)
    targets = start.positions.copy()
    targets[:6] += 0.3
    targets[7:13] -= 0.3
    targets[FINGERS] = 0.045
    state = run(sim, targets, 25)
    before = np.abs(targets - start.positions)
    after = np.abs(targets - state.positions)
    assert np.all(after[:6] < 0.02) and np.all(after[7:13] < 0.02)
    assert np.all(after[FINGERS] < 0.2 * before[FINGERS])
    assert np.abs(state.velocities).max() < 0.5  # settled, not swinging through


def test_targets_beyond_the_limits_act_as_the_limits(sim):
    start = sim.reset(0)
    beyond = start.positions.copy()
    beyond[0], beyond[8], beyond[FINGERS[0]] = 10.0, -10.0, 1.0
    at_limit = start.positions.copy()
    at_limit[0], at_limit[8] = sim.joint_limits[0, 1], sim.joint_limits[8, 0]
    at_limit[FINGERS[0]] = sim.joint_limits[FINGERS[0], 1]
    clipped = run(sim, beyond, 3)
    # MuJoCo would clamp the servo commands to the same ranges, but only inside its dynamics:
    # data.ctrl shows what the simulator was told.
    np.testing.assert_allclose(
        controls(sim, ["left_waist", "right_shoulder", "left_finger"]),
        at_limit[[0, 8, FINGERS[0]]],
        atol=1e-12,
    )
    sim.reset(0)
    exact = run(sim, at_limit, 3)
    np.testing.assert_array_equal(clipped.positions, exact.positions)


def test_finger_targets_in_metres_reach_gym_alohas_normalised_action(sim):
    gripper = SPEC.arm("left").gripper
    assert sim.gripper_to_normalized(gripper.open_position) == pytest.approx(1.0)
    assert sim.gripper_to_normalized(gripper.closed_position) == pytest.approx(0.0)
    assert sim.gripper_to_normalized(0.5) == 1.0 and sim.gripper_to_normalized(-0.5) == 0.0
    for metres in (0.021, 0.03, 0.057):
        normalized = sim.gripper_to_normalized(metres)
        assert normalized == pytest.approx(gripper.joint_to_command(metres))
        assert sim.normalized_to_gripper(normalized) == pytest.approx(metres)
    start = sim.reset(0)
    targets = start.positions.copy()
    targets[FINGERS] = (0.03, 0.05)
    sim.step(targets)
    np.testing.assert_allclose(controls(sim, ["left_finger", "right_finger"]), (0.03, 0.05), atol=1e-12)


@pytest.mark.parametrize("targets", [np.zeros(13), np.full(14, np.nan)], ids=["shape", "nan"])
def test_bad_targets_are_refused_and_change_nothing(sim, targets):
    sim.reset(0)
    qpos, ctrl = sim.physics.data.qpos.copy(), sim.physics.data.ctrl.copy()
    with pytest.raises(SimError, match="14 finite values"):
        sim.step(targets)
    assert sim.physics.data.time == 0.0
    np.testing.assert_array_equal(sim.physics.data.qpos, qpos)
    np.testing.assert_array_equal(sim.physics.data.ctrl, ctrl)


def test_bad_construction_and_use_are_refused():
    with pytest.raises(SimError, match="unknown ALOHA task 'stack'"):
        AlohaSim("stack")
    with pytest.raises(SimError, match="camera_size"):
        AlohaSim(camera_size=(0, 320))
    sim = AlohaSim()
    with pytest.raises(SimError, match="reset"):
        sim.step(np.zeros(14))
    with pytest.raises(SimError, match="non-negative integer"):
        sim.reset(-1)
    sim.close()
    with pytest.raises(SimError, match="closed"):
        sim.reset(0)


# ------------------------------------------------------------------------ images
def test_render_gives_each_role_at_its_size_showing_the_scene(sim):
    sim.reset(0)
    first = sim.render()
    assert set(first) == set(SPEC.canvas.roles)
    for image in first.values():
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        assert image.std() > 10
    sim.reset(5)  # the cube elsewhere: the top camera sees it move
    assert np.abs(sim.render()["head"].astype(int) - first["head"]).max() > 100


# ------------------------------------------------------------------------ with the policy
def test_a_tiny_policy_runs_on_simulated_observations_and_its_step_executes(sim, tmp_path):
    package = make_tiny_package("aloha_sim", tmp_path)
    runner = PolicyRunner.from_files(package.checkpoint, package.instructions, warmup=0, device="cpu")
    state = sim.reset(0)
    builder = StateBuilder(SPEC, {})
    joints = np.array([state.positions[sim.joint_names.index(n)] for n in builder.joint_names])
    output = runner.predict(sim.render(), builder.build(joints).vector, runner.tasks[0])
    assert output.chunk.actions.shape == (SPEC.chunk.length, 14)
    targets = output.chunk.actions[0].copy()
    for arm, slot in zip(SPEC.arms, FINGERS, strict=True):
        targets[slot] = arm.gripper.command_to_joint(targets[slot])
    assert sim.step(targets).time == pytest.approx(sim.control_dt)
