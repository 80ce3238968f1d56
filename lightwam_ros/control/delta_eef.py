"""Delta end-effector chunks (LIBERO/robosuite style) -> absolute joint-target chunks.

The executor is joint-space only; a delta-EEF policy's chunk is converted once, when it arrives.
The deltas are integrated from the end-effector pose of the observation the chunk was predicted
from (FK of ``q_start``, the joint state at the chunk's stamp), step by step as robosuite's
OSC_POSE applies them, and every pose is solved by IK warm-started from the previous step.  The
gripper component becomes a finger-position column appended after the arm joints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lightwam_ros.control.scheduling import ActionChunk
from lightwam_ros.policy.kinematics import SerialChain, integrate_delta_eef, panda_chain

DELTA_EEF_DIM = 7  # dx, dy, dz, drx, dry, drz, gripper


@dataclass(frozen=True)
class GripperMap:
    """Gripper command -> finger joint position, linear between the open and closed commands.

    Defaults: Franka Hand (0.04 m per finger open, 0 closed) with robosuite's convention (-1
    opens, +1 closes).  The midpoint command (0 for robosuite, a sign() tie) means "leave the
    fingers where they are", as robosuite reads it: the previous finger target is kept.
    """

    open_position: float = 0.04
    closed_position: float = 0.0
    command_open: float = -1.0
    command_close: float = 1.0

    def __post_init__(self) -> None:
        values = (self.open_position, self.closed_position, self.command_open, self.command_close)
        if not all(math.isfinite(v) for v in values) or self.command_open == self.command_close:
            raise ValueError(f"GripperMap needs finite values and distinct commands, got {values}")

    def to_position(self, command: float, previous: float) -> float:
        midpoint = 0.5 * (self.command_open + self.command_close)
        if command == midpoint:
            return previous
        frac = (command - self.command_open) / (self.command_close - self.command_open)
        frac = min(1.0, max(0.0, frac))
        return self.open_position + frac * (self.closed_position - self.open_position)


@dataclass(frozen=True, eq=False)
class DeltaEefConversion:
    chunk: ActionChunk  # (H, dof + 1) joint targets, then the finger position
    ok: bool  # every step's IK converged
    reason: str  # names the first step whose IK failed; empty when ok
    max_position_error: float  # m, over all steps
    max_rotation_error: float  # rad, over all steps


def delta_eef_chunk_to_joint_targets(
    chunk: ActionChunk,
    q_start: np.ndarray,
    finger_start: float,
    chain: SerialChain | None = None,
    gripper: GripperMap = GripperMap(),
    pos_scale: float = 0.05,
    rot_scale: float = 0.5,
    bound: float = 1.0,
    ik_iterations: int = 100,
) -> DeltaEefConversion:
    """Integrate every row of a (H, 7) delta-EEF chunk and solve IK for it.

    ``q_start``: arm joints when the chunk's observation was taken; ``finger_start``: finger
    position then (kept while the gripper command is at its midpoint).  Non-finite deltas raise
    ValueError: validate before converting.
    """
    chain = chain or panda_chain()
    if chunk.dim != DELTA_EEF_DIM:
        raise ValueError(f"a delta-EEF chunk has {DELTA_EEF_DIM} columns, got {chunk.dim}")
    if not np.all(np.isfinite(chunk.actions)):
        raise ValueError("delta-EEF chunk contains non-finite values")
    if not math.isfinite(finger_start):
        raise ValueError(f"finger_start must be finite, got {finger_start}")
    q = np.asarray(q_start, dtype=np.float64)
    pose = chain.forward(q)
    finger = float(finger_start)
    targets = np.empty((chunk.horizon, chain.dof + 1))
    reason = ""
    worst_pos = worst_rot = 0.0
    for step, delta in enumerate(chunk.actions):
        pose = integrate_delta_eef(pose, delta, pos_scale, rot_scale, bound)
        result = chain.inverse(pose, q, max_iterations=ik_iterations)
        q = result.q
        finger = gripper.to_position(float(delta[6]), finger)
        targets[step, : chain.dof] = q
        targets[step, chain.dof] = finger
        worst_pos = max(worst_pos, result.position_error)
        worst_rot = max(worst_rot, result.rotation_error)
        if not result.converged and not reason:
            reason = (
                f"IK did not converge at step {step}: position error "
                f"{result.position_error:.4g} m, rotation error {result.rotation_error:.4g} rad"
            )
    joint_chunk = ActionChunk(chunk.stamp, chunk.dt, targets, chunk.execute_steps, chunk.chunk_id)
    return DeltaEefConversion(joint_chunk, not reason, reason, worst_pos, worst_rot)
