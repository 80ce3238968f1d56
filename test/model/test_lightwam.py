"""LightWAM assembly: configs, parameter budget of the released model, tiny-preset inference."""

from __future__ import annotations

import json

import pytest
import torch

from lightwam_ros.model.config import (
    PRESETS,
    AdapterConfig,
    DiTConfig,
    LightWAMConfig,
    VAEConfig,
    make_config,
)
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.lora import set_lora_merged

M = 1e6


# ---------------------------------------------------------------------------------- config
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_config_json_round_trip(preset):
    cfg = make_config(preset, action_dim=14, proprio_dim=14)
    restored = LightWAMConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    assert restored.dit.patch_size == (1, 2, 2) and restored.name == preset


def test_tiny_preset_keeps_the_released_structure():
    tiny, full = (make_config(p, 7, 8) for p in ("tiny", "wan2.1-1.3b"))
    assert tiny.dit.num_layers == full.dit.num_layers == 30
    assert tiny.adapter.layers == full.adapter.layers == (8, 16, 24)
    assert (tiny.dit.in_channels, tiny.dit.patch_size, tiny.horizon) == (16, (1, 2, 2), 32)
    assert full.dit.head_dim == 128 and full.lora.scale == 2.0


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="valid presets"):
        make_config("wan2.2-5b", 7, 8)
    with pytest.raises(ValueError, match="divisible"):
        DiTConfig(dim=100, ffn_dim=10, num_layers=2, num_heads=3)
    with pytest.raises(ValueError, match="latents_mean"):
        VAEConfig(latents_mean=(0.0,) * 4)
    with pytest.raises(ValueError, match="ascending"):
        AdapterConfig(layers=(16, 8))
    with pytest.raises(ValueError, match="exceed"):
        full = make_config("wan2.1-1.3b", 7, 8)
        LightWAMConfig(
            dit=DiTConfig(dim=64, ffn_dim=64, num_layers=12, num_heads=2),
            vae=full.vae,
            lora=full.lora,
            adapter=full.adapter,
            expert=full.expert,
            action_dim=7,
            proprio_dim=8,
        )
    with pytest.raises(ValueError, match="unknown keys"):
        data = make_config("tiny", 7, 8).to_dict()
        data["dit"]["depth"] = 3
        LightWAMConfig.from_dict(data)


# ------------------------------------------------------------------- released parameter budget
def test_full_preset_parameter_budget_on_meta_device():
    cfg = make_config("wan2.1-1.3b", action_dim=7, proprio_dim=8)
    with torch.device("meta"):
        model = LightWAM(cfg)
    counts = model.parameter_counts()
    dim, ffn, rank = cfg.dit.dim, cfg.dit.ffn_dim, cfg.lora.rank
    per_block_lora = rank * (8 * 2 * dim + 2 * (dim + ffn))  # 8 attention projections + 2 FFN linears
    assert counts["lora"] == cfg.dit.num_layers * per_block_lora
    assert counts["lora"] / M == pytest.approx(87.5, abs=0.05)
    assert counts["adapters"] / M == pytest.approx(2.4, abs=0.05)
    assert counts["expert"] / M == pytest.approx(351.0, abs=0.05)
    assert counts["video_head"] / M == pytest.approx(0.1, abs=0.01)
    assert counts["proprio"] == (8 + 1) * 4096
    assert counts["trainable"] / M == pytest.approx(441.0, abs=0.1)
    assert counts["frozen_dit"] / 1e9 == pytest.approx(1.42, abs=0.005)
    assert sum(p.numel() for p in model.trainable_parameters()) == counts["trainable"]


def test_freeze_for_training_leaves_only_the_additions_trainable():
    model = LightWAM(make_config("tiny", 7, 8))
    model.freeze_for_training()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {id(p) for p in model.trainable_parameters()} == {
        id(p) for p in model.parameters() if p.requires_grad
    }
    assert "dit.blocks.3.self_attn.lora_q.up_proj.weight" in trainable
    assert "dit.head.head.weight" in trainable and "proprio_encoder.weight" in trainable
    assert "dit.blocks.3.self_attn.q.weight" not in trainable
    assert not any(n.startswith("vae.") for n in trainable)
    set_lora_merged(model.dit, True)
    with pytest.raises(ValueError, match="unmerge"):
        model.freeze_for_training()


# ------------------------------------------------------------------------- tiny inference
@pytest.fixture(scope="module")
def tiny_model() -> LightWAM:
    torch.manual_seed(0)
    model = LightWAM(make_config("tiny", action_dim=7, proprio_dim=8)).eval()
    with torch.no_grad():  # wake up the zero-initialised LoRA / adapter outputs
        for name, p in model.dit.named_parameters():
            if "up_proj" in name:
                p.normal_(0, 0.05)
    return model


def tiny_inputs(model: LightWAM, height: int = 224, width: int = 448):
    g = torch.Generator().manual_seed(7)
    canvas = torch.rand(1, 3, height, width, generator=g) * 2 - 1
    instruction = torch.randn(1, model.cfg.dit.text_len, model.cfg.dit.text_dim, generator=g)
    proprio = torch.randn(1, model.cfg.proprio_dim, generator=g)
    return canvas, instruction, proprio


def test_tiny_infer_action_on_libero_canvas(tiny_model):
    canvas, instruction, proprio = tiny_inputs(tiny_model)
    with torch.no_grad():
        latents = tiny_model.encode_canvas(canvas)
        actions = tiny_model.infer_action(canvas, instruction, proprio)
        from_latents = tiny_model.infer_action_from_latents(latents, instruction, proprio)
        other_state = tiny_model.infer_action(canvas, instruction, proprio + 1)
    assert latents.shape == (1, 16, 1, 28, 56)
    assert actions.shape == (1, 32, 7) and torch.isfinite(actions).all()
    torch.testing.assert_close(from_latents, actions, rtol=0, atol=0)
    assert (other_state - actions).abs().max() > 1e-6  # the proprio token reaches the actions


def test_early_exit_is_exact_at_model_level(tiny_model):
    canvas, instruction, proprio = tiny_inputs(tiny_model, 384, 320)
    adapted = {}
    hooks = [
        tiny_model.dit.wam_adapters[str(i)].register_forward_hook(
            lambda m, a, out, i=i: adapted.__setitem__(i, out)
        )
        for i in tiny_model.cfg.adapter.layers
    ]
    try:
        with torch.no_grad():
            latents = tiny_model.encode_canvas(canvas)
            context = tiny_model.build_context(instruction, proprio)
            tiny_model.dit(latents, torch.zeros(1), context)  # all 30 blocks + video head
            full_run = tiny_model.expert([adapted[i] for i in tiny_model.cfg.adapter.layers])
    finally:
        for h in hooks:
            h.remove()
    with torch.no_grad():
        early_exit = tiny_model.infer_action(canvas, instruction, proprio)
    torch.testing.assert_close(early_exit, full_run, rtol=0, atol=0)


def test_build_context_appends_proprio_token(tiny_model):
    _, instruction, proprio = tiny_inputs(tiny_model)
    with torch.no_grad():
        context = tiny_model.build_context(instruction, proprio)
    assert context.shape == (1, tiny_model.cfg.dit.text_len + 1, tiny_model.cfg.dit.text_dim)
    torch.testing.assert_close(context[:, :-1], instruction, rtol=0, atol=0)
    torch.testing.assert_close(context[:, -1], tiny_model.proprio_encoder(proprio).detach())
    with pytest.raises(ValueError, match="proprio"):
        tiny_model.build_context(instruction, proprio[:, :5])
    with pytest.raises(ValueError, match="instruction"):
        tiny_model.build_context(instruction[:, :10], proprio)
    with pytest.raises(ValueError, match="canvas"):
        tiny_model.encode_canvas(torch.zeros(3, 224, 448))
