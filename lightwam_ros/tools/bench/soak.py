"""lightwam-soak: the loopback bring-up for N minutes, and whether it stays healthy.

Runs ``lightwam-bringup --tiny --loopback-robot --duration`` (every node its own process, a
private ROS domain on loopback) and reports:

- per process RSS (``/proc`` of the bring-up's process tree, sampled every few seconds): its value
  after the warm-up (``--warmup`` seconds after the first chunk) and its growth to the end;
- the chunk rate, and the largest command velocity and acceleration against their caps (the
  bring-up observer's, measured on the command stream with its stamps);
- the executor's holds by reason (its ``state A -> HOLDING|WAITING|ESTOPPED: reason`` log lines,
  numbers masked so equal causes group) and its missed ticks over the run (its diagnostics).

A benchmark, not a test: the goals (RSS growth < 5 % per process, no hold without a named cause,
caps kept) are printed beside the figures and in the JSON report, never asserted.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor

from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS
from lightwam_ros.tools.launch.ros_env import isolated_ros_env

GOAL_RSS_GROWTH = 0.05
_SAMPLE_S = 2.0
_TRANSITION = re.compile(r"\[lightwam_executor\]: state (\w+) -> (HOLDING|WAITING|ESTOPPED): (.*)$")
_NUMBER = re.compile(r"\d+(\.\d+)?")


def hold_cause(reason: str) -> str:
    """A hold's reason with its numbers masked: 'joint state is 0.103 s old' -> '... # s old'."""
    return _NUMBER.sub("#", reason.strip())


class DiagnosticsListener:
    """The executor's latest diagnostics values, from its own ROS node in this process."""

    def __init__(self) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("lightwam_soak", context=self.context)
        self.first: dict[str, str] | None = None
        self.last: dict[str, str] = {}
        name = NODE_KINDS[EXECUTOR].node_name
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda msg: self._on(msg, name), 10)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _on(self, msg: DiagnosticArray, name: str) -> None:
        for status in msg.status:
            if status.name.startswith(name):
                self.last = {kv.key: kv.value for kv in status.values}

    def _spin(self) -> None:
        while not self._stop.is_set():
            self._executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def process_rss(root: int) -> dict[str, int]:
    """RSS [bytes] of ``root`` and each descendant, keyed by a readable name."""
    found: dict[str, int] = {}
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in procs:
        try:
            cmd = proc.cmdline()
            rss = proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        name = next(
            (arg.rsplit(".", 1)[-1] for arg in cmd if arg.startswith("lightwam_ros.")),
            Path(cmd[0]).name if cmd else str(proc.pid),
        )
        found[f"{name}[{proc.pid}]"] = rss
    return found


def rss_growth(samples: list[tuple[float, dict[str, int]]], after: float) -> dict[str, Any]:
    """Per process: RSS at its first sample at or after ``after``, at its last sample (a process
    that exits at the end is missing from the final samples), and the growth between them."""
    later = [rss for t, rss in samples if t >= after]
    growth = {}
    for name, first in (later[0] if later else {}).items():
        seen = [rss[name] for rss in later if name in rss]
        if len(seen) >= 2 and first > 0:
            growth[name] = {
                "after_warmup_mb": first / 2**20,
                "end_mb": seen[-1] / 2**20,
                "growth": seen[-1] / first - 1.0,
            }
    return growth


def soak(
    minutes: float, warmup: float, embodiment: str | None, workdir: Path | None, log: Path | None
) -> dict[str, Any]:
    os.environ.update(isolated_ros_env())
    summary_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"soak_summary_{os.getpid()}.json"
    command = [
        sys.executable,
        "-m",
        "lightwam_ros.tools.launch.bringup",
        "--tiny",
        "--loopback-robot",
        "--duration",
        f"{60.0 * minutes:g}",
        "--summary-json",
        str(summary_file),
    ]
    if embodiment:
        command += ["--embodiment", embodiment]
    if workdir:
        command += ["--workdir", str(workdir)]
    listener = DiagnosticsListener()
    holds: collections.Counter[str] = collections.Counter()
    samples: list[tuple[float, dict[str, int]]] = []
    first_chunk: list[float] = []
    lines_out = open(log, "w") if log else None
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if lines_out:
                lines_out.write(line)
            if not first_chunk and "first chunk after" in line:
                first_chunk.append(time.monotonic())
            match = _TRANSITION.search(line)
            if match and match.group(1) in ("RUNNING", "RAMP_IN"):
                holds[f"{match.group(2)}: {hold_cause(match.group(3))}"] += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    at_warmup: dict[str, str] | None = None
    try:
        while proc.poll() is None:
            time.sleep(_SAMPLE_S)
            samples.append((time.monotonic(), process_rss(proc.pid)))
            if (
                at_warmup is None
                and first_chunk
                and time.monotonic() - first_chunk[0] >= warmup
                and listener.last
            ):
                at_warmup = dict(listener.last)
        reader.join(5.0)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        end = dict(listener.last)
        listener.close()
        if lines_out:
            lines_out.close()
    bringup = json.loads(summary_file.read_text()) if summary_file.exists() else {}
    summary = bringup.get("summary") or {}
    warm_from = first_chunk[0] + warmup if first_chunk else float("inf")
    growth = rss_growth(samples, warm_from)

    def delta(key: str) -> int | None:
        if at_warmup is None or key not in end:
            return None
        return int(end[key]) - int(at_warmup[key])

    commands = summary.get("commands", {})
    return {
        "minutes": minutes,
        "warmup_s": warmup,
        "exit_code": proc.returncode,
        "bringup_failure": bringup.get("failure"),
        "load_average": os.getloadavg(),
        "rss": growth,
        "goal_rss_growth": GOAL_RSS_GROWTH,
        "rss_goal_met": bool(growth) and all(g["growth"] < GOAL_RSS_GROWTH for g in growth.values()),
        "chunk_rate_hz": summary.get("chunks", {}).get("rate_hz"),
        "chunks": summary.get("chunks", {}).get("count"),
        "command_rate_hz": commands.get("rate_hz"),
        "command_max_gap_ms": commands.get("max_gap_ms"),
        "max_velocity": commands.get("max_velocity"),
        "max_acceleration": commands.get("max_acceleration"),
        "holds": dict(holds),
        "executor_ticks_after_warmup": delta("ticks"),
        "executor_missed_ticks_after_warmup": delta("missed_ticks"),
        "executor_missed_ticks_total": int(end["missed_ticks"]) if "missed_ticks" in end else None,
        "executor_ticks_total": int(end["ticks"]) if "ticks" in end else None,
    }


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"lightwam-soak: {report['minutes']:g} min loopback bring-up, warm-up "
        f"{report['warmup_s']:g} s; exit {report['exit_code']}, failure "
        f"{report['bringup_failure']}; load average {report['load_average']}"
    ]
    for name, rss in sorted(report["rss"].items()):
        lines.append(
            f"  RSS {name:40s} {rss['after_warmup_mb']:8.1f} -> {rss['end_mb']:8.1f} MB "
            f"({100 * rss['growth']:+.2f} %)"
        )
    lines.append(
        f"  RSS growth < {100 * GOAL_RSS_GROWTH:g} % per process: "
        f"{'met' if report['rss_goal_met'] else 'NOT met'}"
    )
    lines.append(
        f"  chunks {report['chunks']} at {report['chunk_rate_hz']} Hz; commands at "
        f"{report['command_rate_hz']} Hz, largest gap {report['command_max_gap_ms']} ms"
    )
    lines.append(f"  largest command velocity {report['max_velocity']}")
    lines.append(f"  largest command acceleration {report['max_acceleration']}")
    lines.append(
        f"  executor missed ticks after warm-up {report['executor_missed_ticks_after_warmup']}"
        f" of {report['executor_ticks_after_warmup']} (whole run "
        f"{report['executor_missed_ticks_total']} of {report['executor_ticks_total']})"
    )
    lines.append(f"  holds by reason: {report['holds'] or 'none'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightwam-soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="run time after the first chunk")
    parser.add_argument(
        "--warmup",
        type=float,
        default=60.0,
        help="seconds after the first chunk before RSS and ticks are counted",
    )
    parser.add_argument("--embodiment", default=None)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=None, help="the bring-up's output")
    parser.add_argument("--report", type=Path, default=Path("soak.json"))
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.warmup < 0 or args.warmup >= 60.0 * args.minutes:
        parser.error("need --minutes > 0 and 0 <= --warmup < the run time")
    report = soak(args.minutes, args.warmup, args.embodiment, args.workdir, args.log)
    args.report.write_text(json.dumps(report, indent=2))
    print(format_report(report))
    print(f"report written to {args.report}")
    return 0 if report["exit_code"] == 0 and not report["bringup_failure"] else 1


if __name__ == "__main__":
    sys.exit(main())
