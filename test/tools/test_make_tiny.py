"""lightwam-make-tiny: a seeded, loadable random package with plausible statistics and a
deterministic stand-in instruction cache."""

from __future__ import annotations

import json

import numpy as np
import torch

from lightwam_ros.model.checkpoint import load_checkpoint
from lightwam_ros.model.config import make_config
from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.model.lora import LoRA
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.tools.assets import make_tiny


def test_cli_writes_a_loadable_package(tmp_path, capsys):
    assert make_tiny.main(["--embodiment", "robotwin_aloha", "--out", str(tmp_path)]) == 0
    spec = load_embodiment("robotwin_aloha")
    loaded = load_checkpoint(tmp_path / make_tiny.CHECKPOINT_NAME)
    assert loaded.meta.embodiment == "robotwin_aloha"
    assert loaded.meta.instruction_encoder == make_tiny.STANDIN_ENCODER_ID
    assert loaded.model.cfg == make_config("tiny", 14, 14, 32)
    stats_file = tmp_path / make_tiny.STATS_NAME
    assert json.loads(stats_file.read_text()) == loaded.meta.stats
    Normalizer.for_embodiment(stats_file, spec)  # dimensions and layout accepted
    cache = InstructionCache.load(tmp_path / make_tiny.INSTRUCTIONS_NAME)
    assert cache.tasks() == sorted(load_embodiment("robotwin_aloha").tasks)
    assert "stand-in" in capsys.readouterr().out


def test_same_seed_same_model_other_seed_other_model(tmp_path):
    ids = [
        make_tiny.make_tiny_package("libero_franka", tmp_path / name, seed=seed).model_id
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    ]
    assert ids[0] == ids[1] != ids[2]


def test_random_model_has_live_additions_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model = make_tiny.random_model(make_config("tiny", 7, 8), seed=0)
    assert torch.equal(torch.rand(3), expected)
    loras = [m for m in model.modules() if isinstance(m, LoRA)]
    assert loras and all(m.up_proj.weight.abs().max() > 0 for m in loras)
    assert all(a.up_proj.weight.abs().max() > 0 for a in model.dit.wam_adapters.values())


def test_libero_stats_follow_the_embodiment():
    spec = load_embodiment("libero_franka")
    stats = make_tiny.plausible_stats(spec)
    state, action = (stats[s]["default"] for s in ("state", "action"))
    for block, dim in ((state, 8), (action, 7)):
        vectors = {k: np.array(v) for k, v in block.items()}
        assert all(v.shape == (dim,) for v in vectors.values())
        assert np.all(vectors["global_min"] <= vectors["global_q01"])
        assert np.all(vectors["global_q01"] <= vectors["global_mean"])
        assert np.all(vectors["global_mean"] <= vectors["global_q99"])
        assert np.all(vectors["global_q99"] <= vectors["global_max"])
    # finger joints: 0..0.04 m, the second mirrored (scale -1); eef within the Panda's reach
    assert 0 <= state["global_min"][6] and state["global_max"][6] <= 0.04
    assert -0.04 <= state["global_min"][7] and state["global_max"][7] <= 0
    reach = np.abs(np.array([state["global_min"][:3], state["global_max"][:3]]))
    assert np.all(reach[:, :2] < 1.0) and 1.0 < state["global_max"][2] < 1.4
    # delta actions inside the controller's [-1, 1]; gripper g in [0, 1] before post-processing
    assert max(map(abs, action["global_min"][:6] + action["global_max"][:6])) <= 0.9375
    assert 0 <= action["global_min"][6] and action["global_max"][6] <= 1


def test_standin_embedding_is_deterministic_and_padded():
    first, mask = make_tiny.standin_embedding("turn on the stove", 128, 32)
    again, _ = make_tiny.standin_embedding("turn on the stove", 128, 32)
    other, _ = make_tiny.standin_embedding("turn off the stove", 128, 32)
    assert torch.equal(first, again) and not torch.equal(first, other)
    tokens = int(mask.sum())
    assert 0 < tokens < 128 and mask[:tokens].all()
    assert first[tokens:].abs().max() == 0 and first[:tokens].abs().min() > 0


def test_unknown_embodiment_is_a_usage_error(tmp_path, capsys):
    assert make_tiny.main(["--embodiment", "no_such_robot", "--out", str(tmp_path)]) == 2
    assert "unknown embodiment" in capsys.readouterr().err
