"""What every simulated robot offers the bridge: joint targets in, joint state, end-effector
poses, camera images and task success out, stepped at the simulator's own control rate."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """A camera role of the embodiment, the simulator camera that plays it, and its size."""

    role: str
    sim_name: str
    height: int
    width: int


@dataclass(frozen=True)
class Pose:
    """An end-effector pose in the simulator's world frame: metres and a unit quaternion
    (x, y, z, w), the order ROS messages use."""

    position: np.ndarray
    quaternion_xyzw: np.ndarray


@dataclass(frozen=True)
class SimState:
    """The robot after a reset or a step.  ``positions``/``velocities`` follow the simulator's
    ``joint_names`` (arm joints in rad, gripper finger joints in m, ROS sign conventions)."""

    time: float  # simulated seconds since the episode's reset
    positions: np.ndarray
    velocities: np.ndarray
    eef_poses: dict[str, Pose]  # by the embodiment's arm name
    success: bool  # the simulator's own success signal
    # How far (m) the gripper that acts first is from the object it must take: progress short of
    # success (a policy that moves toward the object shrinks it). None where a task has none.
    object_distance: float | None = None


class SimError(RuntimeError):
    """The simulator cannot be built or cannot do what was asked; the message says why."""


class Simulator(ABC):
    """A task in a simulator, stepped by joint-position targets.

    Subclasses set ``embodiment`` (a shipped embodiment name), ``control_dt`` (s per ``step``),
    ``joint_names``, ``joint_limits`` ((J, 2) array, the simulator's own ranges),
    ``cameras`` and ``instruction`` (the task's language instruction).
    """

    embodiment: str
    control_dt: float
    joint_names: tuple[str, ...]
    joint_limits: np.ndarray
    cameras: tuple[Camera, ...]
    instruction: str

    @abstractmethod
    def reset(self, episode: int) -> SimState:
        """Start episode ``episode``: the same index gives the same initial scene (seed or
        recorded init state), so evaluations repeat."""

    @abstractmethod
    def step(self, targets: np.ndarray) -> SimState:
        """Drive towards joint-position ``targets`` (``joint_names`` order) for ``control_dt``
        through the simulator's own controller; targets are clipped to ``joint_limits``."""

    @abstractmethod
    def render(self) -> dict[str, np.ndarray]:
        """One (height, width, 3) uint8 image per camera role, as the simulator renders it
        (LIBERO's are upside down: the embodiment rotates them, as in training)."""

    def close(self) -> None:  # noqa: B027 - a default that subclasses may keep, not a hook to write
        """Free the simulator (rendering contexts); the default has nothing to free."""

    def checked_targets(self, targets: np.ndarray) -> np.ndarray:
        """``targets`` as finite floats, one per joint, clipped to ``joint_limits``; SimError
        otherwise (a bad target never reaches the simulator)."""
        targets = np.asarray(targets, dtype=float)
        if targets.shape != (len(self.joint_names),) or not np.all(np.isfinite(targets)):
            raise SimError(
                f"targets must be {len(self.joint_names)} finite values in "
                f"{self.joint_names} order, got shape {targets.shape}"
            )
        return np.clip(targets, self.joint_limits[:, 0], self.joint_limits[:, 1])


def check_camera_size(camera_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) as positive ints; SimError naming the bad value otherwise."""
    try:
        height, width = (int(value) for value in camera_size)
    except (TypeError, ValueError):
        raise SimError(f"camera_size must be (height, width), got {camera_size!r}") from None
    if height <= 0 or width <= 0:
        raise SimError(f"camera_size must be positive, got {camera_size!r}")
    return height, width


def configure_offscreen_rendering() -> str:
    """Choose MuJoCo's headless GL backend before any simulator import: EGL (Mesa on a CPU
    machine, the GPU's driver on a GPU one) unless the user chose one.  Returns the choice."""
    backend = os.environ.setdefault("MUJOCO_GL", "egl")
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend
