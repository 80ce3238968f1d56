"""The transfer-cube script as a policy: its chunk steps are the script's targets at the times a
model's chunk steps are reached, in the embodiment's action layout."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.sim.aloha import AlohaSim
from lightwam_ros.sim.base import SimError, configure_offscreen_rendering
from lightwam_ros.sim.scripted_policy import ScriptedPolicy

configure_offscreen_rendering()  # before gym-aloha imports dm_control, which fixes its GL backend
pytest.importorskip("gym_aloha.tasks.sim", reason="needs requirements/sim.txt")


@pytest.fixture(scope="module")
def sim():
    simulator = AlohaSim("transfer_cube")
    yield simulator
    simulator.close()


def test_chunk_steps_are_the_script_targets_when_each_step_is_reached(sim):
    spec = load_embodiment("aloha_sim")
    policy = ScriptedPolicy(sim, spec)
    state = sim.reset(3)
    policy.start(state)
    later = replace(state, time=1.5)  # an observation in the middle of the approach
    chunk = policy.chunk(later, stamp_ns=7)
    assert chunk.stamp_ns == 7 and chunk.horizon == spec.chunk.length
    assert chunk.action_names == spec.action.layout.dim_names and chunk.dt == 1.0 / spec.policy_rate_hz
    # aloha_sim runs its chunks at the control rate: step i is the target of control step i + 1.
    assert chunk.dt == pytest.approx(sim.control_dt)
    for step in (0, 5, spec.chunk.length - 1):
        target = policy.script.targets(replace(later, time=later.time + step * sim.control_dt))
        expected = policy.state_vector(replace(later, positions=target))
        np.testing.assert_allclose(chunk.actions[step], expected, atol=1e-6)
    # The right arm moves during the approach, so the chunk is not one pose repeated.
    assert np.abs(chunk.actions[-1] - chunk.actions[0]).max() > 1e-3


def test_an_embodiment_whose_actions_are_not_its_state_is_refused(sim):
    with pytest.raises(SimError, match="actions laid out as the state"):
        ScriptedPolicy(sim, load_embodiment("libero_franka"))
