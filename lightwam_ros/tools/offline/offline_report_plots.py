"""The offline report's PNG plots, drawn on matplotlib's Agg canvas.

Figures are built without pyplot, so drawing keeps no global state and needs no display.  Each
plot draws only what the inputs hold and is left out when they hold nothing for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from matplotlib import colormaps, rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from lightwam_ros.tools.offline.offline_report_inputs import PreparedChunk, PreparedInputs

PLOT_FILES = {
    "timeline": "predicted_vs_recorded.png",
    "heatmap": "error_heatmap.png",
    "latency": "latency_histogram.png",
    "jumps": "boundary_jumps.png",
}
DPI = 100
MS_PER_S = 1000.0
PREDICTED_COLOR, LIVE_COLOR, REFERENCE_COLOR = "tab:blue", "tab:orange", "black"
HEATMAP_CAP_PERCENT = 100.0  # colours saturate at an error as large as the recorded range


def _figure(
    width: float, height: float, layout: Literal["constrained", "tight"] | None = "constrained"
) -> Figure:
    figure = Figure(figsize=(width, height), dpi=DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _unit_label(prepared: PreparedInputs, d: int | None = None) -> str:
    """The unit in brackets of one dimension, or of all when they share one."""
    if prepared.units is None:
        return "[action units]"
    chosen = {prepared.units[d]} if d is not None else set(prepared.units)
    if len(chosen) != 1:
        return "[action units]"
    unit = chosen.pop()
    return f"[{unit}]" if unit else "[unitless]"


def _waypoints(chunk: PreparedChunk, values: np.ndarray, t0: float) -> np.ndarray:
    """(H, 2) points of one column: step i's target at the end of its interval, t + (i+1)*dt."""
    return np.column_stack([chunk.step_times()[: values.shape[0]] - t0, values])


def _chunk_segments(prepared: PreparedInputs, d: int, t0: float) -> dict[str, list]:
    executed, rest, live = [], [], []
    for chunk in prepared.chunks:
        points = _waypoints(chunk, chunk.actions[:, d], t0)
        cut = chunk.execute_steps
        if cut:
            executed.append(points[:cut])
        if cut < len(points):
            rest.append(points[max(cut - 1, 0) :])
        if chunk.live is not None:
            live.append(_waypoints(chunk, chunk.live[:, d], t0))
    return {"rest": rest, "executed": executed, "live": live}


_SEGMENT_STYLES: dict[str, dict[str, Any]] = {
    "rest": dict(color=PREDICTED_COLOR, lw=0.8, alpha=0.3),
    "executed": dict(color=PREDICTED_COLOR, lw=1.3, alpha=0.9),
    "live": dict(color=LIVE_COLOR, lw=1.0, alpha=0.8, linestyle="--"),
}


def plot_timeline(prepared: PreparedInputs, figures: dict, path: Path) -> bool:
    """One small panel per action dimension: the reference as a line, each offline chunk as a
    staircase from its stamp (executed steps solid, the rest of the horizon faint) and each live
    chunk dashed."""
    reference = prepared.reference
    if prepared.dim == 0 or (not prepared.chunks and reference is None):
        return False
    t0 = min([c.stamp for c in prepared.chunks] + ([reference.times[0]] if reference else []))
    columns = 2 if prepared.dim <= 4 else 3 if prepared.dim <= 9 else 4
    rows = math.ceil(prepared.dim / columns)
    width, height = 4.2 * columns, 2.5 * rows + 1.0
    # A manual layout: the constrained one costs seconds with a dozen panels.
    figure = _figure(width, height, layout=None)
    figure.subplots_adjust(
        left=0.8 / width,
        right=1 - 0.2 / width,
        bottom=0.55 / height,
        top=1 - 0.95 / height,
        wspace=0.28,
        hspace=0.45,
    )
    axes = figure.subplots(rows, columns, squeeze=False)
    for d, ax in enumerate(axes.flat):
        if d >= prepared.dim:
            ax.set_visible(False)
            continue
        if reference is not None:
            ax.plot(reference.times - t0, reference.values[:, d], color=REFERENCE_COLOR, lw=1.0, zorder=3)
        for kind, segments in _chunk_segments(prepared, d, t0).items():
            if segments:
                ax.add_collection(LineCollection(segments, zorder=2, **_SEGMENT_STYLES[kind]))
        ax.autoscale_view()
        ax.set_title(prepared.names[d], fontsize=10)
        ax.set_ylabel(_unit_label(prepared, d), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if d + columns >= prepared.dim:
            ax.set_xlabel("time since start [s]", fontsize=8)
    legend = [
        Line2D([], [], label="offline chunk (executed steps)", **_SEGMENT_STYLES["executed"]),
        Line2D([], [], label="offline chunk (rest of horizon)", **_SEGMENT_STYLES["rest"]),
    ]
    if prepared.has_live:
        legend.append(Line2D([], [], label="live chunk", **_SEGMENT_STYLES["live"]))
    if reference is not None:
        legend.append(Line2D([], [], color=REFERENCE_COLOR, label=f"recorded: {reference.name}"))
    figure.suptitle(
        f"Predicted vs recorded actions ({figures['embodiment']})", fontsize=12, y=1 - 0.12 / height, va="top"
    )
    figure.legend(
        handles=legend,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - 0.45 / height),
        ncols=len(legend),
        fontsize=9,
        frameon=False,
    )
    figure.savefig(path)
    return True


def _relative_mae(errors: dict) -> np.ndarray:
    """MAE per step x dimension as % of the dimension's recorded range, so dimensions in
    different units share one colour scale (a constant dimension's errors saturate it)."""
    mae = np.array(errors["per_step_dimension_mae"], dtype=np.float64)
    spans = np.array(errors["recorded_range"], dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * mae / np.maximum(spans, 1e-12)


def plot_heatmap(prepared: PreparedInputs, figures: dict, path: Path) -> bool:
    panels = [
        (title, figures[key])
        for key, title in (("vs_reference", "vs reference"), ("vs_live", "vs live chunks"))
        if figures[key] is not None
    ]
    if not panels:
        return False
    figure = _figure(
        max(5.0, 0.45 * prepared.dim + 2.5) * len(panels), max(4.0, 0.17 * prepared.horizon + 2.0)
    )
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    dts = {c.dt for c in prepared.chunks}
    step_label = f"chunk step (dt = {dts.pop():.4g} s)" if len(dts) == 1 else "chunk step"
    colours = colormaps["viridis"].with_extremes(bad="lightgrey")
    for ax, (title, errors) in zip(axes, panels, strict=True):
        relative = np.ma.masked_invalid(_relative_mae(errors))
        top = float(relative.max()) if relative.count() else 1.0
        image = ax.imshow(
            relative,
            aspect="auto",
            interpolation="nearest",
            cmap=colours,
            vmin=0.0,
            vmax=min(max(top, 1e-9), HEATMAP_CAP_PERCENT),
        )
        ax.set_xticks(range(prepared.dim), prepared.names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(step_label)
        ax.set_title(f"MAE {title}", fontsize=11)
        figure.colorbar(
            image,
            ax=ax,
            extend="max" if top > HEATMAP_CAP_PERCENT else "neither",
            label="MAE [% of the dimension's recorded range]",
        )
    figure.suptitle("Error by chunk step and action dimension (grey: no samples)", fontsize=12)
    figure.savefig(path)
    return True


def plot_latency(prepared: PreparedInputs, figures: dict, path: Path) -> bool:
    series = [
        (label, values * MS_PER_S, color)
        for label, values, color in (
            ("live inference (recorded)", prepared.live_latencies, LIVE_COLOR),
            ("offline compute", prepared.compute_times, PREDICTED_COLOR),
        )
        if values.size
    ]
    if not series:
        return False
    pooled = np.concatenate([values for _, values, _ in series])
    edges = np.histogram_bin_edges(pooled, bins=min(50, max(10, int(np.sqrt(pooled.size)))))
    figure = _figure(7.5, 4.5)
    ax = figure.subplots()
    for label, values, color in series:
        p50, p90 = np.percentile(values, [50, 90])
        ax.hist(
            values,
            bins=edges.tolist(),
            color=color,
            alpha=0.55,
            label=f"{label}: n={values.size}, p50 {p50:.1f} ms, p90 {p90:.1f} ms",
        )
        ax.axvline(p90, color=color, linestyle=":", lw=1.5)
    ax.set_xlabel("latency [ms]")
    ax.set_ylabel("chunks")
    ax.set_title("Inference latency (dotted: p90)")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    figure.savefig(path)
    return True


def plot_jumps(prepared: PreparedInputs, figures: dict, path: Path) -> bool:
    jumps = figures["boundary_jumps"]
    panels = [
        (title, jumps[key])
        for key, title in (("offline", "offline chunks"), ("live", "live chunks"))
        if jumps[key] is not None and jumps[key]["boundaries"]
    ]
    if not panels:
        return False
    figure = _figure(max(6.0, 0.55 * prepared.dim + 2.0), 3.2 * len(panels) + 0.6)
    axes = figure.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    positions, width = np.arange(prepared.dim), 0.27
    for ax, (title, result) in zip(axes, panels, strict=True):
        for offset, key, color in (
            (-width, "p50", "tab:green"),
            (0.0, "p90", "tab:orange"),
            (width, "max", "tab:red"),
        ):
            heights = np.array([d[key] for d in result["per_dimension"]], dtype=np.float64)
            ax.bar(positions + offset, heights, width, color=color, label=key)
        ax.set_title(f"Chunk-boundary jumps, {title} ({result['boundaries']} boundaries)", fontsize=11)
        ax.set_ylabel(f"|jump| {_unit_label(prepared)}")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    axes[-1].set_xticks(positions, prepared.names, rotation=45, ha="right", fontsize=8)
    figure.savefig(path)
    return True


PLOTTERS: dict[str, Callable[[PreparedInputs, dict, Path], bool]] = {
    "timeline": plot_timeline,
    "heatmap": plot_heatmap,
    "latency": plot_latency,
    "jumps": plot_jumps,
}


def write_plots(prepared: PreparedInputs, figures: dict, out_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Draws what the inputs allow into ``out_dir``; returns {plot: file name} and notes on
    plots that failed (a broken plot must not cost the numbers).  ``figures`` is the JSON-able
    data.  Stale plots of an earlier run in the same folder are removed."""
    written, failures = {}, []
    # Text from the bag (action names, reference name) must not be read as mathtext.
    with rc_context({"text.parse_math": False}):
        for key, plot in PLOTTERS.items():
            path = out_dir / PLOT_FILES[key]
            path.unlink(missing_ok=True)
            try:
                if plot(prepared, figures, path):
                    written[key] = PLOT_FILES[key]
            except Exception as error:  # noqa: BLE001 - reported in the report instead
                path.unlink(missing_ok=True)
                failures.append(f"plot {PLOT_FILES[key]} failed: {type(error).__name__}: {error}")
    return written, failures
