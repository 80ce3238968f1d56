"""Delta end-effector chunks (LIBERO/robosuite style) -> absolute joint targets.

The executor is joint-space only; a delta-EEF policy's chunk is converted once, when it arrives.
The deltas are integrated from the end-effector pose of ``q_start`` (the executor passes the
joints it is commanding), step by step as robosuite's OSC_POSE applies them, and every pose is
solved by IK warm-started from the previous step.  The gripper component becomes a
finger-position column appended after the arm joints, through the embodiment's gripper map
(``GripperSpec.command_to_joint``, the one map from gripper commands to joint positions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lightwam_ros.policy.embodiment import GripperSpec
from lightwam_ros.policy.kinematics import SerialChain, integrate_delta_eef

DELTA_EEF_DIM = 7  # dx, dy, dz, drx, dry, drz, gripper


def finger_target(gripper: GripperSpec, command: float, previous: float) -> float:
    """A delta-EEF gripper command -> finger position by the embodiment's gripper map, the
    command clamped to the open..close range.  The midpoint command (0 for robosuite, a sign()
    tie) means "leave the fingers where they are", as robosuite reads it: ``previous`` is kept."""
    if command == 0.5 * (gripper.command_open + gripper.command_close):
        return previous
    low, high = sorted((gripper.command_open, gripper.command_close))
    return gripper.command_to_joint(min(high, max(low, command)))


@dataclass(frozen=True, eq=False)
class DeltaEefConversion:
    targets: np.ndarray  # (H, dof + 1): arm joint targets, then the finger position
    ok: bool  # every step's IK converged
    reason: str  # names the first step whose IK failed; empty when ok
    max_position_error: float  # m, over all steps
    max_rotation_error: float  # rad, over all steps


def delta_eef_to_joint_targets(
    deltas: np.ndarray,
    q_start: np.ndarray,
    finger_start: float,
    chain: SerialChain,
    gripper: GripperSpec,
    pos_scale: float = 0.05,
    rot_scale: float = 0.5,
    bound: float = 1.0,
    ik_iterations: int = 100,
) -> DeltaEefConversion:
    """Integrate every row of (H, 7) deltas (a ``Chunk``'s: finite) and solve IK for it.

    ``q_start``: arm joints where the integration starts; ``finger_start``: finger position then
    (kept while the gripper command is at its midpoint).
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.ndim != 2 or deltas.shape[1] != DELTA_EEF_DIM:
        raise ValueError(f"a delta-EEF chunk has {DELTA_EEF_DIM} columns, got shape {deltas.shape}")
    if not math.isfinite(finger_start):
        raise ValueError(f"finger_start must be finite, got {finger_start}")
    q = np.asarray(q_start, dtype=np.float64)
    pose = chain.forward(q)
    finger = float(finger_start)
    targets = np.empty((len(deltas), chain.dof + 1))
    reason = ""
    worst_pos = worst_rot = 0.0
    for step, delta in enumerate(deltas):
        pose = integrate_delta_eef(pose, delta, pos_scale, rot_scale, bound)
        result = chain.inverse(pose, q, max_iterations=ik_iterations)
        q = result.q
        finger = finger_target(gripper, float(delta[6]), finger)
        targets[step, : chain.dof] = q
        targets[step, chain.dof] = finger
        worst_pos = max(worst_pos, result.position_error)
        worst_rot = max(worst_rot, result.rotation_error)
        if not result.converged and not reason:
            reason = (
                f"IK did not converge at step {step}: position error "
                f"{result.position_error:.4g} m, rotation error {result.rotation_error:.4g} rad"
            )
    return DeltaEefConversion(targets, not reason, reason, worst_pos, worst_rot)
