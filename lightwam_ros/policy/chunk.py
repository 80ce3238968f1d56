"""The one action chunk type, from the runner that predicts it to the scheduler that places it.

A chunk carries the integer-nanosecond stamp of the observation it was predicted from: step i is
applied during [stamp + i*dt, stamp + (i+1)*dt), so as a position waypoint it is reached at
stamp + (i+1)*dt (``waypoint_times_ns``).  Times stay integer nanoseconds; floats appear only as
offsets from a local origin inside interpolation.

The constructor is the single check of a chunk's structure (shape, names, finite values, dt,
execute steps, id): whoever holds a ``Chunk`` holds a meaningful one.  Whether it fits an
embodiment is the command layout's question; whether it is safe is the executor's safety filter's.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from lightwam_ros.policy.embodiment import ACTION_MODES, EmbodimentSpec

NS_PER_S = 1_000_000_000
_UINT64_MAX = 2**64 - 1


class ChunkError(ValueError):
    """A chunk is malformed; the message names the field (or the step and dimension) and why."""


@dataclass(frozen=True, eq=False, kw_only=True)
class Chunk:
    """H x A actions (float64, read-only) predicted from the observation stamped ``stamp_ns``."""

    stamp_ns: int  # the observation's stamp [ns]
    dt: float  # s between steps
    actions: np.ndarray
    action_names: tuple[str, ...]
    execute_steps: int
    chunk_id: int = 0
    embodiment: str = ""
    action_mode: str = "absolute_joints"
    model_id: str = ""
    instruction: str = ""
    inference_latency: float = 0.0  # s, observation assembled -> chunk ready
    observation_age: float = 0.0  # s, oldest input's age when inference started
    frame_id: str = ""  # frame of Cartesian actions; empty for joint actions

    def __post_init__(self) -> None:
        actions = np.array(self.actions, dtype=np.float64)
        names = tuple(self.action_names)
        if actions.ndim != 2 or 0 in actions.shape:
            raise ChunkError(f"chunk actions must be a non-empty (H, A) array, got shape {actions.shape}")
        horizon, action_dim = actions.shape
        if len(names) != action_dim or len(set(names)) != action_dim:
            raise ChunkError(f"chunk needs {action_dim} distinct action_names, got {list(names)}")
        check_finite(actions, names)
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, numbers.Integral):
            raise ChunkError(f"chunk stamp_ns must be an integer, got {self.stamp_ns!r}")
        if not (math.isfinite(self.dt) and self.dt > 0.0):
            raise ChunkError(f"chunk dt must be finite and > 0 s, got {self.dt}")
        for field in ("inference_latency", "observation_age"):
            if not math.isfinite(getattr(self, field)):
                raise ChunkError(f"chunk {field} must be finite, got {getattr(self, field)}")
        steps = self.execute_steps
        if not isinstance(steps, numbers.Integral) or not 1 <= steps <= horizon:
            raise ChunkError(f"chunk execute_steps must be in [1, horizon={horizon}], got {steps}")
        chunk_id = self.chunk_id
        if not isinstance(chunk_id, numbers.Integral) or not 0 <= chunk_id <= _UINT64_MAX:
            raise ChunkError(f"chunk_id must fit uint64, got {chunk_id}")
        if self.action_mode not in ACTION_MODES:
            raise ChunkError(f"chunk action_mode must be one of {ACTION_MODES}, got {self.action_mode!r}")
        actions.flags.writeable = False
        object.__setattr__(self, "actions", actions)
        object.__setattr__(self, "action_names", names)
        object.__setattr__(self, "stamp_ns", int(self.stamp_ns))
        object.__setattr__(self, "dt", float(self.dt))
        object.__setattr__(self, "execute_steps", int(steps))
        object.__setattr__(self, "chunk_id", int(chunk_id))

    @property
    def horizon(self) -> int:
        return self.actions.shape[0]

    @property
    def action_dim(self) -> int:
        return self.actions.shape[1]

    @property
    def dt_ns(self) -> int:
        return round(self.dt * NS_PER_S)

    def executable(self) -> np.ndarray:
        """The leading ``execute_steps`` rows: the only ones an executor ever uses."""
        return self.actions[: self.execute_steps]

    def waypoint_times_ns(self) -> np.ndarray:
        """End of each executable step's interval: stamp + (i+1)*dt [ns] for i < execute_steps."""
        steps = np.arange(1, self.execute_steps + 1, dtype=np.int64)
        return self.stamp_ns + np.rint(steps * (self.dt * NS_PER_S)).astype(np.int64)

    def with_actions(
        self, actions: np.ndarray, action_names: Sequence[str], action_mode: str = "absolute_joints"
    ) -> Chunk:
        """The same chunk (stamp, timing, identity) with other columns, e.g. its joint targets."""
        return dataclasses.replace(
            self, actions=actions, action_names=tuple(action_names), action_mode=action_mode
        )


def embodiment_chunk(spec: EmbodimentSpec, actions: np.ndarray, stamp_ns: int, **fields: Any) -> Chunk:
    """A chunk of ``spec``'s actions: its policy rate, action names and mode, executed steps.

    Whatever predicts chunks for an embodiment (the model's runner, the scripted demonstration)
    takes these from the embodiment here; ``fields`` adds the rest (instruction, frame, ...).
    """
    return Chunk(
        stamp_ns=stamp_ns,
        dt=1.0 / spec.policy_rate_hz,
        actions=actions,
        action_names=spec.action.layout.dim_names,
        execute_steps=spec.chunk.execute_steps,
        embodiment=spec.name,
        action_mode=spec.action.mode,
        **fields,
    )


def check_finite(actions: np.ndarray, names: Sequence[str]) -> None:
    """Raise ChunkError naming the first non-finite entry by step and dimension."""
    bad = np.argwhere(~np.isfinite(actions))
    if len(bad):
        step, dim = (int(i) for i in bad[0])
        raise ChunkError(
            f"chunk action at step {step}, dimension {dim} ({names[dim]!r}) is "
            f"{actions[step, dim]} ({len(bad)} non-finite value(s) in all)"
        )
