"""lightwam-vision-check: the metrics on known answers, and a run on a tiny aloha_sim package."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lightwam_ros.tools.assets.make_tiny import make_tiny_package
from lightwam_ros.tools.evaluation import vision_check
from lightwam_ros.tools.evaluation.vision_check import vision_metrics

DEMO = np.random.default_rng(0).normal(size=(10, 6)) * 0.03


def test_a_policy_that_follows_the_scene_scores_one():
    metrics = vision_metrics(DEMO + 0.2, DEMO)  # an offset shared by all scenes does not matter
    assert metrics["correlation"] == pytest.approx(1.0) and metrics["spread_ratio"] == pytest.approx(1.0)
    half = vision_metrics(0.5 * DEMO, DEMO)
    assert half["correlation"] == pytest.approx(1.0) and half["spread_ratio"] == pytest.approx(0.5)


def test_a_blind_policy_scores_zero():
    blind = vision_metrics(np.tile(DEMO[0], (10, 1)), DEMO)  # the same motion in every scene
    assert blind["correlation"] == 0.0 and blind["spread_ratio"] == pytest.approx(0.0, abs=1e-9)
    opposite = vision_metrics(-DEMO, DEMO)
    assert opposite["correlation"] == pytest.approx(-1.0)


@pytest.mark.slow
def test_vision_check_runs_the_policy_on_scenes_from_one_start_state(tmp_path, capsys):
    package = make_tiny_package("aloha_sim", tmp_path / "tiny")
    rc = vision_check.main(
        [
            "--checkpoint",
            str(package.checkpoint),
            "--instructions",
            str(package.instructions),
            "--scenes",
            "3",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "vision_check.json").read_text())
    assert result["seeds"] == [0, 1, 2] and result["start_state_difference"] == 0.0
    assert result["demonstrated_spread"] > 0.005  # the cube moves, so the demonstrations differ
    assert np.isfinite(result["correlation"]) and np.isfinite(result["spread_ratio"])
    assert np.array(result["predicted"]).shape == (3, 6)
    assert "correlation" in capsys.readouterr().out
