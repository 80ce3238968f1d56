"""Options against shortcuts, all off by default (the paper's recipe uses none of them).

- state dropout: the whole (normalised) state input of a sample is zeroed, so the policy cannot
  read the answer off the joints alone;
- state noise: Gaussian noise on the normalised state, so states off the demonstrations are seen;
- image shift: the clip's canvases move by up to N pixels (edges repeated), the same for all of
  a clip's frames; colour jitter: a brightness and a contrast factor per sample.
Each sample draws from its own generator (see ``objective.sample_generators``).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from lightwam_ros.train.config import AugmentConfig
from lightwam_ros.train.samples import Batch


def changes_images(cfg: AugmentConfig) -> bool:
    return cfg.image_shift > 0 or cfg.color_jitter > 0


def augment(batch: Batch, cfg: AugmentConfig, generators: list[torch.Generator]) -> Batch:
    proprio = batch.proprio.clone()
    clips = batch.clips.clone() if batch.clips is not None and changes_images(cfg) else batch.clips
    for i, g in enumerate(generators):
        if cfg.state_noise > 0:
            proprio[i] += cfg.state_noise * torch.randn(proprio.shape[1], generator=g)
        if cfg.state_dropout > 0 and torch.rand((), generator=g) < cfg.state_dropout:
            proprio[i] = 0
        if clips is not None and cfg.image_shift > 0:
            dy, dx = torch.randint(-cfg.image_shift, cfg.image_shift + 1, (2,), generator=g).tolist()
            clips[i] = _shift(clips[i], dy, dx)
        if clips is not None and cfg.color_jitter > 0:
            bright, contrast = 1 + cfg.color_jitter * (2 * torch.rand(2, generator=g) - 1)
            mean = clips[i].mean()
            clips[i] = ((clips[i] - mean) * contrast + mean + (bright - 1)).clamp(-1, 1)
    return dataclasses.replace(batch, proprio=proprio, clips=clips)


def _shift(clip: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """[3, F, H, W] moved by (dy, dx) pixels with the edge pixels repeated."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return clip
    frames = clip.transpose(0, 1)  # [F, 3, H, W]
    padded = F.pad(frames, (pad, pad, pad, pad), mode="replicate")
    h, w = frames.shape[-2:]
    top, left = pad - dy, pad - dx
    return padded[..., top : top + h, left : left + w].transpose(0, 1)
