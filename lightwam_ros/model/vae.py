"""Wan2.1 causal 3-D VAE encoder: video in [-1, 1] -> normalised 16-channel latents.

Only the encoder is needed at control time (the action path never decodes). The module tree
mirrors the original ``Wan2.1_VAE.pth`` so its encoder keys (``encoder.*`` and the top-level
``conv1.*``) load with ``load_state_dict(select_encoder_keys(sd))`` and no renaming.

The original encodes the first frame alone, then chunks of 4 frames while carrying a feature
cache between calls. Because every temporal convolution is causal and zero-padded on the past
side, that chunked scheme equals one pass over the whole clip, which is what this module does:
no cache bookkeeping, static shapes, and a single-frame input (the inference path) runs as plain
2-D convolutions.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightwam_ros.model.config import VAEConfig

# Key prefixes of the original Wan2.1 VAE checkpoint that belong to the encoder path.
ORIGINAL_KEY_PREFIXES: tuple[str, ...] = ("encoder.", "conv1.")


def select_encoder_keys(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Keep the encoder part (``encoder.*``, ``conv1.*``) of a full original Wan2.1 VAE state dict."""
    return {k: v for k, v in state_dict.items() if k.startswith(ORIGINAL_KEY_PREFIXES)}


class CausalConv3d(nn.Conv3d):
    """3-D convolution padded in time only on the past side, so output frame t never sees t+1.

    Spatial padding is symmetric ("same"); the temporal stride is always 1.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        half = kernel_size // 2
        super().__init__(in_channels, out_channels, kernel_size, padding=(0, half, half))
        self.past_padding = kernel_size - 1

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[2] == 1:
            # The past is all zero padding, so only the newest temporal tap sees the frame:
            # a 2-D convolution with that slice is exact and avoids 3x wasted work.
            out = F.conv2d(x.squeeze(2), self.weight[:, :, -1], self.bias, padding=self.padding[1:])
            return out.unsqueeze(2)
        if self.past_padding:
            x = F.pad(x, (0, 0, 0, 0, self.past_padding, 0))
        return super().forward(x)


class ChannelRMSNorm(nn.Module):
    """Wan's channel norm: x / ||x||_channels * sqrt(C) * gamma (no mean subtraction, no bias).

    The sum of squares accumulates in float32 so bf16 activations do not lose precision there; the
    scaling runs in the activations' dtype, so bf16 ones are not copied to float32 and back.
    """

    def __init__(self, dim: int, video: bool = True) -> None:
        super().__init__()
        # Checkpoint shapes: (C, 1, 1, 1) for [B, C, T, H, W] inputs, (C, 1, 1) for [N, C, H, W].
        self.gamma = nn.Parameter(torch.ones(dim, 1, 1, 1) if video else torch.ones(dim, 1, 1))
        self.scale = dim**0.5

    def forward(self, x: Tensor) -> Tensor:
        sum_sq = x.square().sum(dim=1, keepdim=True, dtype=torch.float32)
        inv_norm = torch.rsqrt(sum_sq.clamp_min(1e-24)) * self.scale
        return x * inv_norm.to(x.dtype) * self.gamma.to(x.dtype)


def _frames_as_batch(x: Tensor) -> Tensor:
    """[B, C, T, H, W] -> [B*T, C, H, W] for per-frame 2-D ops (a view when T == 1)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _batch_as_frames(x: Tensor, batch: int) -> Tensor:
    """Inverse of ``_frames_as_batch``."""
    n, c, h, w = x.shape
    return x.reshape(batch, n // batch, c, h, w).transpose(1, 2)


class ResidualBlock(nn.Module):
    """norm -> SiLU -> causal conv -> norm -> SiLU -> causal conv, plus a (1x1x1) shortcut."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            ChannelRMSNorm(in_dim),
            nn.SiLU(),
            CausalConv3d(in_dim, out_dim, 3),
            # Index 5 held Wan's dropout (p=0); the placeholder keeps checkpoint indices 0/2/3/6.
            ChannelRMSNorm(out_dim),
            nn.SiLU(),
            nn.Identity(),
            CausalConv3d(out_dim, out_dim, 3),
        )
        self.shortcut = CausalConv3d(in_dim, out_dim, 1) if in_dim != out_dim else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.residual(x)


class SpatialAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame separately (no temporal mixing)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = ChannelRMSNorm(dim, video=False)
        self.to_qkv = nn.Conv2d(dim, dim * 3, 1)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        frames = _frames_as_batch(x)
        n, c, h, w = frames.shape
        qkv = self.to_qkv(self.norm(frames)).flatten(2).transpose(1, 2).unsqueeze(1)  # [N,1,HW,3C]
        q, k, v = qkv.chunk(3, dim=-1)
        out = F.scaled_dot_product_attention(q, k, v).squeeze(1).transpose(1, 2).reshape(n, c, h, w)
        return x + _batch_as_frames(self.proj(out), x.shape[0])


class Downsample(nn.Module):
    """Halve H and W (pad right/bottom, 3x3 stride-2 conv); optionally halve time too.

    Temporal halving keeps frame 0 as it is and applies a stride-2, 3-tap conv over all frames
    without padding: exactly what Wan's chunked cache produces (windows start at frames 0, 2, ...).
    """

    def __init__(self, dim: int, temporal: bool) -> None:
        super().__init__()
        self.resample = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(dim, dim, 3, stride=2))
        self.time_conv = nn.Conv3d(dim, dim, (3, 1, 1), stride=(2, 1, 1)) if temporal else None

    def forward(self, x: Tensor) -> Tensor:
        x = _batch_as_frames(self.resample(_frames_as_batch(x)), x.shape[0])
        if self.time_conv is not None and x.shape[2] > 1:
            x = torch.cat([x[:, :, :1], self.time_conv(x)], dim=2)
        return x


class CausalEncoder3d(nn.Module):
    """Wan2.1 ``Encoder3d``: stem, residual/downsample stages, middle block, head -> 2*z_dim."""

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        dims = [cfg.base_dim * m for m in (1, *cfg.dim_mult)]
        self.conv1 = CausalConv3d(3, dims[0], 3)
        blocks: list[nn.Module] = []
        last_stage = len(cfg.dim_mult) - 1
        for stage, (in_dim, out_dim) in enumerate(itertools.pairwise(dims)):
            for i in range(cfg.num_res_blocks):
                blocks.append(ResidualBlock(in_dim if i == 0 else out_dim, out_dim))
            if stage != last_stage:
                blocks.append(Downsample(out_dim, temporal=cfg.temporal_downsample[stage]))
        self.downsamples = nn.Sequential(*blocks)
        width = dims[-1]
        self.middle = nn.Sequential(
            ResidualBlock(width, width), SpatialAttention(width), ResidualBlock(width, width)
        )
        self.head = nn.Sequential(ChannelRMSNorm(width), nn.SiLU(), CausalConv3d(width, 2 * cfg.z_dim, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.middle(self.downsamples(self.conv1(x))))


class WanVAEEncoder(nn.Module):
    """Encoder half of the Wan2.1 VAE returning the normalised posterior mean."""

    latents_mean: Tensor  # buffers, registered in __init__
    latents_std: Tensor

    def __init__(self, cfg: VAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = CausalEncoder3d(cfg)
        self.conv1 = CausalConv3d(2 * cfg.z_dim, 2 * cfg.z_dim, 1)
        self.spatial_factor = 2 ** (len(cfg.dim_mult) - 1)
        self.temporal_factor = 2 ** sum(cfg.temporal_downsample)
        # Not persistent: they are not in the original checkpoint, and strict loading must pass.
        stats_shape = (1, cfg.z_dim, 1, 1, 1)
        self.register_buffer(
            "latents_mean", torch.tensor(cfg.latents_mean).view(stats_shape), persistent=False
        )
        self.register_buffer("latents_std", torch.tensor(cfg.latents_std).view(stats_shape), persistent=False)

    def _check_video(self, video: Tensor) -> None:
        if video.ndim != 5:
            raise ValueError(f"video must be [B, 3, T, H, W], got shape {tuple(video.shape)}")
        if not video.is_floating_point():
            raise ValueError(f"video must be a floating-point tensor in [-1, 1], got {video.dtype}")
        _, c, t, h, w = video.shape
        if c != 3:
            raise ValueError(
                f"video must have 3 (RGB) channels in dim 1, got {c} (shape {tuple(video.shape)})"
            )
        if (t - 1) % self.temporal_factor:
            raise ValueError(
                f"video frame count T={t} must be 1 + {self.temporal_factor}k "
                f"(1, {1 + self.temporal_factor}, {1 + 2 * self.temporal_factor}, ...)"
            )
        if h % self.spatial_factor or w % self.spatial_factor or h == 0 or w == 0:
            raise ValueError(
                f"video height and width must be positive multiples of {self.spatial_factor}, got {h}x{w}"
            )

    def encode(self, video: Tensor) -> Tensor:
        """[B, 3, T, H, W] in [-1, 1] -> (mu - mean) / std, [B, z, 1 + (T-1)/4, H/8, W/8].

        The output has the input's dtype; the normalisation itself runs in float32. On a CPU the
        activations run channels-last: oneDNN's convolutions over this encoder's few channels are
        about 2x faster in that layout (a 9-frame clip of the aloha_sim canvas, batch 16: 4.4 s ->
        3.1 s on two cores), and every op after them keeps it.
        """
        self._check_video(video)
        if video.device.type == "cpu":
            video = video.contiguous(memory_format=torch.channels_last_3d)
        moments = self.conv1(self.encoder(video))
        mu = moments[:, : self.cfg.z_dim].float()
        return ((mu - self.latents_mean.float()) / self.latents_std.float()).to(video.dtype).contiguous()

    def forward(self, video: Tensor) -> Tensor:
        return self.encode(video)
