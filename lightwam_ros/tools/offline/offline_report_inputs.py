"""What the offline report is given, and the same data checked and cleaned for computing.

The offline check fills ``OfflineInputs`` from a bag.  Bags are often incomplete, so
``prepare_inputs`` never raises: a malformed chunk or reference is left out with a note, NaNs are
kept (the figures skip them) and everything unreadable counts as empty.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class PredictedChunk:
    """A chunk the policy predicted offline for one recorded observation.

    ``recorded_actions`` is the chunk the live policy published for the same observation stamp,
    when the bag has one; ``compute_time`` is the offline prediction's duration [s].
    """

    stamp: float
    actions: np.ndarray
    dt: float
    execute_steps: int
    compute_time: float | None = None
    recorded_actions: np.ndarray | None = None


@dataclass
class ReferenceSeries:
    """Recorded actions in the action space, e.g. executed joint commands: times (N,) [s],
    values (N, A)."""

    name: str
    times: np.ndarray
    values: np.ndarray


@dataclass
class OfflineInputs:
    """Everything the report shows.  Times are seconds on the bag's clock; ``problems`` are
    dicts with kind, topic and message; ``action_units`` (optional, one per dimension, e.g.
    "rad", "" for unitless) only labels the plots."""

    bag: str
    embodiment: str
    action_names: list[str]
    gripper_dims: list[int]
    gripper_open_above: float | None
    chunks: list[PredictedChunk]
    reference: ReferenceSeries | None
    live_latencies: np.ndarray
    observation_ages: dict[str, np.ndarray]
    problems: list[dict]
    bag_summary: dict
    action_units: list[str] | None = None


@dataclass
class PreparedChunk:
    stamp: float
    actions: np.ndarray  # (H, A) float64, H >= 1
    dt: float  # > 0
    execute_steps: int  # clipped to [0, H]
    compute_time: float | None  # finite or None
    live: np.ndarray | None  # (H', A) float64, H' >= 1

    @property
    def horizon(self) -> int:
        return self.actions.shape[0]

    def step_times(self) -> np.ndarray:
        """When each step's target is due: the end of its interval, t + (i+1)*dt (the
        executor's waypoint times)."""
        return self.stamp + np.arange(1, self.horizon + 1) * self.dt


@dataclass
class PreparedReference:
    name: str
    times: np.ndarray  # (N,) finite, increasing, N >= 1
    values: np.ndarray  # (N, A)


@dataclass
class PreparedInputs:
    names: list[str]
    units: list[str] | None
    chunks: list[PreparedChunk]  # sorted by stamp
    chunks_given: int
    reference: PreparedReference | None
    reference_given: bool
    gripper_dims: list[int]
    live_latencies: np.ndarray  # finite values [s]
    notes: list[str]  # input defects the report worked around

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def horizon(self) -> int:
        return max((c.horizon for c in self.chunks), default=0)

    @property
    def compute_times(self) -> np.ndarray:
        return np.array([c.compute_time for c in self.chunks if c.compute_time is not None])

    @property
    def has_live(self) -> bool:
        return any(c.live is not None for c in self.chunks)


def finite_values(value: Any) -> np.ndarray:
    """Finite values of a 1-D-able input; anything unreadable counts as empty."""
    try:
        array = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return np.zeros(0)
    return array[np.isfinite(array)]


def finite_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _matrix(value: Any) -> np.ndarray | None:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array if array.ndim == 2 else None


def _shape(value: Any) -> Any:
    return getattr(value, "shape", type(value).__name__)


def _action_dim(inputs: OfflineInputs) -> int:
    if inputs.action_names:
        return len(inputs.action_names)
    candidates = [getattr(c, "actions", None) for c in inputs.chunks or []]
    if inputs.reference is not None:
        candidates.append(inputs.reference.values)
    for candidate in candidates:
        matrix = _matrix(candidate)
        if matrix is not None:
            return matrix.shape[1]
    return 0


def _prepare_chunk(index: int, chunk: PredictedChunk, dim: int, notes: list[str]) -> PreparedChunk | None:
    where = f"chunk {index} (stamp {chunk.stamp})"
    stamp, dt = finite_float(chunk.stamp), finite_float(chunk.dt)
    actions = _matrix(chunk.actions)
    if stamp is None or dt is None or dt <= 0:
        notes.append(f"{where}: stamp or dt ({chunk.dt}) is not a finite positive time; skipped")
        return None
    if actions is None or actions.shape[0] == 0 or actions.shape[1] != dim:
        notes.append(
            f"{where}: actions of shape {_shape(chunk.actions)} are not a non-empty (H, {dim}) array; skipped"
        )
        return None
    live = None
    if chunk.recorded_actions is not None:
        live = _matrix(chunk.recorded_actions)
        if live is None or live.shape[0] == 0 or live.shape[1] != dim:
            notes.append(
                f"{where}: live chunk of shape {_shape(chunk.recorded_actions)} is not "
                f"a non-empty (H, {dim}) array; not compared"
            )
            live = None
    try:
        execute_steps = int(chunk.execute_steps)
    except (TypeError, ValueError):
        notes.append(
            f"{where}: execute_steps {chunk.execute_steps} is not an integer; taken as the whole horizon"
        )
        execute_steps = actions.shape[0]
    return PreparedChunk(
        stamp=stamp,
        actions=actions,
        dt=dt,
        execute_steps=min(max(execute_steps, 0), actions.shape[0]),
        compute_time=finite_float(chunk.compute_time),
        live=live,
    )


def _prepare_reference(
    reference: ReferenceSeries | None, dim: int, notes: list[str]
) -> PreparedReference | None:
    if reference is None:
        return None
    values = _matrix(reference.values)
    try:
        times = np.asarray(reference.times, dtype=np.float64)
    except (TypeError, ValueError):
        times = None
    if (
        times is None
        or times.ndim != 1
        or values is None
        or values.shape[0] != times.shape[0]
        or values.shape[1] != dim
    ):
        notes.append(
            f"reference {reference.name}: times of shape {_shape(reference.times)} and "
            f"values of shape {_shape(reference.values)} are not (N,) and (N, {dim}); "
            "not used"
        )
        return None
    keep = np.isfinite(times)
    if not keep.all():
        notes.append(
            f"reference {reference.name}: {int((~keep).sum())} samples without a finite time left out"
        )
    times, values = times[keep], values[keep]
    if np.any(np.diff(times) < 0):
        notes.append(f"reference {reference.name}: times were not increasing; sorted")
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
    if times.size == 0:
        return None
    return PreparedReference(name=str(reference.name), times=times, values=values)


def prepare_inputs(inputs: OfflineInputs) -> PreparedInputs:
    notes: list[str] = []
    dim = _action_dim(inputs)
    names = [str(n) for n in inputs.action_names or []] or [f"dim {i}" for i in range(dim)]
    units = None
    if inputs.action_units is not None:
        units = [str(u) for u in inputs.action_units]
        if len(units) != dim:
            notes.append(f"{len(units)} action units for {dim} action dimensions; units ignored")
            units = None
    given = list(inputs.chunks or [])
    chunks = [
        c for c in (_prepare_chunk(i, chunk, dim, notes) for i, chunk in enumerate(given)) if c is not None
    ]
    chunks.sort(key=lambda c: c.stamp)
    grippers = []
    for d in inputs.gripper_dims or []:
        if isinstance(d, (int, np.integer)) and 0 <= d < dim:
            grippers.append(int(d))
        else:
            notes.append(f"gripper dimension {d} is not one of the {dim} action dimensions; ignored")
    return PreparedInputs(
        names=names,
        units=units,
        chunks=chunks,
        chunks_given=len(given),
        reference=_prepare_reference(inputs.reference, dim, notes),
        reference_given=inputs.reference is not None,
        gripper_dims=grippers,
        live_latencies=finite_values(inputs.live_latencies),
        notes=notes,
    )
