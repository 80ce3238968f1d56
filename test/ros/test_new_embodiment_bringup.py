"""Must-show of "a new embodiment is one YAML file": lightwam-bringup runs the whole loop (tiny
random policy -> executor -> loopback robot) on an embodiment that exists only as one file in
$LIGHTWAM_EMBODIMENT_PATH, with no parameter file, RViz edit or code for it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from test_new_embodiment import NAME, write_embodiment

from lightwam_ros.policy.embodiment import EMBODIMENT_PATH_ENV

BRINGUP = Path(sys.executable).with_name("lightwam-bringup")


def test_bringup_runs_the_loop_on_a_new_one_file_embodiment(tmp_path):
    write_embodiment(tmp_path / "embodiments")
    env = {
        **os.environ,
        EMBODIMENT_PATH_ENV: str(tmp_path / "embodiments"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    summary_file = tmp_path / "summary.json"
    result = subprocess.run(
        [
            str(BRINGUP),
            "--embodiment",
            NAME,
            "--isolated",
            "--tiny",
            "--loopback-robot",
            "--processes",
            "one",
            "--duration",
            "3",
            "--startup-timeout",
            "120",
            "--workdir",
            str(tmp_path / "run"),
            "--summary-json",
            str(summary_file),
            "--params",
            "policy:warmup:=1",
            "executor:control_rate:=100",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    print(result.stdout[-4000:], result.stderr[-4000:])
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(summary_file.read_text())
    assert report["problems"] == [] and report["failure"] is None
    summary = report["summary"]
    assert summary["chunks"]["count"] >= 1 and summary["commands"]["count"] >= 1
    assert summary["robot"]["joint_states"] > 0
    assert summary["policy_state"].startswith("READY")
