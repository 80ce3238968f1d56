"""lightwam-lockstep-eval: the committed package, stepped with the simulator in its own time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("rclpy")  # the parameter files are read as the ROS nodes read them
pytest.importorskip("gym_aloha", reason="the simulators are not installed (requirements/sim.txt)")

from lightwam_ros.tools.evaluation import lockstep_eval
from lightwam_ros.tools.launch.bringup_plan import PlanError

PACKAGE = Path(__file__).resolve().parents[2] / "packages" / "aloha_sim"


def _run(tmp_path: Path, *extra: str) -> dict:
    rc = lockstep_eval.main(
        [
            "--checkpoint",
            str(PACKAGE / "model.safetensors"),
            "--instructions",
            str(PACKAGE / "instructions.safetensors"),
            "--episodes",
            "1",
            "--episode-seconds",
            "3",
            "--out",
            str(tmp_path),
            *extra,
        ]
    )
    assert rc == 0
    return json.loads((tmp_path / "lockstep.json").read_text())


@pytest.mark.slow
def test_the_learned_package_reaches_for_the_cube_and_a_rerun_is_identical(tmp_path):
    first = _run(tmp_path / "a")
    episode = first["per_episode"][0]
    # The policy file's 10 Hz over 3 simulated seconds, every chunk accepted.
    assert abs(episode["chunks_accepted"] - 30) <= 1 and episode["chunks_refused"] == 0
    assert episode["length_s"] == pytest.approx(3.0, abs=0.03)
    # The right gripper starts about 0.33 m from the cube; after 3 s it is at least 3 cm closer.
    assert episode["object_distance_closest_m"] < 0.30
    assert _run(tmp_path / "b")["per_episode"] == first["per_episode"]  # no clock, no jitter


def test_executor_overrides_apply_and_another_node_is_refused():
    config, layout = lockstep_eval.executor_config("aloha_sim", ["executor:boundary_rule:=ensemble"])
    assert config.boundary_rule == "ensemble" and "right_finger" in layout.joint_names
    with pytest.raises(PlanError, match="only the executor"):
        lockstep_eval.executor_config("aloha_sim", ["policy:rate:=5"])
