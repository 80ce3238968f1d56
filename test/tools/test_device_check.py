"""scripts/device_check.sh on the CPU (tiny preset), as CI runs it: every step either passes or is
skipped with its reason, and one JSON + markdown table comes out. On a GPU the same script runs
the full preset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lightwam_ros.tools.bench import device_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_device_check_runs_on_the_cpu_and_writes_one_table(tmp_path):
    env = {**os.environ, "LIGHTWAM_VENV": sys.prefix, "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run(
        ["bash", str(ROOT / "scripts" / "device_check.sh"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "device_check.json").read_text())
    status = {step["step"]: step["status"] for step in report["steps"]}
    assert status["parity"] == status["latency"] == "ok"
    assert status["compile"] == status["cuda_graphs"] == "skipped"
    assert status["train"] == "ok"
    table = (tmp_path / "device_check.md").read_text()
    for embodiment in ("libero_franka", "robotwin_aloha"):
        assert f"| parity | {embodiment} | tiny bfloat16 optimised vs fp32 reference |" in table
        assert f"| latency | {embodiment} | tiny float32 reference | p50 " in table
    assert "| compile | - | skipped | needs a CUDA device | - |" in table
    assert "| train | aloha_sim | tiny real | " in table and "tiny real vs naive | speed-up x" in table
    assert table in run.stdout


def test_a_failed_or_silent_step_fails_the_check(tmp_path, capsys):
    (tmp_path / "steps.tsv").write_text("parity\t0\t3\t\nlatency\t1\t2\t\ncompile\tskipped\t0\tno GPU\n")
    assert device_report.main([str(tmp_path)]) == 1
    steps = json.loads((tmp_path / "device_check.json").read_text())["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [
        ("parity", "failed"),
        ("latency", "failed"),
        ("compile", "skipped"),
    ]
    table = capsys.readouterr().out
    assert "| parity | - | failed | no report step_parity.json | - |" in table
    assert "| latency | - | failed | exit 1; see step_latency.log | - |" in table
