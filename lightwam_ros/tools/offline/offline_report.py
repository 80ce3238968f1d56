"""The offline check's report: how far the policy's chunks are from what the robot recorded.

The offline check runs the policy at a bag's observation stamps; this module turns its chunks, the
recorded actions (the *reference*) and the chunks the live policy published into figures
(``compute_figures``, JSON-able) and a report folder (``write_report``: PNG plots, report.md,
report.html, figures.json).  It is ROS-free (NumPy and matplotlib's Agg canvas), so the report
is built and tested without a ROS graph.

Timing convention (as ``ActionChunk``): step i of a chunk stamped t applies during
[t + i*dt, t + (i+1)*dt) and names the target due at its end, so it is compared with the
reference interpolated at t + (i+1)*dt (the executor's waypoint), and a new chunk's first step
continues the previous chunk's step due at the same time.

Bags are often incomplete, so every figure is optional: missing inputs, NaNs and malformed chunks
make a partial report that says what is missing, never an exception, and NaN/inf become null in
the JSON.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightwam_ros.tools.offline.offline_report_document import render_html, render_markdown
from lightwam_ros.tools.offline.offline_report_inputs import (
    OfflineInputs,
    PredictedChunk,
    PreparedChunk,
    PreparedInputs,
    PreparedReference,
    ReferenceSeries,
    finite_float,
    finite_values,
    prepare_inputs,
)
from lightwam_ros.tools.offline.offline_report_plots import write_plots

__all__ = ["OfflineInputs", "PredictedChunk", "ReferenceSeries", "compute_figures", "write_report"]

SCHEMA_VERSION = 1
TIME_TOLERANCE = 1e-9  # [s] float rounding of stamp + (i+1)*dt at the reference's ends
STEP_TOLERANCE = 1e-6  # [steps] float rounding when locating a stamp inside the previous chunk


@dataclass
class _Pairs:
    """Predicted and target values side by side, (chunks, steps, dims), NaN where not
    compared, plus which cells belong to executed steps."""

    predicted: np.ndarray
    target: np.ndarray
    executed: np.ndarray  # (chunks, steps) bool

    @property
    def error(self) -> np.ndarray:
        return self.predicted - self.target

    @property
    def chunks_compared(self) -> int:
        both = np.isfinite(self.predicted) & np.isfinite(self.target)
        return int(both.any(axis=(1, 2)).sum())


def _empty_pairs(prepared: PreparedInputs) -> _Pairs:
    shape = (len(prepared.chunks), prepared.horizon, prepared.dim)
    steps = np.arange(prepared.horizon)
    executed = np.array([steps < c.execute_steps for c in prepared.chunks], dtype=bool)
    return _Pairs(np.full(shape, np.nan), np.full(shape, np.nan), executed.reshape(shape[:2]))


def _interpolate(reference: PreparedReference, times: np.ndarray) -> np.ndarray:
    """Reference values at ``times``, column by column over its finite samples (a NaN sample is
    bridged); NaN outside a column's finite span, never extrapolated."""
    result = np.full((times.size, reference.values.shape[1]), np.nan)
    for d in range(reference.values.shape[1]):
        finite = np.isfinite(reference.values[:, d])
        if not finite.any():
            continue
        known_t, known_v = reference.times[finite], reference.values[finite, d]
        inside = (times >= known_t[0] - TIME_TOLERANCE) & (times <= known_t[-1] + TIME_TOLERANCE)
        result[inside, d] = np.interp(times[inside], known_t, known_v)
    return result


def _reference_pairs(prepared: PreparedInputs) -> _Pairs | None:
    if prepared.reference is None or not prepared.chunks:
        return None
    pairs = _empty_pairs(prepared)
    times = np.full(pairs.executed.shape, np.nan)  # NaN: no step, never inside the reference
    for k, chunk in enumerate(prepared.chunks):
        pairs.predicted[k, : chunk.horizon] = chunk.actions
        times[k, : chunk.horizon] = chunk.step_times()
    pairs.target[:] = _interpolate(prepared.reference, times.ravel()).reshape(pairs.target.shape)
    return pairs


def _live_pairs(prepared: PreparedInputs) -> _Pairs | None:
    if not prepared.has_live:
        return None
    pairs = _empty_pairs(prepared)
    for k, chunk in enumerate(prepared.chunks):
        if chunk.live is not None:
            steps = min(chunk.horizon, chunk.live.shape[0])
            pairs.predicted[k, :steps] = chunk.actions[:steps]
            pairs.target[k, :steps] = chunk.live[:steps]
    return pairs


def _error_arrays(error: np.ndarray, axis: Any) -> tuple[np.ndarray, ...]:
    """Sample count, MAE, RMSE and max |error| over ``axis``, ignoring non-finite cells
    (NaN where a cell has no sample)."""
    finite = np.isfinite(error)
    count = finite.sum(axis=axis)
    magnitude = np.where(finite, np.abs(error), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mae = magnitude.sum(axis=axis) / count
        rmse = np.sqrt((magnitude * magnitude).sum(axis=axis) / count)
    largest = np.where(finite, magnitude, -np.inf).max(axis=axis, initial=-np.inf)
    return count, mae, rmse, np.where(count > 0, largest, np.nan)


def _error_stats(count: Any, mae: Any, rmse: Any, largest: Any) -> dict:
    return {"samples": int(count), "mae": float(mae), "rmse": float(rmse), "max": float(largest)}


def _per_dimension(error: np.ndarray, names: list[str]) -> list[dict]:
    arrays = _error_arrays(error.reshape(-1, len(names)), axis=0)
    return [
        {"dimension": name, "index": d, **_error_stats(*(a[d] for a in arrays))}
        for d, name in enumerate(names)
    ]


def _recorded_range(pairs: _Pairs) -> list[float]:
    """Span (max - min) of the compared recorded values per dimension (NaN: none)."""
    target = pairs.target.reshape(-1, pairs.target.shape[-1])
    spans = []
    for column in target.T:
        finite = column[np.isfinite(column)]
        spans.append(float(finite.max() - finite.min()) if finite.size else math.nan)
    return spans


def _error_figures(pairs: _Pairs | None, names: list[str]) -> dict | None:
    """Errors pooled, per dimension (all steps and executed steps only), per step and per
    step x dimension (the heat-map)."""
    if pairs is None or pairs.chunks_compared == 0:
        return None
    error = pairs.error
    per_step = zip(*_error_arrays(error, axis=(0, 2)), strict=True)
    return {
        "chunks_compared": pairs.chunks_compared,
        "overall": _error_stats(*_error_arrays(error, axis=None)),
        "per_dimension": _per_dimension(error, names),
        "per_dimension_executed": _per_dimension(error[pairs.executed], names),
        "per_step": [{"step": i, **_error_stats(*stats)} for i, stats in enumerate(per_step)],
        "per_step_dimension_mae": _error_arrays(error, axis=0)[1].tolist(),
        "recorded_range": _recorded_range(pairs),
    }


def _gripper_threshold(prepared: PreparedInputs, given: float | None, d: int) -> tuple[float, str] | None:
    if given is not None:
        return given, "given"
    reference = prepared.reference
    sources: tuple[tuple[str, Any], ...] = (
        ("the reference's range", [] if reference is None else reference.values[:, d]),
        ("the live chunks' range", [v for c in prepared.chunks if c.live is not None for v in c.live[:, d]]),
        ("the predictions' range", [v for c in prepared.chunks for v in c.actions[:, d]]),
    )
    for description, values in sources:
        finite = finite_values(values)
        if finite.size:
            return float(finite.min() + finite.max()) / 2.0, f"midpoint of {description}"
    return None


def _agreement(pairs: _Pairs | None, d: int, threshold: float) -> dict | None:
    if pairs is None:
        return None
    predicted, target = pairs.predicted[..., d], pairs.target[..., d]
    valid = np.isfinite(predicted) & np.isfinite(target)
    if not valid.any():
        return None
    predicted_open, target_open = predicted[valid] > threshold, target[valid] > threshold
    return {
        "samples": int(valid.sum()),
        "agreement": float(np.mean(predicted_open == target_open)),
        "predicted_open_rate": float(predicted_open.mean()),
        "recorded_open_rate": float(target_open.mean()),
    }


def _gripper_figures(
    prepared: PreparedInputs, given: float | None, reference: _Pairs | None, live: _Pairs | None
) -> list[dict]:
    """Open/closed agreement per gripper dimension; open means value > threshold."""
    result = []
    for d in prepared.gripper_dims:
        threshold = _gripper_threshold(prepared, given, d)
        if threshold is None:
            continue
        result.append(
            {
                "dimension": prepared.names[d],
                "index": d,
                "open_above": threshold[0],
                "threshold_source": threshold[1],
                "vs_reference": _agreement(reference, d, threshold[0]),
                "vs_live": _agreement(live, d, threshold[0]),
            }
        )
    return result


def _boundary_jumps(
    prepared: PreparedInputs, select: Callable[[PreparedChunk], np.ndarray | None]
) -> dict | None:
    """|new chunk's first step - the previous chunk's step that applies at the new stamp|, per
    dimension.  A new stamp past the previous chunk's horizon has nothing to continue."""
    jumps, beyond = [], 0
    for previous, new in itertools.pairwise(prepared.chunks):
        before, after = select(previous), select(new)
        if before is None or after is None:
            continue
        step = math.floor((new.stamp - previous.stamp) / previous.dt + STEP_TOLERANCE)
        if step >= before.shape[0]:
            beyond += 1
            continue
        jumps.append(np.abs(after[0] - before[step]))
    if not jumps and not beyond:
        return None
    table = np.array(jumps).reshape(len(jumps), prepared.dim)
    per_dimension = []
    for d, name in enumerate(prepared.names):
        column = table[np.isfinite(table[:, d]), d]
        p50, p90, largest = np.percentile(column, [50, 90, 100]) if column.size else (math.nan,) * 3
        per_dimension.append(
            {
                "dimension": name,
                "index": d,
                "samples": int(column.size),
                "p50": float(p50),
                "p90": float(p90),
                "max": float(largest),
            }
        )
    return {"boundaries": len(jumps), "beyond_previous_horizon": beyond, "per_dimension": per_dimension}


def _distribution(values: Any, unit: str = "s") -> dict | None:
    finite = finite_values(values)
    if finite.size == 0:
        return None
    p50, p90, p99 = np.percentile(finite, [50, 90, 99])
    return {
        "count": int(finite.size),
        "unit": unit,
        "mean": float(finite.mean()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(finite.max()),
    }


def _problem(problem: Any) -> dict:
    """A bag problem as kind/topic/message; BagProblem-like objects and plain text are
    accepted too, so nothing the bag reader found is lost."""
    get: Callable[[str], Any]
    if isinstance(problem, dict):
        get = problem.get
    elif hasattr(problem, "message"):

        def get(key: str) -> Any:
            return getattr(problem, key, None)
    else:
        return {"kind": "unknown", "topic": None, "message": str(problem)}
    topic = get("topic")
    return {
        "kind": str(get("kind") or "unknown"),
        "topic": None if topic is None else str(topic),
        "message": str(get("message") or ""),
    }


def _summary(summary: Any) -> dict:
    if summary is None:
        return {}
    return summary if isinstance(summary, dict) else {"summary": summary}


def _missing(prepared: PreparedInputs, figures: dict) -> list[str]:
    counts, missing = figures["counts"], []
    if not prepared.chunks:
        missing.append("predicted chunks: no errors, gripper agreement or boundary jumps")
    if not prepared.reference_given:
        missing.append("a reference series of recorded actions: no errors vs the recording")
    elif prepared.reference is None:
        missing.append("a usable reference series (see the input notes): no errors vs the recording")
    elif prepared.chunks and figures["vs_reference"] is None:
        missing.append("an overlap in time between the chunks and the reference: no errors vs the recording")
    if prepared.chunks and counts["live_chunks"] == 0:
        missing.append("live chunks for the observation stamps: no comparison with the live policy")
    if not prepared.gripper_dims:
        missing.append("gripper dimensions: no gripper agreement")
    if len(prepared.chunks) == 1:
        missing.append("a second chunk: no chunk-boundary jumps")
    if counts["live_latencies"] == 0:
        missing.append("live inference latencies")
    if prepared.chunks and counts["offline_compute_times"] == 0:
        missing.append("offline compute times")
    if not any(v is not None for v in figures["observation_ages"].values()):
        missing.append("observation ages")
    return missing


def _figures(inputs: OfflineInputs, prepared: PreparedInputs) -> dict:
    reference_pairs, live_pairs = _reference_pairs(prepared), _live_pairs(prepared)
    ages = {str(stream): _distribution(values) for stream, values in (inputs.observation_ages or {}).items()}
    reference = prepared.reference
    figures = {
        "schema": SCHEMA_VERSION,
        "bag": str(inputs.bag),
        "embodiment": str(inputs.embodiment),
        "action_names": prepared.names,
        "action_units": prepared.units,
        "reference": None
        if reference is None
        else {
            "name": reference.name,
            "samples": int(reference.times.size),
            "start": float(reference.times[0]),
            "end": float(reference.times[-1]),
        },
        "counts": {
            "chunks_given": prepared.chunks_given,
            "chunks": len(prepared.chunks),
            "chunks_compared_with_reference": 0
            if reference_pairs is None
            else reference_pairs.chunks_compared,
            "live_chunks": sum(c.live is not None for c in prepared.chunks),
            "reference_samples": 0 if reference is None else int(reference.times.size),
            "live_latencies": int(prepared.live_latencies.size),
            "offline_compute_times": int(prepared.compute_times.size),
            "observation_age_streams": len(ages),
            "problems": len(inputs.problems or []),
        },
        "vs_reference": _error_figures(reference_pairs, prepared.names),
        "vs_live": _error_figures(live_pairs, prepared.names),
        "gripper": _gripper_figures(
            prepared, finite_float(inputs.gripper_open_above), reference_pairs, live_pairs
        ),
        "boundary_jumps": {
            "offline": _boundary_jumps(prepared, lambda c: c.actions),
            "live": _boundary_jumps(prepared, lambda c: c.live),
        },
        "latency": {
            "live_inference": _distribution(prepared.live_latencies),
            "offline_compute": _distribution(prepared.compute_times),
        },
        "observation_ages": ages,
        "problems": [_problem(p) for p in inputs.problems or []],
        "bag_summary": _summary(inputs.bag_summary),
        "notes": prepared.notes,
    }
    figures["missing"] = _missing(prepared, figures)
    return figures


def _jsonable(value: Any) -> Any:
    """Plain JSON data: NumPy scalars and arrays unwrapped, NaN/inf -> None, unknown -> str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def compute_figures(inputs: OfflineInputs) -> dict:
    """The report's numbers as JSON-able data (no NaN: missing values are None)."""
    return _jsonable(_figures(inputs, prepare_inputs(inputs)))


def write_report(inputs: OfflineInputs, out_dir: str | Path) -> Path:
    """Writes the report folder (PNG plots, report.md, report.html, figures.json) and returns
    it.  Plots the inputs do not allow are left out; the report says what is missing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare_inputs(inputs)
    figures = _jsonable(_figures(inputs, prepared))
    plots, failures = write_plots(prepared, figures, out)
    figures["notes"] += failures
    figures["plots"] = plots
    (out / "figures.json").write_text(json.dumps(figures, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(figures), encoding="utf-8")
    (out / "report.html").write_text(render_html(figures), encoding="utf-8")
    return out
