"""The offline report's text: one list of blocks built from the figures, rendered to Markdown
and to a self-contained HTML page.

Building the blocks once keeps the two renderings in step.  Text from the bag (paths, topics,
action names, problem messages) is escaped in both: ``html.escape`` in HTML, backslashes for
Markdown's markup and raw-HTML characters.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MS_PER_S = 1000.0
PLOT_CAPTIONS = {
    "timeline": "Predicted vs recorded per action dimension over time",
    "heatmap": "Mean absolute error by chunk step and action dimension",
    "latency": "Latency histogram",
    "jumps": "Chunk-boundary jumps per action dimension",
}


@dataclass(frozen=True)
class _Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class _Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class _Image:
    file: str
    caption: str


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> _Table:
    return _Table(tuple(header), tuple(tuple(_cell(v) for v in row) for row in rows))


def _header(figures: dict) -> list:
    counts, reference = figures["counts"], figures["reference"]
    facts = [
        f"bag: {figures['bag']}",
        f"embodiment: {figures['embodiment']}",
        f"action dimensions: {len(figures['action_names'])} ({', '.join(figures['action_names'])})",
        f"predicted chunks: {counts['chunks']} usable of {counts['chunks_given']}, "
        f"{counts['chunks_compared_with_reference']} compared with the reference, "
        f"{counts['live_chunks']} with a live chunk",
        "reference: none"
        if reference is None
        else f"reference: {reference['name']}, {reference['samples']} samples over "
        f"{_cell(reference['end'] - reference['start'])} s",
        f"live inference latencies: {counts['live_latencies']}; offline compute times: "
        f"{counts['offline_compute_times']}",
        f"observation-age streams: {counts['observation_age_streams']}; bag problems: {counts['problems']}",
    ]
    blocks = [
        _Heading(f"Offline check: {figures['embodiment']}", 1),
        _Bullets(tuple(facts)),
        _Heading("Missing"),
        _Bullets(tuple(figures["missing"]))
        if figures["missing"]
        else _Text("Nothing: every figure could be computed."),
    ]
    if figures["notes"]:
        blocks += [_Heading("Input notes"), _Bullets(tuple(figures["notes"]))]
    return blocks


def _problems(figures: dict) -> list:
    blocks: list = [_Heading("Bag problems")]
    if not figures["problems"]:
        return blocks + [_Text("None reported.")]
    rows = [(p["kind"], p["topic"] or "", p["message"]) for p in figures["problems"]]
    return blocks + [_table(("kind", "topic", "message"), rows)]


def _comparisons(figures: dict) -> list[tuple[str, str]]:
    return [
        (key, label)
        for key, label in (("vs_reference", "vs reference"), ("vs_live", "vs live"))
        if figures[key] is not None
    ]


def _errors(figures: dict) -> list:
    comparisons = _comparisons(figures)
    blocks: list = [_Heading("Errors per dimension")]
    if not comparisons:
        return blocks + [_Text("Not computed: no chunk overlaps the reference or a live chunk.")]
    blocks.append(
        _Text(
            "MAE, RMSE and max |error| over every step of every compared chunk; "
            "'exec.' counts only the executed steps."
        )
    )
    header = ["dimension"] + [
        f"{stat} {label}" for _, label in comparisons for stat in ("MAE", "RMSE", "max", "MAE exec.")
    ]
    rows = []
    for d, name in enumerate(figures["action_names"]):
        row = [name]
        for key, _ in comparisons:
            stats = figures[key]["per_dimension"][d]
            row += [
                stats["mae"],
                stats["rmse"],
                stats["max"],
                figures[key]["per_dimension_executed"][d]["mae"],
            ]
        rows.append(row)
    return blocks + [_table(header, rows)]


def _horizon(figures: dict) -> list:
    comparisons = _comparisons(figures)
    if not comparisons:
        return []
    header = ["step"] + [
        f"{stat} {label}" for _, label in comparisons for stat in ("samples", "MAE", "RMSE", "max")
    ]
    rows = []
    for i in range(max(len(figures[key]["per_step"]) for key, _ in comparisons)):
        row: list = [i]
        for key, _ in comparisons:
            stats = figures[key]["per_step"][i]
            row += [stats["samples"], stats["mae"], stats["rmse"], stats["max"]]
        rows.append(row)
    return [
        _Heading("Error over the horizon"),
        _Text(
            "All dimensions pooled, per chunk step (step i's target is due at the "
            "observation stamp + (i+1) dt); the heat-map splits it by dimension."
        ),
        _table(header, rows),
    ]


def _gripper(figures: dict) -> list:
    blocks: list = [_Heading("Gripper agreement")]
    if not figures["gripper"]:
        return blocks + [_Text("Not computed: no gripper dimension with values.")]
    rows = []
    for gripper in figures["gripper"]:
        for key, label in (("vs_reference", "reference"), ("vs_live", "live chunks")):
            result = gripper[key] or {}
            rows.append(
                [gripper["dimension"], label, gripper["open_above"], gripper["threshold_source"]]
                + [
                    result.get(k)
                    for k in ("agreement", "samples", "predicted_open_rate", "recorded_open_rate")
                ]
            )
    return blocks + [
        _Text(
            "Open means value > threshold; agreement is the share of compared steps where "
            "prediction and recording are both open or both closed."
        ),
        _table(
            (
                "dimension",
                "compared with",
                "open above",
                "threshold from",
                "agreement",
                "samples",
                "predicted open",
                "recorded open",
            ),
            rows,
        ),
    ]


def _jumps(figures: dict) -> list:
    blocks: list = [_Heading("Chunk-boundary jumps")]
    sources = [(key, result) for key, result in figures["boundary_jumps"].items() if result is not None]
    if not sources:
        return blocks + [_Text("Not computed: fewer than two chunks.")]
    blocks.append(
        _Text(
            "|new chunk's first step - previous chunk's step at the new stamp|. "
            + "; ".join(
                f"{key}: {result['boundaries']} boundaries, "
                f"{result['beyond_previous_horizon']} past the previous "
                "chunk's horizon"
                for key, result in sources
            )
        )
    )
    stats = ("p50", "p90", "max")
    header = ["dimension"] + [f"{stat} {key}" for key, _ in sources for stat in stats]
    rows = [
        [name] + [result["per_dimension"][d][stat] for _, result in sources for stat in stats]
        for d, name in enumerate(figures["action_names"])
    ]
    return blocks + [_table(header, rows)]


def _distribution_rows(named: Sequence[tuple[str, dict | None]]) -> list[list]:
    keys = ("mean", "p50", "p90", "p99", "max")
    return [
        [name, d["count"]] + [None if d[k] is None else d[k] * MS_PER_S for k in keys]
        if d
        else [name, 0] + [None] * len(keys)
        for name, d in named
    ]


def _timing(figures: dict) -> list:
    header = ("count", "mean (ms)", "p50 (ms)", "p90 (ms)", "p99 (ms)", "max (ms)")
    latency = figures["latency"]
    blocks = [
        _Heading("Latency"),
        _table(
            ("source",) + header,
            _distribution_rows(
                [
                    ("live inference (recorded)", latency["live_inference"]),
                    ("offline compute", latency["offline_compute"]),
                ]
            ),
        ),
        _Heading("Observation ages"),
    ]
    if not figures["observation_ages"]:
        return blocks + [_Text("None recorded.")]
    return blocks + [
        _table(("stream",) + header, _distribution_rows(list(figures["observation_ages"].items())))
    ]


def _plots(figures: dict) -> list:
    plots = figures.get("plots", {})
    if not plots:
        return [_Heading("Plots"), _Text("None: the inputs hold nothing to draw.")]
    return [_Heading("Plots")] + [
        _Image(plots[key], caption) for key, caption in PLOT_CAPTIONS.items() if key in plots
    ]


def _bag_summary(summary: dict) -> list:
    """A free-form summary: scalars as a list, a dict of dicts (e.g. per topic) as a table."""
    blocks: list = [_Heading("Bag summary")]
    scalars = [f"{k}: {_cell(v)}" for k, v in summary.items() if not isinstance(v, dict)]
    nested = {k: v for k, v in summary.items() if isinstance(v, dict)}
    if scalars:
        blocks.append(_Bullets(tuple(scalars)))
    if nested:
        columns = list(dict.fromkeys(c for row in nested.values() for c in row))
        blocks.append(
            _table(["name"] + columns, [[k] + [row.get(c) for c in columns] for k, row in nested.items()])
        )
    return blocks if len(blocks) > 1 else blocks + [_Text("None given.")]


def _blocks(figures: dict) -> list:
    return (
        _header(figures)
        + _problems(figures)
        + _errors(figures)
        + _horizon(figures)
        + _gripper(figures)
        + _jumps(figures)
        + _timing(figures)
        + _plots(figures)
        + _bag_summary(figures["bag_summary"])
    )


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|<>`*[]"})


def _md(text: str) -> str:
    """Text shown literally by Markdown renderers (no markup, no raw HTML, one line)."""
    return " ".join(str(text).split()).translate(_MARKDOWN_SPECIAL)


def render_markdown(figures: dict) -> str:
    lines: list[str] = []
    for block in _blocks(figures):
        if isinstance(block, _Heading):
            lines.append("#" * block.level + " " + _md(block.text))
        elif isinstance(block, _Text):
            lines.append(_md(block.text))
        elif isinstance(block, _Bullets):
            lines += [f"- {_md(item)}" for item in block.items]
        elif isinstance(block, _Table):
            lines.append("| " + " | ".join(_md(h) for h in block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in block.rows]
        elif isinstance(block, _Image):
            lines.append(f"![{_md(block.caption)}]({block.file})")
        lines.append("")
    return "\n".join(lines)


_STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:0.5em 0}"
    "th,td{border:1px solid #ccc;padding:2px 8px;text-align:right;white-space:pre-wrap}"
    "th:first-child,td:first-child{text-align:left}"
    "img{max-width:100%}figure{margin:1em 0}"
)


def render_html(figures: dict) -> str:
    """One page, no scripts; plots referenced by their relative file names."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc('Offline check: ' + figures['embodiment'])}</title>"
        f"<style>{_STYLE}</style></head><body>",
    ]
    for block in _blocks(figures):
        if isinstance(block, _Heading):
            parts.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, _Text):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, _Bullets):
            parts.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, _Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, _Image):
            parts.append(
                f'<figure><img src="{esc(block.file)}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
