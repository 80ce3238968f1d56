"""lightwam-bench-ros: its figures exist and are sane (not fast: that is the benchmark's job).

One short real run (policy, executor and loopback robot as separate processes over DDS) checks
the JSON report; the arithmetic that turns stamps into period errors is checked on known stamps.
"""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("rclpy")
from lightwam_ros.tools.bench.bench_ros import period_errors, summarize


def test_period_errors_and_missed_ticks_from_known_stamps():
    period_ns = 2_000_000
    # 2.0, 2.3, 1.7, 6.0 (two ticks missing), 2.0 ms apart
    stamps = np.cumsum([0, period_ns, 2_300_000, 1_700_000, 3 * period_ns, period_ns])
    errors, missed = period_errors(stamps, period_ns * 1e-9)
    np.testing.assert_allclose(errors, [0.0, 0.3, 0.3, 4.0, 0.0], atol=1e-9)
    assert missed == 2


def test_summarize_percentiles_and_empty_input():
    stats = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (stats["p50"], stats["max"], stats["count"]) == (3.0, 100.0, 5)
    assert 4.0 < stats["p90"] < stats["p99"] < 100.0
    empty = summarize([])
    assert empty["count"] == 0 and math.isnan(empty["p50"])


def test_bad_arguments_are_refused_before_anything_starts(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightwam_ros.tools.bench.bench_ros",
            "--requests",
            "0",
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--requests must be >= 1" in result.stderr
    assert not (tmp_path / "r.json").exists()


def _finite_non_negative(value, where):
    assert isinstance(value, (int, float)) and math.isfinite(value) and value >= 0, (where, value)


def test_short_run_reports_sane_figures(tmp_path):
    # 6 s: on the 2-core CI machine the policy then publishes 2-3 chunks in the executor's
    # window; in 4 s a single chunk could land after the executor's last diagnostics in it.
    report_path = tmp_path / "bench_ros.json"
    bench = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lightwam_ros.tools.bench.bench_ros",
            "--requests",
            "3",
            "--warmup-requests",
            "1",
            "--seconds",
            "6",
            "--workdir",
            str(tmp_path / "work"),
            "--json",
            str(report_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = bench.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        bench.terminate()  # SIGTERM: the bench stops its nodes before it exits
        output, _ = bench.communicate(timeout=60)
        pytest.fail(f"lightwam-bench-ros did not finish in 240 s:\n{output[-3000:]}")
    assert bench.returncode == 0, output[-3000:]
    report = json.loads(report_path.read_text())
    assert "(a) ROS overhead" in output and "(b) executor at 500 Hz" in output

    overhead = report["overhead"]
    for name in (
        "end_to_end",
        "model",
        "overhead",
        "in_node_before_model",
        "transport_and_messages",
        "vae",
        "backbone",
    ):
        stats = overhead["ms"][name]
        assert stats["count"] == 3, name
        for key in ("p50", "p90", "max"):
            _finite_non_negative(stats[key], f"overhead {name} {key}")
    ms = overhead["ms"]
    assert ms["model"]["p50"] > 0 and ms["end_to_end"]["max"] >= ms["model"]["max"]

    executor = report["executor"]
    assert executor["commands_received"] > 0 and executor["chunks_received"] > 0
    ticks = executor["executor_tick_stats"]
    assert ticks["ticks"] > 0 and ticks["chunks_accepted"] > 0
    assert ticks["diagnostics_in_window"] > 0 and ticks["span_s"] > 0
    for key in ("p50", "p99", "max"):
        _finite_non_negative(executor["period_error_ms"][key], f"period error {key}")
    for value, where in (
        (executor["command_rate_hz"], "command rate"),
        (executor["missed_ticks_from_stamps"], "missed ticks"),
        (ticks["missed_ticks"], "TickStats missed"),
        (ticks["period_p99_ms_worst"], "TickStats p99"),
    ):
        _finite_non_negative(value, where)
    assert executor["command_rate_hz"] > 0
