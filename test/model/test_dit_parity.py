"""Parity of our Wan2.1 DiT with diffusers' independent WanTransformer3DModel (test-only reference).

Both are built at the tiny preset's sizes; diffusers gets random weights, which are renamed to the
original Wan2.1 checkpoint keys (the inverse of diffusers' Wan conversion) and loaded strictly into
ours. Agreement therefore also proves that original Wan2.1 checkpoints load with no renaming.
"""

from __future__ import annotations

import re

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from lightwam_ros.model.config import DiTConfig, make_config  # noqa: E402
from lightwam_ros.model.dit import WanDiT  # noqa: E402

# diffusers name -> original Wan2.1 name (applied in order, each at most once per key).
DIFFUSERS_TO_WAN = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"_attn\.to_([qkv])\.", r"_attn.\1."),
    (r"_attn\.to_out\.0\.", "_attn.o."),
    (r"\.norm2\.", ".norm3."),  # diffusers' affine cross-attention norm is Wan's norm3
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
]


def to_wan_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    renamed = {}
    for key, value in state.items():
        for pattern, replacement in DIFFUSERS_TO_WAN:
            key = re.sub(pattern, replacement, key)
        renamed[key] = value
    return renamed


@pytest.fixture(scope="module")
def models() -> tuple[torch.nn.Module, WanDiT, DiTConfig]:
    cfg = make_config("tiny", action_dim=7, proprio_dim=8).dit
    torch.manual_seed(0)
    ref = diffusers.WanTransformer3DModel(
        patch_size=cfg.patch_size,
        num_attention_heads=cfg.num_heads,
        attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        text_dim=cfg.text_dim,
        freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim,
        num_layers=cfg.num_layers,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        eps=cfg.eps,
    ).eval()
    with torch.no_grad():  # no parameter may keep a trivial init (ones, zeros)
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = WanDiT(cfg).eval()
    ours.load_state_dict(to_wan_names(ref.state_dict()), strict=True)
    return ref, ours, cfg


def assert_close(ours: torch.Tensor, ref: torch.Tensor, rel: float = 1e-4) -> None:
    assert ours.shape == ref.shape
    assert torch.isfinite(ref).all()
    max_abs = (ours - ref).abs().max().item()
    rel_err = ((ours - ref).norm() / ref.norm()).item()
    assert rel_err < rel and max_abs < 10 * rel * ref.abs().max().item(), (max_abs, rel_err)


def make_inputs(cfg: DiTConfig, frames: int, height: int, width: int, batch: int = 2):
    g = torch.Generator().manual_seed(height * 1000 + width + frames)
    latents = torch.randn(batch, cfg.in_channels, frames, height, width, generator=g)
    context = torch.randn(batch, cfg.text_len + 1, cfg.text_dim, generator=g)
    return latents, context


# square, LIBERO canvas (224x448 -> 28x56 latent), RoboTwin canvas (384x320 -> 48x40 latent)
GRIDS = [(1, 16, 16), (1, 28, 56), (1, 48, 40)]


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: "x".join(map(str, g)))
def test_velocity_matches_diffusers_at_t0(models, grid):
    ref, ours, cfg = models
    latents, context = make_inputs(cfg, *grid)
    t = torch.zeros(latents.shape[0])
    with torch.no_grad():
        expected = ref(latents, t, context, return_dict=False)[0]
        got = ours(latents, t, context)
    assert_close(got, expected)


def test_velocity_matches_diffusers_at_noisy_timesteps(models):
    ref, ours, cfg = models
    latents, context = make_inputs(cfg, 3, 14, 28)
    t = torch.tensor([250.0, 875.0])
    with torch.no_grad():
        assert_close(ours(latents, t, context), ref(latents, t, context, return_dict=False)[0])


def test_per_token_timesteps_match_diffusers(models):
    """Training layout: clean conditioning frame (t = 0) followed by two noisy frames."""
    ref, ours, cfg = models
    latents, context = make_inputs(cfg, 3, 14, 28)
    frame_tokens = 7 * 14
    t = torch.tensor([333.0, 912.0])[:, None].repeat(1, 3 * frame_tokens)
    t[:, :frame_tokens] = 0
    with torch.no_grad():
        assert_close(ours(latents, t, context), ref(latents, t, context, return_dict=False)[0])


def test_hidden_states_after_block_match_diffusers(models):
    ref, ours, cfg = models
    latents, context = make_inputs(cfg, 1, 28, 56)
    t = torch.zeros(latents.shape[0])
    captured = {}
    taps = (0, 8, 24)
    hooks = [
        ref.blocks[i].register_forward_hook(lambda m, a, out, i=i: captured.__setitem__(i, out)) for i in taps
    ]
    try:
        with torch.no_grad():
            ref(latents, t, context, return_dict=False)
            states = ours.tapped_states(latents, t, context, taps=taps)
    finally:
        for h in hooks:
            h.remove()
    for i, state in zip(taps, states, strict=True):
        assert_close(state, captured[i])
