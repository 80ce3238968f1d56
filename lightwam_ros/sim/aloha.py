"""gym-aloha's bimanual ViperX tasks (cube transfer, peg insertion) behind ``Simulator``.

The physics and task come straight from gym-aloha, but we step them ourselves instead of through
``dm_control.rl.control.Environment``: its observation renders three 640x480 cameras on every
step (~70 ms), while the bridge needs only the embodiment's three cameras, at its size, when it
publishes.  Arm joints are commanded in rad; gripper fingers in metres, converted to gym-aloha's
normalised gripper action so its task code drives the fingers exactly as in its recordings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightwam_ros.sim.base import (
    Camera,
    Pose,
    SimError,
    SimState,
    Simulator,
    check_camera_size,
    configure_offscreen_rendering,
)

EMBODIMENT = "aloha_sim"
ARMS = ("left", "right")
_ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")


def _arm_mjcf_joints(arm: str) -> dict[str, str]:
    joints = {f"{arm}_{joint}": f"vx300s_{arm}/{joint}" for joint in _ARM_JOINTS}
    return {**joints, f"{arm}_finger": f"vx300s_{arm}/left_finger"}


# Embodiment joint name -> MJCF joint name, in ``AlohaSim.joint_names`` order: per arm six arm
# joints, then ``<arm>_finger``, the arm's MJCF ``left_finger`` slide (m, opening = larger), which
# gym-aloha reads as the gripper position; the mirrored ``right_finger`` is driven by the task
# with it and not exposed.
MJCF_JOINTS: dict[str, str] = {name: mjcf for arm in ARMS for name, mjcf in _arm_mjcf_joints(arm).items()}
# The body that carries each arm's gripper: the end-effector frame (embodiment ee_frame).
GRIPPER_BODIES = {arm: f"vx300s_{arm}/gripper_link" for arm in ARMS}
# Embodiment camera role -> MJCF camera.
CAMERA_NAMES = {"head": "top", "left_wrist": "left_wrist", "right_wrist": "right_wrist"}


@dataclass(frozen=True)
class AlohaTask:
    """A gym-aloha task: its MJCF, its task class and the instruction we give the policy."""

    xml_file: str
    task_class: str  # in gym_aloha.tasks.sim
    instruction: str
    reach: tuple[str, str]  # (arm, body): the gripper that takes the object first, and the object


TASKS = {
    "transfer_cube": AlohaTask(
        "bimanual_viperx_transfer_cube.xml",
        "TransferCubeTask",
        "pick up the red cube with the right arm and hand it to the left arm",
        ("right", "box"),
    ),
    "insertion": AlohaTask(
        "bimanual_viperx_insertion.xml",
        "InsertionTask",
        "pick up the socket with the left arm and the peg with the right arm, "
        "then insert the peg into the socket in mid-air",
        ("right", "peg"),
    ),
}


class AlohaSim(Simulator):
    """One gym-aloha task; ``step`` runs gym-aloha's 50 Hz control step (10 physics steps)."""

    embodiment = EMBODIMENT
    joint_names = tuple(MJCF_JOINTS)

    def __init__(
        self, task: str = "transfer_cube", camera_size: tuple[int, int] = (240, 320), shadows: bool = False
    ) -> None:
        if task not in TASKS:
            raise SimError(f"unknown ALOHA task {task!r}; choose one of {sorted(TASKS)}")
        height, width = check_camera_size(camera_size)
        modules = _import_gym_aloha()
        info = TASKS[task]
        self.task_name = task
        self.instruction = info.instruction
        self.physics = modules.Physics.from_xml_path(str(modules.assets_dir / info.xml_file))
        self._task = getattr(modules.tasks, info.task_class)()
        self._box_pose_global = modules.tasks.BOX_POSE
        self._sample_pose = _pose_sampler(task, modules.utils)
        self._box_pose: np.ndarray | None = None
        self._episode: int | None = None
        self._gripper_open = modules.constants.PUPPET_GRIPPER_POSITION_OPEN
        self._gripper_closed = modules.constants.PUPPET_GRIPPER_POSITION_CLOSE

        model = self.physics.model
        timestep = float(model.opt.timestep)
        self._n_sub_steps = round(modules.constants.DT / timestep)
        self.control_dt = self._n_sub_steps * timestep
        joint_ids = [model.name2id(name, "joint") for name in MJCF_JOINTS.values()]
        self._qpos_index = np.array([model.jnt_qposadr[i] for i in joint_ids])
        self._qvel_index = np.array([model.jnt_dofadr[i] for i in joint_ids])
        self.joint_limits = np.array([model.jnt_range[i] for i in joint_ids], dtype=float)
        self._gripper_slots = [self.joint_names.index(f"{arm}_finger") for arm in ARMS]
        self._eef_bodies = {arm: model.name2id(GRIPPER_BODIES[arm], "body") for arm in ARMS}
        reach_arm, reach_body = TASKS[task].reach
        self._reach = (reach_arm, model.name2id(reach_body, "body"))
        if not shadows:
            model.light_castshadow[:] = 0
        self.cameras = tuple(Camera(role, name, height, width) for role, name in CAMERA_NAMES.items())
        self._renderers: dict[str, Any] = {}
        self._make_renderer = modules.Camera
        self._closed = False

    @property
    def episode(self) -> int:
        """The index of the current episode (the seed of its scene)."""
        if self._episode is None:
            raise SimError("no episode yet: call reset(episode) first")
        return self._episode

    @property
    def box_pose(self) -> np.ndarray:
        """The episode's object pose(s) as sampled (xyz + quaternion wxyz; insertion: peg then
        socket), for scripted demonstrations that plan from it."""
        if self._box_pose is None:
            raise SimError("no episode yet: call reset(episode) first")
        return self._box_pose.copy()

    def reset(self, episode: int) -> SimState:
        self._check_open()
        if isinstance(episode, bool) or not isinstance(episode, (int, np.integer)) or episode < 0:
            raise SimError(f"episode must be a non-negative integer, got {episode!r}")
        self._box_pose = self._sample_pose(int(episode))
        self._episode = int(episode)
        # gym-aloha's tasks read the object pose from a module global, as its env sets it.
        self._box_pose_global[0] = self._box_pose
        with self.physics.reset_context():
            self._task.initialize_episode(self.physics)
        return self._state()

    def step(self, targets: np.ndarray) -> SimState:
        self._check_open()
        if self._box_pose is None:
            raise SimError("no episode yet: call reset(episode) first")
        action = self.checked_targets(targets)
        for slot in self._gripper_slots:
            action[slot] = self.gripper_to_normalized(action[slot])
        self._task.before_step(action, self.physics)
        self.physics.step(self._n_sub_steps)
        self._task.after_step(self.physics)
        return self._state()

    def render(self) -> dict[str, np.ndarray]:
        self._check_open()
        images = {}
        for camera in self.cameras:
            if camera.role not in self._renderers:
                self._renderers[camera.role] = self._make_renderer(
                    self.physics, height=camera.height, width=camera.width, camera_id=camera.sim_name
                )
            # dm_control returns a flipped view of the camera's buffer, which its next render
            # overwrites: copy.
            images[camera.role] = self._renderers[camera.role].render().copy()
        return images

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._renderers.clear()
            self.physics.free()

    def gripper_to_normalized(self, position: float) -> float:
        """Finger position (m) -> gym-aloha's gripper action (0 closed .. 1 open), clipped."""
        fraction = (position - self._gripper_closed) / (self._gripper_open - self._gripper_closed)
        return float(np.clip(fraction, 0.0, 1.0))

    def normalized_to_gripper(self, value: float) -> float:
        """gym-aloha's gripper value (0 closed .. 1 open) -> finger position (m)."""
        return float(self._gripper_closed + value * (self._gripper_open - self._gripper_closed))

    def _state(self) -> SimState:
        data = self.physics.data
        poses = {}
        for arm, body in self._eef_bodies.items():
            w, x, y, z = data.xquat[body]
            poses[arm] = Pose(position=data.xpos[body].copy(), quaternion_xyzw=np.array([x, y, z, w]))
        return SimState(
            time=float(data.time),
            positions=data.qpos[self._qpos_index].copy(),
            velocities=data.qvel[self._qvel_index].copy(),
            eef_poses=poses,
            success=bool(self._task.get_reward(self.physics) == self._task.max_reward),
            object_distance=float(np.linalg.norm(poses[self._reach[0]].position - data.xpos[self._reach[1]])),
        )

    def _check_open(self) -> None:
        if self._closed:
            raise SimError("the ALOHA simulator is closed")


@dataclass(frozen=True)
class _GymAloha:
    Physics: Any
    Camera: Any
    tasks: Any
    utils: Any
    constants: Any
    assets_dir: Any


def _import_gym_aloha() -> _GymAloha:
    """Import dm_control and gym-aloha after choosing the headless GL backend."""
    backend = configure_offscreen_rendering()
    try:
        from dm_control import _render, mujoco
        from gym_aloha import constants, utils
        from gym_aloha.tasks import sim as tasks
    except ImportError as error:
        raise SimError(
            f"the ALOHA simulator needs gym-aloha and dm-control ({error}); install requirements/sim.txt"
        ) from None
    # dm_control fixes its GL backend when first imported; imported earlier without MUJOCO_GL it
    # may have picked GLFW, which fails on the first render of a headless machine.
    if _render.BACKEND != backend:
        raise SimError(
            f"dm_control was imported with the {_render.BACKEND!r} GL backend before "
            f"MUJOCO_GL={backend} was set: build the simulator (or call "
            "lightwam_ros.sim.base.configure_offscreen_rendering()) before importing "
            "dm_control or gym_aloha, or set MUJOCO_GL in the environment"
        )
    return _GymAloha(
        Physics=mujoco.Physics,
        Camera=mujoco.Camera,
        tasks=tasks,
        utils=utils,
        constants=constants,
        assets_dir=constants.ASSETS_DIR,
    )


def _pose_sampler(task: str, utils: Any) -> Callable[[int], np.ndarray]:
    """gym-aloha's own object-pose sampling, seeded by the episode index as its env seeds it."""
    if task == "transfer_cube":
        return lambda episode: np.asarray(utils.sample_box_pose(episode), dtype=float)
    return lambda episode: np.concatenate(utils.sample_insertion_pose(episode)).astype(float)
