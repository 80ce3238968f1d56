"""lightwam-bench on the tiny preset (CPU, float32): one run measures both paths on both
embodiments, writes a complete JSON report and checks the paths agree."""

from __future__ import annotations

import json

import pytest
import torch

from lightwam_ros.tools.bench import bench


def test_bench_reports_both_paths_on_both_embodiments(tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    rc = bench.main(
        ["--preset", "tiny", "--device", "cpu", "--iters", "3", "--warmup", "1", "--json", str(report_path)]
    )
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert report["torch"] == torch.__version__ and report["dtype"] == "float32"
    assert report["device"] == "cpu" and report["device_name"] and report["agree"] is True
    canvases = {r["embodiment"]: r["canvas"] for r in report["results"]}
    assert canvases == {"libero_franka": [224, 448], "robotwin_aloha": [384, 320]}
    for result in report["results"]:
        assert set(result["paths"]) == {"optimized", "reference"}
        for record in result["paths"].values():
            latency = record["latency_s"]
            assert latency["count"] == 3
            assert 0 < latency["p50"] <= latency["p90"] <= latency["max"]
            assert record["peak_memory_bytes"] is None and record["weight_bytes"] > 0
            assert record["stages_p50_s"]["backbone"] > 0
        # merged LoRA factors and blocks 25..29 are freed on the optimised path
        assert result["paths"]["optimized"]["weight_bytes"] < result["paths"]["reference"]["weight_bytes"]
        assert 0 < result["max_abs_diff_normalized"] <= bench.FP32_TOLERANCE == result["tolerance"]
        assert result["agree"] is True
    table = capsys.readouterr().out
    assert "libero_franka" in table and "reference" in table and "OK" in table


def test_full_preset_on_cpu_needs_an_explicit_flag(capsys):
    with pytest.raises(SystemExit) as caught:
        bench.main(["--preset", "wan2.1-1.3b", "--device", "cpu"])
    assert caught.value.code == 2
    assert "--allow-full-on-cpu" in capsys.readouterr().err


def test_tolerance_is_tighter_in_float32():
    assert bench.tolerance_for(torch.float32) < bench.tolerance_for(torch.bfloat16)
