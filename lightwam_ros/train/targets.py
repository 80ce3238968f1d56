"""Action targets from recorded commands, by the alignment convention of ``episodes``.

A command message issued at time s names positions due at times s + time_from_start (one point
for a script's step, a few for an executor's trajectory).  The action of the step that starts at
time tau is what the newest command issued by tau commands for the end of that step, tau + dt:
its points interpolated at tau + dt (held at their ends).  The chunk at observation stamp t holds
the actions of the steps starting at t, t + dt, ..., t + (H-1) dt; steps before the first
command or after ``end`` (the episode's last observation) are masked.

Commands, not the reached state, are the default target: a position-controlled gripper trained
on reached positions closes only as far as the object stopped it, then holds it with no force.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STAMP_TOLERANCE = 1e-6  # s: float seconds of epoch stamps


@dataclass(frozen=True)
class Command:
    issued: float  # s, the message's stamp
    due: np.ndarray  # (P,) s, absolute due times of its points, ascending
    positions: np.ndarray  # (P, A) in the action layout


def commanded_chunks(
    commands: Sequence[Command], stamps: np.ndarray, dt: float, horizon: int, end: float
) -> tuple[np.ndarray, np.ndarray]:
    """(chunks (T, H, A) float32, mask (T, H) bool) for observation ``stamps`` (T,)."""
    if not commands:
        raise ValueError("no commands")
    ordered = sorted(commands, key=lambda c: c.issued)
    issued = np.array([c.issued for c in ordered])
    dim = ordered[0].positions.shape[1]
    starts = np.asarray(stamps, dtype=np.float64)[:, None] + dt * np.arange(horizon)[None, :]
    values = np.zeros((*starts.shape, dim))
    mask = np.zeros(starts.shape, dtype=bool)
    newest = np.searchsorted(issued, starts + STAMP_TOLERANCE, side="right") - 1
    for index in np.ndindex(starts.shape):
        which = newest[index]
        if which < 0 or starts[index] > end + STAMP_TOLERANCE:
            continue
        command = ordered[which]
        at = starts[index] + dt
        values[index] = [np.interp(at, command.due, command.positions[:, a]) for a in range(dim)]
        mask[index] = True
    return values.astype(np.float32), mask
