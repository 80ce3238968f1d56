"""Action chunks as ROS messages: the one conversion pair between ``policy.chunk.Chunk`` and
``lightwam_ros/ActionChunk``, and the executor's planned path as a ``JointTrajectory`` (for RViz,
and with velocities for a joint trajectory controller) and as RViz markers.

The message stores actions as float32, so a round trip through a message keeps float32 precision;
the stamp travels as exact integer nanoseconds.  The chunk's own checks (``Chunk``) run on the way
in; the conversion adds only what the wire format needs (sizes, float32 range) and, for a
receiver, the bounds of its embodiment (``ChunkBounds``), checked before any array is built: a
valid but huge chunk (100000 steps) is refused in microseconds instead of stalling its receiver.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from geometry_msgs.msg import Point
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
from visualization_msgs.msg import Marker, MarkerArray

from lightwam_ros.msg import ActionChunk
from lightwam_ros.policy.chunk import Chunk, ChunkError, check_finite
from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.ros.log_text import quoted
from lightwam_ros.ros.stamps import (
    StampLike,
    nanoseconds_to_duration,
    nanoseconds_to_stamp,
    stamp_to_nanoseconds,
    to_stamp,
)


def chunk_to_msg(chunk: Chunk) -> ActionChunk:
    """An ``ActionChunk`` message (actions row-major float32) for a chunk."""
    with np.errstate(over="ignore"):  # values beyond float32's range become inf, caught next
        actions32 = chunk.actions.astype(np.float32)
    check_finite(actions32, chunk.action_names)
    msg = ActionChunk()
    msg.header.stamp = nanoseconds_to_stamp(chunk.stamp_ns)
    msg.header.frame_id = chunk.frame_id
    msg.chunk_id = chunk.chunk_id
    msg.embodiment = chunk.embodiment
    msg.action_mode = chunk.action_mode
    msg.action_names = list(chunk.action_names)
    msg.dt = chunk.dt
    msg.horizon, msg.action_dim = chunk.actions.shape
    msg.actions = actions32.ravel()
    msg.execute_steps = chunk.execute_steps
    msg.inference_latency = float(chunk.inference_latency)
    msg.observation_age = float(chunk.observation_age)
    msg.model_id = chunk.model_id
    msg.instruction = chunk.instruction
    return msg


HORIZON_MARGIN = 2  # a received chunk may be up to this many times the embodiment's length
NAME_CHARS = 128  # longest embodiment, action mode, action name, frame id or model id accepted
INSTRUCTION_CHARS = 4096  # longest instruction a chunk may carry


@dataclass(frozen=True)
class ChunkBounds:
    """What a receiver accepts: at most ``max_horizon`` steps of exactly ``action_dim`` values."""

    max_horizon: int
    action_dim: int
    chunk_length: int  # the embodiment's, for the reason

    @classmethod
    def of(cls, spec: EmbodimentSpec) -> ChunkBounds:
        return cls(HORIZON_MARGIN * spec.chunk.length, spec.action_dim, spec.chunk.length)


def check_bounds(msg: ActionChunk, bounds: ChunkBounds) -> None:
    """ChunkError when the message is larger than ``bounds`` allow (sizes and text fields only:
    no array is built)."""
    horizon, action_dim = int(msg.horizon), int(msg.action_dim)
    if horizon > bounds.max_horizon:
        raise ChunkError(
            f"ActionChunk #{msg.chunk_id}: horizon {horizon} exceeds {bounds.max_horizon} "
            f"({HORIZON_MARGIN} x the embodiment's chunk length {bounds.chunk_length})"
        )
    if action_dim != bounds.action_dim or len(msg.action_names) != bounds.action_dim:
        raise ChunkError(
            f"ActionChunk #{msg.chunk_id}: action_dim {action_dim} with "
            f"{len(msg.action_names)} action_names, the embodiment has {bounds.action_dim}"
        )
    texts = [
        ("embodiment", msg.embodiment),
        ("action_mode", msg.action_mode),
        ("frame_id", msg.header.frame_id),
        ("model_id", msg.model_id),
        *(("action name", name) for name in msg.action_names),
    ]
    for field, text in texts:
        if len(text) > NAME_CHARS:
            raise ChunkError(
                f"ActionChunk #{msg.chunk_id}: {field} {quoted(text)} is longer than {NAME_CHARS} characters"
            )
    if len(msg.instruction) > INSTRUCTION_CHARS:
        raise ChunkError(
            f"ActionChunk #{msg.chunk_id}: instruction {quoted(msg.instruction)} "
            f"is longer than {INSTRUCTION_CHARS} characters"
        )


def msg_to_chunk(msg: ActionChunk, bounds: ChunkBounds | None = None) -> Chunk:
    """The ``Chunk`` of a received ``ActionChunk`` (actions as float64 H x A); ChunkError when
    the message is malformed or exceeds ``bounds`` (checked first)."""
    if bounds is not None:
        check_bounds(msg, bounds)
    horizon, action_dim = int(msg.horizon), int(msg.action_dim)
    if horizon == 0 or action_dim == 0:
        raise ChunkError(f"ActionChunk #{msg.chunk_id} is empty: horizon {horizon}, action_dim {action_dim}")
    if len(msg.actions) != horizon * action_dim:
        raise ChunkError(
            f"ActionChunk #{msg.chunk_id}: {len(msg.actions)} action values, expected "
            f"horizon*action_dim = {horizon}*{action_dim} = {horizon * action_dim}"
        )
    actions = np.asarray(msg.actions, dtype=np.float32).reshape(horizon, action_dim)
    return Chunk(
        stamp_ns=stamp_to_nanoseconds(msg.header.stamp),
        actions=actions,
        dt=msg.dt,
        execute_steps=msg.execute_steps,
        chunk_id=msg.chunk_id,
        embodiment=msg.embodiment,
        action_mode=msg.action_mode,
        action_names=tuple(msg.action_names),
        inference_latency=msg.inference_latency,
        observation_age=msg.observation_age,
        model_id=msg.model_id,
        instruction=msg.instruction,
        frame_id=msg.header.frame_id,
    )


def path_to_joint_trajectory(
    joint_names: Sequence[str],
    times_ns: np.ndarray,
    positions: np.ndarray,
    velocities: np.ndarray | None = None,
) -> JointTrajectory:
    """Joint positions (and velocities) at absolute times [ns] as a JointTrajectory:
    ``header.stamp`` is the first time, each point's ``time_from_start`` its offset from it (exact
    nanoseconds).  The executor's planned path for RViz and its plan output for a joint trajectory
    controller (``output_modes: [joint_trajectory_plan]``) both come from here."""
    times = np.asarray(times_ns, dtype=np.int64)
    rows = {"positions": np.asarray(positions, dtype=np.float64)}
    if velocities is not None:
        rows["velocities"] = np.asarray(velocities, dtype=np.float64)
    for name, values in rows.items():
        if values.shape != (times.size, len(joint_names)) or times.size == 0:
            raise ValueError(
                f"need one row of {len(joint_names)} {name} per time, got "
                f"{values.shape} for {times.size} times"
            )
    msg = JointTrajectory(joint_names=list(joint_names))
    msg.header.stamp = nanoseconds_to_stamp(int(times[0]))
    fields = {name: values.tolist() for name, values in rows.items()}
    msg.points = [
        JointTrajectoryPoint(
            time_from_start=nanoseconds_to_duration(int(t - times[0])),
            **{name: values[i] for name, values in fields.items()},
        )
        for i, t in enumerate(times)
    ]
    return msg


def path_markers(
    points_xyz: np.ndarray,
    stamp: StampLike,
    frame_id: str,
    ns: str,
    marker_id: int,
    color: Sequence[float],
    line_width: float = 0.005,
    sphere_diameter: float = 0.015,
) -> MarkerArray:
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
        raise ValueError(f"line_width and sphere_diameter must be > 0, got {line_width}, {sphere_diameter}")
    markers = []
    for offset, (kind, scale) in enumerate(
        ((Marker.LINE_STRIP, (line_width, 0.0, 0.0)), (Marker.SPHERE_LIST, (sphere_diameter,) * 3))
    ):
        marker = Marker(
            ns=ns,
            id=marker_id + offset,
            type=kind,
            action=Marker.ADD,
            points=[Point(x=x, y=y, z=z) for x, y, z in points.tolist()],
        )
        marker.header.stamp = to_stamp(stamp)
        marker.header.frame_id = frame_id
        marker.pose.orientation.w = 1.0
        marker.scale.x, marker.scale.y, marker.scale.z = scale
        marker.color.r, marker.color.g, marker.color.b, marker.color.a = rgba
        markers.append(marker)
    return MarkerArray(markers=markers)
