"""lightwam-lockstep-eval: the committed package and the scripted policy, stepped with the simulator
in its own time."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")  # the parameter files are read as the ROS nodes read them
pytest.importorskip("gym_aloha", reason="the simulators are not installed (requirements/sim.txt)")

from lightwam_ros.ros.policy_params import settings_from_values as policy_settings_from_values
from lightwam_ros.sim.base import SimState
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.evaluation import lockstep_eval
from lightwam_ros.tools.launch.bringup_plan import PlanError


def _run(tmp_path: Path, episode_args: list[str]) -> dict:
    rc = lockstep_eval.main([*episode_args, "--out", str(tmp_path)])
    assert rc == 0
    return json.loads((tmp_path / "lockstep.json").read_text())


def _policy_file_rate(package: Path) -> float:
    """The policy's rate as the bring-up plan gives it from the parameter file (no overrides)."""
    task = SimTask.parse("aloha:transfer_cube")
    model = (str(package / "model.safetensors"), str(package / "instructions.safetensors"))
    plan = lockstep_eval.lockstep_plan(task, *model, [])
    return policy_settings_from_values(plan.node("policy").values()).rate


@pytest.mark.slow
def test_the_learned_package_reaches_for_the_cube_and_a_rerun_is_identical(
    tmp_path, learned_package, learned_package_episode
):
    first = _run(tmp_path / "a", learned_package_episode)
    episode = first["per_episode"][0]
    # The policy file's rate over 4 simulated seconds, every chunk accepted.
    expected = 4.0 * _policy_file_rate(learned_package)
    assert abs(episode["chunks_accepted"] - expected) <= 1 and episode["chunks_refused"] == 0
    assert episode["length_s"] == pytest.approx(4.0, abs=0.03)
    # The right gripper starts about 0.33 m from the cube; after 4 s it is at least 3 cm closer.
    assert episode["object_distance_closest_m"] < 0.30
    rerun = _run(tmp_path / "b", learned_package_episode)
    assert rerun["per_episode"] == first["per_episode"]  # no clock, no jitter


def test_the_scripted_chunks_lose_no_episode_to_the_execution_path(tmp_path):
    """The script's chunks at the policy file's rate, each 0.05 s late, through the executor's
    core with its parameter file: the episodes the script wins on its own are won."""
    rc = lockstep_eval.main(["--scripted", "--episodes", "2", "--latency", "0.05", "--out", str(tmp_path)])
    assert rc == 0
    report = json.loads((tmp_path / "lockstep.json").read_text())
    assert report["scripted"] and report["summary"]["successes"] == 2
    assert report["summary"]["chunks_refused"] == 0


def test_scripted_chunks_exist_only_for_the_transfer_cube_script(capsys):
    assert lockstep_eval.main(["--scripted", "--sim", "aloha:insertion", "--episodes", "1"]) == 1
    assert "--scripted plays the aloha:transfer_cube script" in capsys.readouterr().err


class _Named:
    """A chunk source that answers with its name and counts its episode starts."""

    def __init__(self, name: str) -> None:
        self.name, self.starts = name, 0

    def start(self, state):
        self.starts += 1

    def chunk(self, state, stamp_ns):
        return self.name


def test_an_episode_is_handed_from_the_script_to_the_model_at_the_given_time():
    script, model = _Named("script"), _Named("model")
    source = lockstep_eval.HandedOver(script, model, seconds=4.0)
    state = SimState(time=0.0, positions=np.zeros(2), velocities=np.zeros(2), eef_poses={}, success=False)
    source.start(state)
    assert script.starts == model.starts == 1  # both plan (or reset) at every episode's start
    times = (0.0, 3.98, 4.0, 6.0)
    assert [source.chunk(replace(state, time=t), 0) for t in times] == ["script", "script", "model", "model"]


def test_scripted_and_handed_over_runs_exclude_each_other(capsys):
    assert lockstep_eval.main(["--scripted", "--scripted-until", "2", "--episodes", "1"]) == 1
    assert "exclude each other" in capsys.readouterr().err


def test_the_nodes_get_the_parameters_lightwam_sim_eval_gives_them(learned_package):
    task = SimTask.parse("aloha:transfer_cube")
    model = (str(learned_package / "model.safetensors"), str(learned_package / "instructions.safetensors"))
    plan = lockstep_eval.lockstep_plan(task, *model, ["executor:boundary_rule:=ensemble", "rate:=2"])
    setup = lockstep_eval.executor_setup(plan)
    assert setup.config.boundary_rule == "ensemble" and "right_finger" in setup.layout.joint_names
    assert setup.control_rate == 100.0  # config/executor_aloha_sim.yaml
    policy = policy_settings_from_values(plan.node("policy").values())
    assert policy.rate == 2.0 and policy.instruction  # the file's instruction, the routed override's rate
    assert policy.checkpoint == learned_package / "model.safetensors"
    with pytest.raises(PlanError, match="no started node declares it"):
        lockstep_eval.lockstep_plan(task, *model, ["no_such_parameter:=5"])
