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


def _run(tmp_path: Path) -> dict:
    rc = lockstep_eval.main(
        [
            "--checkpoint",
            str(PACKAGE / "model.safetensors"),
            "--instructions",
            str(PACKAGE / "instructions.safetensors"),
            "--episodes",
            "1",
            "--episode-seconds",
            "4",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    return json.loads((tmp_path / "lockstep.json").read_text())


@pytest.mark.slow
def test_the_learned_package_reaches_for_the_cube_and_a_rerun_is_identical(tmp_path):
    first = _run(tmp_path / "a")
    episode = first["per_episode"][0]
    # The policy file's 5 Hz over 4 simulated seconds, every chunk accepted.
    assert abs(episode["chunks_accepted"] - 20) <= 1 and episode["chunks_refused"] == 0
    assert episode["length_s"] == pytest.approx(4.0, abs=0.03)
    # The right gripper starts about 0.33 m from the cube; after 4 s it is at least 3 cm closer.
    assert episode["object_distance_closest_m"] < 0.30
    assert _run(tmp_path / "b")["per_episode"] == first["per_episode"]  # no clock, no jitter


def test_overrides_reach_their_node_and_must_name_it():
    overrides = lockstep_eval.parse_overrides(["executor:boundary_rule:=ensemble", "policy:rate:=5"])
    setup = lockstep_eval.executor_setup("aloha_sim", overrides)
    assert setup.config.boundary_rule == "ensemble" and "right_finger" in setup.layout.joint_names
    assert setup.control_rate == 100.0  # config/executor_aloha_sim.yaml
    policy = lockstep_eval.policy_settings(
        "aloha_sim", str(PACKAGE / "model.safetensors"), str(PACKAGE / "instructions.safetensors"), overrides
    )
    assert policy.rate == 5.0 and policy.instruction  # the file's instruction, the override's rate
    with pytest.raises(PlanError, match="name the node"):
        lockstep_eval.parse_overrides(["rate:=5"])
