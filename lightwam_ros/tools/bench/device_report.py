"""The device check's report: the steps of ``scripts/device_check.sh`` in one JSON and one markdown
table, so a session lent an accelerator pastes one table into its note.

    python -m lightwam_ros.tools.bench.device_report OUT_DIR

Reads ``OUT_DIR/steps.tsv`` (step, exit status or "skipped", seconds, skip reason) and each step's
``step_<name>.json`` (lightwam-bench reports; the trainer's bench report), writes
``device_check.json`` and ``device_check.md`` beside them, and prints the table. Exit status 1 when
a step that ran failed or its report is missing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MIB = 2**20


def read_steps(folder: Path) -> list[dict[str, Any]]:
    """One record per step: name, status (ok / failed / skipped), seconds, reason, report."""
    steps = []
    for line in (folder / "steps.tsv").read_text().splitlines():
        name, code, seconds, reason = (line.split("\t") + [""] * 4)[:4]
        record: dict[str, Any] = {
            "step": name,
            "seconds": int(seconds or 0),
            "reason": reason,
            "report": None,
        }
        report_path = folder / f"step_{name}.json"
        if code == "skipped":
            record["status"] = "skipped"
        elif code != "0":
            record["status"] = "failed"
            record["reason"] = f"exit {code}; see step_{name}.log"
        elif not report_path.is_file():
            record["status"] = "failed"
            record["reason"] = f"no report step_{name}.json"
        else:
            record["status"] = "ok"
            record["report"] = json.loads(report_path.read_text())
        steps.append(record)
    return steps


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / MIB:.0f}"


def _bench_rows(step: str, report: dict) -> list[str]:
    rows = []
    for result in report["results"]:
        if report.get("mode") == "parity":
            rows.append(
                f"| {step} | {result['embodiment']} | {report['preset']} {result['dtype']} "
                f"optimised vs fp32 reference | max abs diff "
                f"{result['max_abs_diff_normalized']:.3g} (tolerance {result['tolerance']:g}) | "
                f"{'OK' if result['agree'] else 'DISAGREE'} |"
            )
            continue
        for path, record in result["paths"].items():
            latency = record["latency_s"]
            rows.append(
                f"| {step} | {result['embodiment']} | {report['preset']} {report['dtype']} "
                f"{path} | p50 {_ms(latency['p50'])} ms, p90 {_ms(latency['p90'])} ms, "
                f"peak {_mib(record['peak_memory_bytes'])} MiB | "
                f"{'OK' if result['agree'] else 'DISAGREE'} |"
            )
    return rows


def _train_rows(report: dict) -> list[str]:
    """lightwam-bench-train's rows: per preset, the real (cached, mixed-precision) and the naive
    path's samples/s and peak memory, and the speed-up."""
    rows = []
    for preset, paths in report["results"].items():
        for path, result in paths.items():
            figures = result.get("error") or (
                f"{result['samples_per_s']:.3g} samples/s, peak {_mib(result['peak_bytes'])} MiB"
            )
            rows.append(
                f"| train | {report['args']['embodiment']} | {preset} {path} | {figures} | "
                f"{'FAILED' if 'error' in result else 'OK'} |"
            )
        if all("samples_per_s" in paths.get(path, {}) for path in ("real", "naive")):
            speedup = paths["real"]["samples_per_s"] / paths["naive"]["samples_per_s"]
            rows.append(f"| train | - | {preset} real vs naive | speed-up x{speedup:.2f} | OK |")
    return rows


def markdown(steps: list[dict[str, Any]], device: str) -> str:
    lines = [
        f"Device check on {device}",
        "",
        "| step | embodiment | what | figures | verdict |",
        "|---|---|---|---|---|",
    ]
    for record in steps:
        report = record["report"]
        if record["status"] != "ok":
            lines.append(f"| {record['step']} | - | {record['status']} | {record['reason']} | - |")
        elif record["step"] == "train":
            lines += _train_rows(report)
        else:
            lines += _bench_rows(record["step"], report)
    lines += ["", "Seconds per step: " + ", ".join(f"{r['step']} {r['seconds']}" for r in steps)]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m lightwam_ros.tools.bench.device_report OUT_DIR", file=sys.stderr)
        return 2
    folder = Path(args[0])
    steps = read_steps(folder)
    reports = [r["report"] for r in steps if r["report"]]
    device = next(
        (f"{r['device_name']} ({r['device']}, torch {r['torch']})" for r in reports if "device_name" in r),
        "unknown device",
    )
    table = markdown(steps, device)
    (folder / "device_check.md").write_text(table)
    (folder / "device_check.json").write_text(json.dumps({"device": device, "steps": steps}, indent=2) + "\n")
    print(table, end="")
    failed = [r["step"] for r in steps if r["status"] == "failed"]
    agreeing = all(r["report"].get("agree", True) for r in steps if r["report"])
    return 0 if not failed and agreeing else 1


if __name__ == "__main__":
    sys.exit(main())
