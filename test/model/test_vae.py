"""Wan2.1 VAE encoder: parity with diffusers, checkpoint key names, validation, causality."""

from __future__ import annotations

import re

import pytest
import torch

from lightwam_ros.model.config import PRESETS, VAEConfig
from lightwam_ros.model.vae import ChannelRMSNorm, WanVAEEncoder, select_encoder_keys

TINY = PRESETS["tiny"].vae

# Residual-block sub-module names: diffusers -> original Wan2.1 (inverse of diffusers' conversion).
_RESIDUAL_NAMES = {
    "norm1": "residual.0",
    "conv1": "residual.2",
    "norm2": "residual.3",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}
_RESIDUAL_RE = "(" + "|".join(_RESIDUAL_NAMES) + r")\."


def _rename_residual(rest: str) -> str:
    return re.sub("^" + _RESIDUAL_RE, lambda m: _RESIDUAL_NAMES[m.group(1)] + ".", rest)


def diffusers_to_original(key: str) -> str:
    """Original Wan2.1_VAE.pth name of a diffusers AutoencoderKLWan key (decoder: rough but unique)."""
    if key.startswith("quant_conv."):
        return "conv1." + key.removeprefix("quant_conv.")
    if key.startswith("post_quant_conv."):
        return "conv2." + key.removeprefix("post_quant_conv.")
    if not key.startswith("encoder."):
        return key  # decoder keys only need to survive as "decoder.*" so the selector drops them
    rest = key.removeprefix("encoder.")
    fixed = {
        "conv_in.": "conv1.",
        "norm_out.": "head.0.",
        "conv_out.": "head.2.",
        "mid_block.attentions.0.": "middle.1.",
    }
    for old, new in fixed.items():
        if rest.startswith(old):
            return "encoder." + new + rest.removeprefix(old)
    if m := re.match(r"down_blocks\.(\d+)\.(.*)", rest):
        return f"encoder.downsamples.{m.group(1)}.{_rename_residual(m.group(2))}"
    if m := re.match(r"mid_block\.resnets\.([01])\.(.*)", rest):
        return f"encoder.middle.{2 * int(m.group(1))}.{_rename_residual(m.group(2))}"
    raise AssertionError(f"unmapped diffusers encoder key {key}")


def _normalised_reference_mean(ref, video: torch.Tensor, cfg: VAEConfig) -> torch.Tensor:
    mean = torch.tensor(cfg.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, -1, 1, 1, 1)
    return (ref.encode(video).latent_dist.mean - mean) / std


@pytest.fixture(scope="module")
def pair():
    """A randomised diffusers reference VAE and our encoder loaded from its original-named weights."""
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    ref = diffusers.AutoencoderKLWan(
        base_dim=TINY.base_dim,
        z_dim=TINY.z_dim,
        dim_mult=list(TINY.dim_mult),
        num_res_blocks=TINY.num_res_blocks,
        temperal_downsample=list(TINY.temporal_downsample),
    ).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("gamma"):
                p.uniform_(0.5, 1.5)  # non-unit norm scales, so a mis-wired norm shows
            elif name.endswith("bias"):
                p.normal_(0.0, 0.2)
    original = {diffusers_to_original(k): v for k, v in ref.state_dict().items()}
    assert any(k.startswith("decoder.") for k in original) and "conv2.weight" in original
    ours = WanVAEEncoder(TINY).eval()
    ours.load_state_dict(select_encoder_keys(original), strict=True)
    return ref, ours


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    max_abs = (actual - expected).abs().max().item()
    rel = ((actual - expected).norm() / expected.norm()).item()
    assert max_abs < 2e-4 and rel < 1e-5, f"max abs diff {max_abs:.3e}, relative error {rel:.3e}"


@pytest.mark.parametrize(
    "frames,height,width",
    [
        (1, 64, 64),  # square single frame
        (1, 224, 448),  # LIBERO canvas
        (1, 384, 320),  # RoboTwin canvas
        (5, 32, 48),  # first frame + one 4-frame chunk
        (9, 32, 32),  # first frame + two chunks (cache carried across chunks in diffusers)
    ],
)
@torch.no_grad()
def test_matches_diffusers_chunked_encoder(pair, frames, height, width):
    ref, ours = pair
    torch.manual_seed(frames * 1000 + height + width)
    video = torch.rand(2, 3, frames, height, width) * 2 - 1
    out = ours.encode(video)
    assert out.shape == (2, 16, 1 + (frames - 1) // 4, height // 8, width // 8)
    assert out.std() > 0.1  # non-degenerate latents, so the comparison means something
    _assert_close(out, _normalised_reference_mean(ref, video, TINY))


@torch.no_grad()
def test_single_frame_fast_path_equals_first_latent_of_a_clip():
    torch.manual_seed(1)
    enc = WanVAEEncoder(TINY).eval()
    clip = torch.rand(1, 3, 5, 32, 40) * 2 - 1
    _assert_close(enc.encode(clip[:, :, :1]), enc.encode(clip)[:, :, :1])


@torch.no_grad()
def test_later_frames_do_not_change_earlier_latents():
    torch.manual_seed(2)
    enc = WanVAEEncoder(TINY).eval()
    clip = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    edited = clip.clone()
    edited[:, :, 5:9] = torch.rand(1, 3, 4, 32, 32) * 2 - 1
    a, b = enc.encode(clip), enc.encode(edited)
    torch.testing.assert_close(b[:, :, :2], a[:, :, :2], atol=1e-6, rtol=0)  # frames 0 and 1-4
    assert (b[:, :, 2] - a[:, :, 2]).abs().max() > 1e-3  # frames 5-8 do reach latent 2 (1000x tol)


@torch.no_grad()
@pytest.mark.parametrize("autocast,frames", [(False, 1), (True, 9)])
def test_bfloat16_stays_close_to_float32(autocast, frames):
    """bf16 weights and input (a GPU policy's frame) give bf16 latents; bf16 autocast over a clip
    (the trainer's video targets on a CPU with native bf16) gives float32 ones."""
    torch.manual_seed(3)
    enc = WanVAEEncoder(TINY).eval()
    video = torch.rand(2, 3, frames, 32, 48) * 2 - 1
    full = enc.encode(video)
    if autocast:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = enc.encode(video)
    else:
        fast = enc.to(torch.bfloat16).encode(video.bfloat16())
    assert fast.dtype == (torch.float32 if autocast else torch.bfloat16) and fast.is_contiguous()
    assert ((fast.float() - full).norm() / full.norm()) < 0.05


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_channel_norm_and_its_gradients_follow_its_formula(layout):
    torch.manual_seed(4)
    norm = ChannelRMSNorm(8)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 1.5)
    x = (torch.randn(2, 8, 3, 5, 6) * 3).contiguous(memory_format=layout).requires_grad_()
    ref_x = x.detach().clone().requires_grad_()
    ref_gamma = norm.gamma.detach().clone().requires_grad_()
    out = norm(x)
    ref = ref_x / ref_x.norm(dim=1, keepdim=True) * 8**0.5 * ref_gamma
    torch.testing.assert_close(out, ref)
    weights = torch.randn_like(ref)
    (out * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad)
    torch.testing.assert_close(norm.gamma.grad, ref_gamma.grad)


@pytest.mark.parametrize(
    "shape,message",
    [
        ((1, 3, 2, 32, 32), "frame count T=2"),
        ((1, 3, 8, 32, 32), "frame count T=8"),
        ((1, 3, 1, 36, 32), "multiples of 8, got 36x32"),
        ((1, 3, 1, 32, 20), "multiples of 8, got 32x20"),
        ((1, 4, 1, 32, 32), "3 \\(RGB\\) channels in dim 1, got 4"),
        ((3, 1, 32, 32), "must be \\[B, 3, T, H, W\\]"),
    ],
)
def test_rejects_bad_video(shape, message):
    enc = WanVAEEncoder(TINY)
    with pytest.raises(ValueError, match=message):
        enc.encode(torch.zeros(shape))


def test_rejects_integer_video():
    with pytest.raises(ValueError, match="floating-point"):
        WanVAEEncoder(TINY).encode(torch.zeros(1, 3, 1, 32, 32, dtype=torch.uint8))


def test_full_size_names_and_shapes_match_original_checkpoint_layout():
    """Spot-check the Wan2.1_VAE.pth encoder layout (base 96) without allocating weights."""
    with torch.device("meta"):
        enc = WanVAEEncoder(VAEConfig())
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    expected = {
        "encoder.conv1.weight": (96, 3, 3, 3, 3),
        "encoder.downsamples.0.residual.0.gamma": (96, 1, 1, 1),
        "encoder.downsamples.2.resample.1.weight": (96, 96, 3, 3),
        "encoder.downsamples.3.shortcut.weight": (192, 96, 1, 1, 1),
        "encoder.downsamples.5.time_conv.weight": (192, 192, 3, 1, 1),
        "encoder.downsamples.8.time_conv.weight": (384, 384, 3, 1, 1),
        "encoder.downsamples.10.residual.6.weight": (384, 384, 3, 3, 3),
        "encoder.middle.1.norm.gamma": (384, 1, 1),
        "encoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
        "encoder.middle.2.residual.3.gamma": (384, 1, 1, 1),
        "encoder.head.0.gamma": (384, 1, 1, 1),
        "encoder.head.2.weight": (32, 384, 3, 3, 3),
        "conv1.weight": (32, 32, 1, 1, 1),
    }
    assert {k: shapes.get(k) for k in expected} == expected
    assert "encoder.downsamples.2.time_conv.weight" not in shapes  # first downsample is 2-D only
    assert not any(k.startswith("encoder.downsamples.11") for k in shapes)
    assert all(k.startswith(("encoder.", "conv1.")) for k in shapes)


def test_select_encoder_keys_drops_decoder_part():
    t = torch.zeros(1)
    full = {
        "encoder.conv1.weight": t,
        "conv1.bias": t,
        "conv2.weight": t,
        "decoder.conv1.weight": t,
        "decoder.head.2.bias": t,
    }
    assert set(select_encoder_keys(full)) == {"encoder.conv1.weight", "conv1.bias"}
