"""Behaviour of the Wan DiT with Light-WAM's LoRA and adapters (tiny preset, CPU)."""

from __future__ import annotations

import pytest
import torch

from lightwam_ros.model.config import make_config
from lightwam_ros.model.dit import WanDiT, first_frame_causal_mask
from lightwam_ros.model.lora import LoRA, set_lora_merged
from lightwam_ros.model.rope import rope_axis_dims, rope_cos_sin

CFG = make_config("tiny", action_dim=7, proprio_dim=8)
TAPS = CFG.adapter.layers


def randomise_(module: torch.nn.Module, std: float = 0.05) -> None:
    """Give zero-initialised parts (LoRA up, adapter up) real values so they can change outputs."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn_like(p))


def lightwam_dit(seed: int = 0, random_heads: bool = True) -> WanDiT:
    torch.manual_seed(seed)
    dit = WanDiT(CFG.dit, CFG.lora, CFG.adapter).eval()
    if random_heads:
        randomise_(dit)
    return dit


def inputs(frames: int = 1, height: int = 8, width: int = 12, batch: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(batch, CFG.dit.in_channels, frames, height, width, generator=g)
    context = torch.randn(batch, CFG.dit.text_len + 1, CFG.dit.text_dim, generator=g)
    return latents, torch.zeros(batch), context


def test_rope_split_for_wan_head_dim():
    assert rope_axis_dims(128) == (44, 42, 42)
    assert rope_axis_dims(CFG.dit.head_dim) == (12, 10, 10)
    with pytest.raises(ValueError, match="head_dim"):
        rope_axis_dims(31)


def test_rope_tables_factorise_over_axes():
    """A token's angles for one axis depend only on its coordinate along that axis."""
    cos, _ = rope_cos_sin((2, 3, 4), 128, torch.device("cpu"))
    grid = cos.reshape(2, 3, 4, 64)
    frame, height, width = grid[..., :22], grid[..., 22:43], grid[..., 43:]
    assert torch.equal(frame, frame[:, :1, :1].expand_as(frame))
    assert torch.equal(height, height[:1, :, :1].expand_as(height))
    assert torch.equal(width, width[:1, :1, :].expand_as(width))
    assert torch.equal(grid[0, 0, 0], torch.ones(64))  # position 0 is not rotated


def test_state_dict_keys_follow_wan_and_release_layout():
    keys = set(lightwam_dit(random_heads=False).state_dict())
    plain_keys = set(WanDiT(CFG.dit).state_dict())
    assert plain_keys <= keys
    extra = keys - plain_keys
    for attn in ("self_attn", "cross_attn"):
        for proj in "qkvo":
            assert f"blocks.29.{attn}.{proj}.weight" in plain_keys
            assert f"blocks.29.{attn}.lora_{proj}.down_proj.weight" in extra
            assert f"blocks.29.{attn}.lora_{proj}.up_proj.weight" in extra
    for name in ("ffn_lora_in", "ffn_lora_out"):
        assert f"blocks.0.{name}.down_proj.weight" in extra
    for layer in TAPS:
        for part in ("norm", "down_proj", "up_proj"):
            assert f"wam_adapters.{layer}.{part}.weight" in extra
    lora_keys = {k for k in extra if ".lora_" in k or "ffn_lora_" in k}
    assert len(lora_keys) == CFG.dit.num_layers * 10 * 2
    assert all(k.startswith("wam_adapters.") for k in extra - lora_keys)
    assert {
        "head.modulation",
        "head.head.weight",
        "blocks.0.modulation",
        "blocks.0.norm3.weight",
        "time_projection.1.weight",
        "text_embedding.2.weight",
    } <= plain_keys


def test_fresh_lora_and_adapters_leave_the_backbone_unchanged():
    plain = WanDiT(CFG.dit).eval()
    randomise_(plain)
    adapted = lightwam_dit(seed=3, random_heads=False)
    missing, unexpected = adapted.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all("lora" in k or k.startswith("wam_adapters.") for k in missing)
    latents, t, context = inputs()
    with torch.no_grad():
        torch.testing.assert_close(adapted(latents, t, context), plain(latents, t, context), rtol=0, atol=0)


def test_trained_lora_changes_output_and_merge_matches_unmerged():
    dit = lightwam_dit()
    latents, t, context = inputs()
    with torch.no_grad():
        unmerged = dit(latents, t, context)
        assert set_lora_merged(dit, True) == CFG.dit.num_layers * 10
        merged = dit(latents, t, context)
        set_lora_merged(dit, False)
        restored = dit(latents, t, context)
        for lora in dit.modules():
            if isinstance(lora, LoRA):
                lora.up_proj.weight.zero_()
        without_lora = dit(latents, t, context)
    torch.testing.assert_close(merged, unmerged, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(restored, unmerged, rtol=1e-4, atol=1e-5)
    assert (without_lora - unmerged).abs().max() > 1e-2  # the LoRA mattered


def test_merge_is_idempotent():
    dit = lightwam_dit()
    before = dit.blocks[0].self_attn.q.weight.clone()
    set_lora_merged(dit, True)
    once = dit.blocks[0].self_attn.q.weight.clone()
    set_lora_merged(dit, True)
    torch.testing.assert_close(dit.blocks[0].self_attn.q.weight, once, rtol=0, atol=0)
    assert not torch.equal(once, before)
    set_lora_merged(dit, False)
    set_lora_merged(dit, False)
    torch.testing.assert_close(dit.blocks[0].self_attn.q.weight, before, rtol=0, atol=1e-6)


def test_early_exit_matches_full_run_and_skips_later_blocks():
    dit = lightwam_dit()
    latents, t, context = inputs()
    full_run = {}
    hooks = [
        dit.wam_adapters[str(i)].register_forward_hook(lambda m, a, out, i=i: full_run.__setitem__(i, out))
        for i in TAPS
    ]
    with torch.no_grad():
        dit(latents, t, context)
    for h in hooks:
        h.remove()

    calls = []
    hooks = [
        b.register_forward_hook(lambda m, a, out, i=i: calls.append(i)) for i, b in enumerate(dit.blocks)
    ]
    with torch.no_grad():
        tapped = dit.tapped_states(latents, t, context)
    for h in hooks:
        h.remove()

    assert calls == list(range(TAPS[-1] + 1))
    assert len(tapped) == len(TAPS)
    for layer, state in zip(TAPS, tapped, strict=True):
        torch.testing.assert_close(state, full_run[layer], rtol=0, atol=0)


def test_adapters_feed_the_later_blocks():
    dit = lightwam_dit()
    latents, t, context = inputs()
    with torch.no_grad():
        with_adapter = dit.tapped_states(latents, t, context)
        dit.wam_adapters[str(TAPS[0])].up_proj.weight.zero_()
        dit.wam_adapters[str(TAPS[0])].up_proj.bias.zero_()
        without_first = dit.tapped_states(latents, t, context)
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(with_adapter, without_first, strict=True))


def test_per_token_timesteps_equal_to_scalar_match_scalar():
    dit = lightwam_dit()
    latents, _, context = inputs(frames=2)
    t = torch.tensor([0.0, 640.0])
    tokens = 2 * (8 // 2) * (12 // 2)
    with torch.no_grad():
        scalar = dit(latents, t, context)
        per_token = dit(latents, t[:, None].expand(-1, tokens), context)
        mixed_t = t[:, None].repeat(1, tokens)
        mixed_t[:, : tokens // 2] = 500.0
        mixed = dit(latents, mixed_t, context)
    torch.testing.assert_close(per_token, scalar, rtol=1e-5, atol=1e-5)
    assert (mixed - scalar).abs().max() > 1e-3


def test_first_frame_causal_mask_pattern():
    mask = first_frame_causal_mask(frame_tokens=2, num_frames=3)
    assert mask.shape == (6, 6) and mask.dtype == torch.bool
    assert mask[:2, :2].all() and not mask[:2, 2:].any()  # frame 0 sees only frame 0
    assert mask[2:].all()  # later frames see everything
    with pytest.raises(ValueError):
        first_frame_causal_mask(0, 3)


def test_masked_first_frame_ignores_future_frames():
    dit = lightwam_dit()
    latents, t, context = inputs(frames=2)
    frame_tokens = (8 // 2) * (12 // 2)
    mask = first_frame_causal_mask(frame_tokens, 2)
    changed = latents.clone()
    changed[:, :, 1] += torch.randn_like(changed[:, :, 1])
    with torch.no_grad():
        base = dit.tapped_states(latents, t, context, self_attn_mask=mask)
        masked = dit.tapped_states(changed, t, context, self_attn_mask=mask)
        batched = dit.tapped_states(changed, t, context, self_attn_mask=mask.expand(2, -1, -1))
        unmasked = dit.tapped_states(changed, t, context)
    for a, b, c in zip(base, masked, batched, strict=True):
        torch.testing.assert_close(b[:, :frame_tokens], a[:, :frame_tokens], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c, b, rtol=1e-5, atol=1e-5)
        assert (b[:, frame_tokens:] - a[:, frame_tokens:]).abs().max() > 1e-3
    assert (unmasked[0][:, :frame_tokens] - base[0][:, :frame_tokens]).abs().max() > 1e-3


@pytest.mark.parametrize(
    "bad",
    [
        {"t": torch.zeros(3)},
        {"t": torch.zeros(2, 5)},
        {"latents": torch.zeros(2, 16, 1, 7, 12)},
        {"latents": torch.zeros(2, 4, 1, 8, 12)},
        {"context": torch.zeros(2, 5, 7)},
        {"self_attn_mask": torch.ones(24, 24)},
        {"self_attn_mask": torch.ones(23, 23, dtype=torch.bool)},
        {"taps": (16, 8)},
        {"taps": (30,)},
    ],
)
def test_bad_inputs_raise_value_error(bad):
    dit = lightwam_dit(random_heads=False)
    latents, t, context = inputs()
    kwargs = {"latents": latents, "t": t, "context": context, "self_attn_mask": None, "taps": TAPS}
    kwargs.update(bad)
    with pytest.raises(ValueError):
        dit.tapped_states(**kwargs)
