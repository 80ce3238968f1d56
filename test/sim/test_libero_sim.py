"""LiberoSim: a LIBERO task (robosuite) behind the Simulator interface, checked against the
libero_franka embodiment and robosuite's controller conventions.  One construction (~10 s) is
shared by the module; one subprocess checks that closing leaves a clean interpreter exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.sim.base import SimError
from lightwam_ros.sim.libero import ARM_DOF, LiberoSim, instruction_for

pytest.importorskip("libero.libero.envs", reason="needs requirements/sim.txt")

SPEC = load_embodiment("libero_franka")
CAMERA_SIZE = (96, 128)  # not square, so a height/width mix-up shows
OUTPUT_MAX = 0.05  # rad: robosuite JOINT_POSITION's largest goal offset per control step


@pytest.fixture(scope="module")
def sim():
    simulator = LiberoSim("libero_spatial", 0, camera_size=CAMERA_SIZE)
    yield simulator
    simulator.close()


def hold_then(state, **changes) -> np.ndarray:
    """The state's positions as targets, with some joints (by name) replaced."""
    targets = state.positions.copy()
    for name, value in changes.items():
        targets[LiberoSim.joint_names.index(name)] = value
    return targets


def test_joints_limits_and_cameras_match_the_embodiment(sim):
    assert sim.embodiment == SPEC.name
    assert sim.joint_names == SPEC.robot_joints
    for name, (lower, upper) in zip(sim.joint_names, sim.joint_limits, strict=True):
        assert (lower, upper) == pytest.approx(SPEC.joint_limit(name))
    assert [camera.role for camera in sim.cameras] == list(SPEC.canvas.roles)
    assert sim.control_dt == pytest.approx(1.0 / SPEC.policy_rate_hz)


def test_task_instruction_and_success_at_reset(sim):
    assert sim.instruction.strip()
    assert sim.instruction == instruction_for("libero_spatial", 0)
    assert sim.task_name.replace("_", " ") == sim.instruction  # LIBERO-Spatial's naming
    state = sim.reset(0)
    assert state.success is False
    assert state.time == 0.0


def test_reset_repeats_an_episode_and_episodes_differ(sim):
    first = sim.reset(3)
    sim.step(hold_then(first, panda_joint1=first.positions[0] + 0.3))
    again = sim.reset(3)
    np.testing.assert_array_equal(again.positions, first.positions)
    np.testing.assert_array_equal(again.eef_poses["arm"].position, first.eef_poses["arm"].position)
    wrapped = sim.reset(3 + sim.init_state_count)
    np.testing.assert_array_equal(wrapped.positions, first.positions)
    other = sim.reset(4)
    assert np.abs(other.positions[:ARM_DOF] - first.positions[:ARM_DOF]).max() > 1e-3


def test_step_moves_each_joint_toward_its_target_within_the_controller_limit(sim):
    start = sim.reset(1)
    offsets = np.array([0.3, -0.2, 0.3, 0.2, -0.3, 0.3, -0.3])
    targets = start.positions.copy()
    targets[:ARM_DOF] += offsets
    state = start
    for step in range(1, 4):
        previous = state.positions
        state = sim.step(targets)
        assert np.abs(state.positions - previous)[:ARM_DOF].max() <= OUTPUT_MAX
        assert state.time == pytest.approx(step * sim.control_dt)
    moved = state.positions[:ARM_DOF] - start.positions[:ARM_DOF]
    assert np.all(moved * np.sign(offsets) > 0.01), moved


def test_targets_beyond_the_per_step_limit_are_clipped_to_it(sim):
    """robosuite's goal is at most OUTPUT_MAX ahead: any farther target drives the same step."""
    first_moves = []
    for offset in (0.03, 0.06, 0.3):
        state = sim.reset(1)
        moved = sim.step(hold_then(state, panda_joint4=state.positions[3] + offset))
        first_moves.append(moved.positions[3] - state.positions[3])
    nearer, at_limit, beyond = first_moves
    assert 0.0 < nearer < at_limit
    assert beyond == pytest.approx(at_limit, abs=1e-9)


def test_a_near_target_is_reached_and_held(sim):
    state = sim.reset(1)
    targets = state.positions.copy()
    targets[:ARM_DOF] += 0.02
    for _ in range(8):
        state = sim.step(targets)
    assert np.abs(state.positions[:ARM_DOF] - targets[:ARM_DOF]).max() < 2e-3
    assert np.abs(state.velocities[:ARM_DOF]).max() < 0.05


def test_gripper_targets_close_and_open_the_fingers_reported_positive(sim):
    fingers = slice(ARM_DOF, None)
    state = sim.reset(0)
    opened = state.positions[fingers]
    assert np.all(opened > 0.03)  # the settle steps opened them
    closed_target = hold_then(state, panda_finger_joint1=0.0, panda_finger_joint2=0.0)
    for _ in range(12):
        state = sim.step(closed_target)
        assert np.all(state.positions[fingers] >= 0.0)
    assert np.all(state.positions[fingers] < 0.005)
    open_target = hold_then(state, panda_finger_joint1=0.04, panda_finger_joint2=0.04)
    for _ in range(12):
        state = sim.step(open_target)
    assert np.all(state.positions[fingers] > 0.03)


def test_gripper_command_compares_with_the_open_closed_midpoint(sim):
    gripper = SPEC.arm("arm").gripper
    assert sim.gripper_command(np.array([0.005, 0.015])) == gripper.command_close
    assert sim.gripper_command(np.array([0.025, 0.035])) == gripper.command_open


def test_eef_pose_is_finite_with_a_unit_quaternion_and_follows_the_arm(sim):
    state = sim.reset(2)
    pose = state.eef_poses["arm"]
    assert set(state.eef_poses) == {arm.name for arm in SPEC.arms}
    assert pose.position.shape == (3,) and np.all(np.isfinite(pose.position))
    assert np.linalg.norm(pose.quaternion_xyzw) == pytest.approx(1.0, abs=1e-6)
    targets = hold_then(state, panda_joint1=state.positions[0] + 0.2)
    for _ in range(4):
        moved = sim.step(targets)
    assert np.linalg.norm(moved.eef_poses["arm"].position - pose.position) > 0.01


def test_render_gives_each_camera_role_at_the_configured_size(sim):
    state = sim.reset(0)
    images = sim.render()
    assert set(images) == set(SPEC.canvas.roles)
    for image in images.values():
        assert image.shape == (*CAMERA_SIZE, 3) and image.dtype == np.uint8
        assert image.std() > 5.0  # a scene, not a blank buffer
    np.testing.assert_array_equal(sim.render()["wrist"], images["wrist"])
    for _ in range(3):
        sim.step(hold_then(state, panda_joint1=state.positions[0] + 0.3))
    assert not np.array_equal(sim.render()["wrist"], images["wrist"])


def test_bad_requests_raise_and_change_nothing(sim):
    state = sim.reset(1)
    with pytest.raises(SimError, match="9 finite values"):
        sim.step(np.zeros(8))
    with pytest.raises(SimError, match="finite"):
        sim.step(np.full(9, np.nan))
    with pytest.raises(SimError, match="non-negative"):
        sim.reset(-1)
    assert sim.step(state.positions).time == pytest.approx(sim.control_dt)
    with pytest.raises(SimError, match="unknown LIBERO suite"):
        instruction_for("libero_nowhere", 0)
    with pytest.raises(SimError, match=r"tasks 0\.\.9"):
        instruction_for("libero_spatial", 10)
    with pytest.raises(SimError, match="camera_size"):
        LiberoSim(camera_size=(0, 64))


def test_close_frees_rendering_for_a_clean_exit():
    """robosuite frees its EGL context in __del__; left to interpreter exit, that runs after EGL
    is terminated and prints EGLError tracebacks."""
    script = textwrap.dedent("""
        import numpy as np
        from lightwam_ros.sim.base import SimError
        from lightwam_ros.sim.libero import LiberoSim
        sim = LiberoSim(camera_size=(32, 32))
        sim.reset(0)
        sim.render()
        sim.close()
        sim.close()
        try:
            sim.step(np.zeros(9))
        except SimError as error:
            print("closed:", error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "closed: the LIBERO simulator is closed" in result.stdout
    assert "EGLError" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
