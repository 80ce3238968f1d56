"""Absolute 2-D positions of tokens within their frame, for a backbone trained from scratch.

Wan's RoPE is relative: attention sees how far apart two tokens are, never where either one is, and
the action expert pools tokens as a set. A pretrained Wan infers place from content; a backbone
trained from scratch on a few dozen scenes has no such cue, and cannot tell where the cube is (the
package's policy, measured, ignored the cube's place). ``DiTConfig.absolute_positions`` adds this
fixed table to the patch embeddings. Positions are fractions of the frame (token centres), so a 2x
pooled frame of the video loss gets the positions of the same places; there are no parameters, so
released checkpoints and their conversion are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .grid_tables import Grid

OCTAVES = 5.0  # frequencies from pi (half a wave across the frame) to pi * 2**OCTAVES


def grid_position_embedding(grid: Grid, dim: int, device: torch.device) -> Tensor:
    """``[cos | sin]`` of row, then of column, per token in (f, h, w) raster order: [f*h*w, dim] float32.

    ``dim`` is a multiple of 4 (``DiTConfig`` checks it).
    """
    frames, height, width = grid
    freqs = torch.pi * 2.0 ** torch.linspace(0.0, OCTAVES, dim // 4, dtype=torch.float64, device=device)

    def axis(length: int) -> Tensor:
        centres = (torch.arange(length, dtype=torch.float64, device=device) + 0.5) / length
        angles = centres[:, None] * freqs
        return torch.cat((angles.cos(), angles.sin()), dim=-1)  # [length, dim // 2]

    rows = axis(height)[:, None, :].expand(height, width, -1)
    cols = axis(width)[None, :, :].expand(height, width, -1)
    table = torch.cat((rows, cols), dim=-1).float()  # [h, w, dim]
    return table[None].expand(frames, -1, -1, -1).reshape(frames * height * width, dim)
