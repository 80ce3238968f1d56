"""3-D rotary position embedding (RoPE) over (frame, height, width) token grids, as in Wan2.1.

Wan rotates adjacent channel pairs of each attention head like complex numbers. The head's pairs
are split between the three grid axes: height and width get ``2 * (head_dim // 6)`` channels each
and the frame axis the rest (44 / 42 / 42 for head dim 128). Each axis uses its own frequency
ladder ``theta ** (-2i / axis_dim)``, so positions are computed per axis and concatenated.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .grid_tables import Grid


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of one head rotated by the frame, height and width positions."""
    if head_dim % 2 or head_dim < 12:
        raise ValueError(f"head_dim must be even and >= 12 for 3-D RoPE, got {head_dim}")
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def _axis_angles(length: int, axis_dim: int, theta: float, device: torch.device) -> Tensor:
    """Rotation angles [length, axis_dim // 2] in float64 (Wan builds its tables in double)."""
    inv_freq = theta ** (-torch.arange(0, axis_dim, 2, dtype=torch.float64, device=device) / axis_dim)
    return torch.outer(torch.arange(length, dtype=torch.float64, device=device), inv_freq)


def rope_cos_sin(
    grid: Grid, head_dim: int, device: torch.device, theta: float = 10000.0
) -> tuple[Tensor, Tensor]:
    """Cosine and sine tables [f*h*w, head_dim // 2] (float32) for tokens in (f, h, w) raster order."""
    f, h, w = grid
    df, dh, dw = rope_axis_dims(head_dim)
    angles = torch.cat(
        [
            _axis_angles(f, df, theta, device)[:, None, None, :].expand(f, h, w, -1),
            _axis_angles(h, dh, theta, device)[None, :, None, :].expand(f, h, w, -1),
            _axis_angles(w, dw, theta, device)[None, None, :, :].expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(f * h * w, head_dim // 2)
    return angles.cos().float(), angles.sin().float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel pairs of ``x`` [B, L, heads, head_dim] by the tables for its L tokens."""
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs.unbind(-1)
    cos, sin = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    rotated = torch.stack((real * cos - imag * sin, real * sin + imag * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)
