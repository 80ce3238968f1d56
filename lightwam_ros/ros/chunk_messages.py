"""Action chunks as ROS messages: ``lightwam_ros/ActionChunk`` both ways, the chunk as a
``trajectory_msgs/JointTrajectory`` for ros2_control, and its end-effector path as RViz markers.

``ChunkData`` is the plain-Python form the nodes pass around.  It validates itself, so a chunk
built by the policy and a chunk received from another process pass the same checks before
anything moves.  The message stores actions as float32, so a round trip through a message keeps
float32 precision.

Time convention (the message's and ``control.scheduling``'s): ``stamp`` is the observation's time
and action i is applied during [stamp + i*dt, stamp + (i+1)*dt), so as a position waypoint it is
reached at stamp + (i+1)*dt.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from geometry_msgs.msg import Point
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from lightwam_ros.msg import ActionChunk
from lightwam_ros.ros.stamps import (StampLike, seconds_to_duration, seconds_to_stamp,
                                     stamp_to_seconds, to_stamp)
from lightwam_ros.policy.embodiment import ACTION_MODES

_UINT64_MAX = 2**64 - 1


class ChunkMessageError(ValueError):
    """An action chunk (or its message) is malformed; the message says which field and why."""


@dataclass(frozen=True, kw_only=True)
class ChunkData:
    """One predicted chunk: H x A actions (float64, read-only) and the metadata that places it."""

    stamp: float  # s, the observation the chunk was predicted from
    actions: np.ndarray
    dt: float
    execute_steps: int
    chunk_id: int
    embodiment: str
    action_mode: str
    action_names: tuple[str, ...]
    inference_latency: float = 0.0
    observation_age: float = 0.0
    model_id: str = ""
    instruction: str = ""
    frame_id: str = ""  # frame of Cartesian actions; empty for joint actions

    def __post_init__(self) -> None:
        actions = np.array(self.actions, dtype=np.float64)
        names = tuple(self.action_names)
        if actions.ndim != 2 or 0 in actions.shape:
            raise ChunkMessageError(f"chunk actions must be a non-empty (H, A) array, "
                                    f"got shape {actions.shape}")
        horizon, action_dim = actions.shape
        if len(names) != action_dim or len(set(names)) != action_dim:
            raise ChunkMessageError(
                f"chunk needs {action_dim} distinct action_names, got {list(names)}")
        _check_finite(actions, names)
        for field in ("stamp", "inference_latency", "observation_age"):
            if not math.isfinite(getattr(self, field)):
                raise ChunkMessageError(f"chunk {field} must be finite, got {getattr(self, field)}")
        if self.stamp < 0.0:
            raise ChunkMessageError(f"chunk stamp must be >= 0 s, got {self.stamp}")
        if not (math.isfinite(self.dt) and self.dt > 0.0):
            raise ChunkMessageError(f"chunk dt must be finite and > 0 s, got {self.dt}")
        steps = self.execute_steps
        if not isinstance(steps, numbers.Integral) or not 1 <= steps <= horizon:
            raise ChunkMessageError(
                f"chunk execute_steps must be in [1, horizon={horizon}], got {steps}")
        chunk_id = self.chunk_id
        if not isinstance(chunk_id, numbers.Integral) or not 0 <= chunk_id <= _UINT64_MAX:
            raise ChunkMessageError(f"chunk_id must fit uint64, got {chunk_id}")
        if self.action_mode not in ACTION_MODES:
            raise ChunkMessageError(
                f"chunk action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        actions.flags.writeable = False
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "action_names", names)
        object.__setattr__(self, "execute_steps", int(steps))
        object.__setattr__(self, "chunk_id", int(chunk_id))

    @property
    def horizon(self) -> int:
        return self.actions.shape[0]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]


def _check_finite(actions: np.ndarray, names: Sequence[str]) -> None:
    """Raise naming the first non-finite entry by step and dimension."""
    bad = np.argwhere(~np.isfinite(actions))
    if len(bad):
        step, dim = (int(i) for i in bad[0])
        raise ChunkMessageError(
            f"chunk action at step {step}, dimension {dim} ({names[dim]!r}) is "
            f"{actions[step, dim]} "
            f"({len(bad)} non-finite value(s) in all)")


def chunk_to_msg(chunk: ChunkData) -> ActionChunk:
    """An ``ActionChunk`` message (actions row-major float32) for a validated chunk."""
    with np.errstate(over="ignore"):  # values beyond float32's range become inf, caught next
        actions32 = chunk.actions.astype(np.float32)
    _check_finite(actions32, chunk.action_names)
    msg = ActionChunk()
    msg.header.stamp = seconds_to_stamp(chunk.stamp)
    msg.header.frame_id = chunk.frame_id
    msg.chunk_id = chunk.chunk_id
    msg.embodiment = chunk.embodiment
    msg.action_mode = chunk.action_mode
    msg.action_names = list(chunk.action_names)
    msg.dt = float(chunk.dt)
    msg.horizon, msg.action_dim = chunk.actions.shape
    msg.actions = actions32.ravel()
    msg.execute_steps = chunk.execute_steps
    msg.inference_latency = float(chunk.inference_latency)
    msg.observation_age = float(chunk.observation_age)
    msg.model_id = chunk.model_id
    msg.instruction = chunk.instruction
    return msg


def msg_to_chunk(msg: ActionChunk) -> ChunkData:
    """Validated ``ChunkData`` from a received ``ActionChunk`` (actions as float64 H x A)."""
    horizon, action_dim = int(msg.horizon), int(msg.action_dim)
    if horizon == 0 or action_dim == 0:
        raise ChunkMessageError(f"ActionChunk #{msg.chunk_id} is empty: "
                                f"horizon {horizon}, action_dim {action_dim}")
    if len(msg.actions) != horizon * action_dim:
        raise ChunkMessageError(
            f"ActionChunk #{msg.chunk_id}: {len(msg.actions)} action values, expected "
            f"horizon*action_dim = {horizon}*{action_dim} = {horizon * action_dim}")
    actions = np.asarray(msg.actions, dtype=np.float32).reshape(horizon, action_dim)
    return ChunkData(
        stamp=stamp_to_seconds(msg.header.stamp), actions=actions, dt=msg.dt,
        execute_steps=msg.execute_steps, chunk_id=msg.chunk_id, embodiment=msg.embodiment,
        action_mode=msg.action_mode, action_names=tuple(msg.action_names),
        inference_latency=msg.inference_latency, observation_age=msg.observation_age,
        model_id=msg.model_id, instruction=msg.instruction, frame_id=msg.header.frame_id)


def chunk_to_joint_trajectory(chunk: ChunkData, joint_names: Sequence[str],
                              start_time: Optional[StampLike] = None,
                              executable_only: bool = True) -> JointTrajectory:
    """The chunk as a JointTrajectory a JointTrajectoryController follows with cubic splines.

    ``header.stamp`` is the absolute time of point 0 (default: when action 0 is to be reached,
    stamp + dt); point i is at i*dt.  Velocities are finite differences over the points (central
    inside, forward at the start) and zero at the last point, so a controller that receives no
    newer trajectory brings the arm to rest there instead of stopping with a velocity jump.  ``executable_only`` keeps only the first execute_steps rows.
    """
    if chunk.action_mode != "absolute_joints":
        raise ChunkMessageError(
            f"only absolute_joints chunks are joint trajectories, got {chunk.action_mode!r}: "
            f"convert delta-EEF chunks to joint targets first")
    names = list(joint_names)
    if len(names) != chunk.action_dim or len(set(names)) != len(names):
        raise ChunkMessageError(
            f"need {chunk.action_dim} distinct joint names for the chunk's columns, got {names}")
    positions = chunk.actions[: chunk.execute_steps] if executable_only else chunk.actions
    velocities = (np.gradient(positions, chunk.dt, axis=0) if len(positions) > 1
                  else np.zeros_like(positions))
    velocities[-1] = 0.0  # come to rest at the end if no newer trajectory replaces this one
    msg = JointTrajectory()
    msg.header.stamp = (seconds_to_stamp(chunk.stamp + chunk.dt) if start_time is None
                        else to_stamp(start_time))
    msg.joint_names = names
    msg.points = [
        JointTrajectoryPoint(positions=position, velocities=velocity,
                             time_from_start=seconds_to_duration(i * chunk.dt))
        for i, (position, velocity) in enumerate(zip(positions, velocities))]
    return msg


def path_markers(points_xyz: np.ndarray, stamp: StampLike, frame_id: str, ns: str,
                 marker_id: int, color: Sequence[float], line_width: float = 0.005,
                 sphere_diameter: float = 0.015) -> MarkerArray:
    """A predicted end-effector path: a LINE_STRIP (id ``marker_id``) and a SPHERE_LIST of its
    waypoints (id ``marker_id + 1``), both in namespace ``ns``; ``color`` is RGBA in [0, 1]."""
    points = np.asarray(points_xyz, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) < 2:
        raise ValueError(f"path needs an (N >= 2, 3) array of points, got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("path points must be finite")
    rgba = [float(c) for c in color]
    if len(rgba) != 4 or not all(0.0 <= c <= 1.0 for c in rgba):
        raise ValueError(f"color must be 4 RGBA values in [0, 1], got {list(color)}")
    if not (line_width > 0.0 and sphere_diameter > 0.0):
        raise ValueError(f"line_width and sphere_diameter must be > 0, "
                         f"got {line_width}, {sphere_diameter}")
    markers = []
    for offset, (kind, scale) in enumerate(((Marker.LINE_STRIP, (line_width, 0.0, 0.0)),
                                            (Marker.SPHERE_LIST, (sphere_diameter,) * 3))):
        marker = Marker(ns=ns, id=marker_id + offset, type=kind, action=Marker.ADD,
                        points=[Point(x=x, y=y, z=z) for x, y, z in points.tolist()])
        marker.header.stamp = to_stamp(stamp)
        marker.header.frame_id = frame_id
        marker.pose.orientation.w = 1.0
        marker.scale.x, marker.scale.y, marker.scale.z = scale
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = rgba
        markers.append(marker)
    return MarkerArray(markers=markers)
