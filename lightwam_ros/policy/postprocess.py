"""Denormalised action chunk -> executable actions.

``postprocess_chunk`` applies the embodiment's gripper post-processing (LIBERO: g -> sign(-(2g-1)),
so -1 opens and +1 closes; an exact tie at g = 0.5 becomes the YAML's ``tie_value``, 0 for LIBERO,
which robosuite reads as "leave the fingers where they are").  Absolute joint targets pass through
unchanged.  Non-finite values are propagated, not repaired: building a ``policy.chunk.Chunk``
refuses them.  Limits are not checked here: the executor's safety filter owns them.
"""

from __future__ import annotations

import numpy as np

from lightwam_ros.policy.embodiment import EmbodimentSpec, GripperPostprocess


def postprocess_chunk(chunk: np.ndarray, spec: EmbodimentSpec) -> np.ndarray:
    """[H, A] denormalised actions -> [H, A] float64 actions in the controller's convention."""
    actions = _as_chunk(chunk, spec).copy()
    post = spec.action.gripper_postprocess
    if post is not None:
        names = spec.action.layout.dim_names
        columns = [names.index(dim) for dim in post.dims]
        actions[:, columns] = apply_gripper_postprocess(actions[:, columns], post)
    return actions


def apply_gripper_postprocess(values: np.ndarray, post: GripperPostprocess) -> np.ndarray:
    """Affine map, optional negation, optional sign with a deliberate value for exact zeros."""
    out = post.scale * np.asarray(values, dtype=np.float64) + post.offset
    if post.negate:
        out = -out
    if post.binarize:
        out = np.where(out == 0.0, post.tie_value, np.sign(out))  # np.sign keeps NaN as NaN
    return out


def _as_chunk(chunk: np.ndarray, spec: EmbodimentSpec) -> np.ndarray:
    actions = np.asarray(chunk, dtype=np.float64)
    if actions.ndim != 2 or actions.shape[1] != spec.action_dim or actions.shape[0] == 0:
        raise ValueError(
            f"{spec.name}: expected an action chunk of shape [H, {spec.action_dim}] "
            f"with H >= 1, got {actions.shape}"
        )
    return actions
