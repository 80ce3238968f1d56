"""lightwam-soak: a short real loopback bring-up gives a complete report (RSS per process, chunk
rate, holds by reason, missed ticks, largest command velocity and acceleration with their caps);
the pieces that group holds and compute RSS growth are checked on known input."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("rclpy")
from lightwam_ros.tools.bench.soak import hold_cause, rss_growth


def test_hold_causes_group_by_their_words_not_their_numbers():
    assert hold_cause("holding: joint state is 0.103 s old (limit 0.100 s)") == hold_cause(
        "holding: joint state is 0.135 s old (limit 0.100 s)"
    )
    assert hold_cause("holding: no chunk for 0.5 s") != hold_cause("holding: joint state is 1 s old")


def test_rss_growth_counts_from_the_first_sample_after_the_warmup():
    samples = [
        (0.0, {"policy": 100}),
        (10.0, {"policy": 200, "robot": 50}),
        (20.0, {"policy": 210, "robot": 60}),
        (21.0, {"robot": 61}),
    ]  # policy exited
    growth = rss_growth(samples, after=5.0)
    assert growth["policy"]["growth"] == pytest.approx(0.05)
    assert growth["robot"]["growth"] == pytest.approx(0.22)
    assert rss_growth(samples, after=20.5) == {}  # one sample after the warm-up: no growth yet


def test_a_short_soak_reports_every_figure(tmp_path):
    report_path = tmp_path / "soak.json"
    soak = subprocess.run(
        [
            sys.executable,
            "-m",
            "lightwam_ros.tools.bench.soak",
            "--minutes",
            "0.3",
            "--warmup",
            "6",
            "--workdir",
            str(tmp_path / "work"),
            "--report",
            str(report_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
    )
    assert soak.returncode == 0, soak.stdout[-3000:]
    report = json.loads(report_path.read_text())
    names = " ".join(report["rss"])
    for node in ("policy_node", "executor_node", "loopback_robot"):
        assert node in names, report["rss"]
    assert all(rss["after_warmup_mb"] > 10 for rss in report["rss"].values())
    assert report["chunks"] > 0 and report["chunk_rate_hz"] > 0
    assert report["executor_ticks_after_warmup"] > 0
    assert report["executor_missed_ticks_after_warmup"] >= 0
    for key in ("max_velocity", "max_acceleration"):
        assert report[key]["value"] >= 0 and report[key]["cap"] > 0, report[key]
    assert isinstance(report["holds"], dict)
    assert "holds by reason" in soak.stdout
