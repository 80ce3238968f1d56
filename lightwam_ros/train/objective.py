"""The paper's objective on one batch: action MSE + flow-matching future-video loss.

Two backbone passes per sample (``model.training`` holds the pieces):
- action: the clean first latent frame at t = 0 -> the expert's chunk, MSE on the normalised
  actions with weight 1 on the first N steps, padded steps masked;
- video (weight > 0 only): the clip's latents pooled 2x, frame 0 kept clean and the future frames
  noised to sigma (u ~ U(0, 1), shift 5), the DiT predicts the velocity eps - x0 with frame 0's
  tokens attending only to frame 0; MSE on the future frames, padded frames masked, each sample
  weighted by a Gaussian in t.
The encoder (when it trains) learns from the action pass only: the video branch reads detached
latents, so the encoder cannot make the future trivially predictable by shrinking its latents.
That no-graph pass over the whole clip is most of a step's cost on a CPU; ``target_dtype``
(bfloat16 where the CPU computes it natively) runs it under autocast: its latents differ from
float32's by under 0.01 (standardised units), far below the flow-matching noise they are mixed with.

Noise is drawn per sample from a generator seeded by (seed, step, position in the global batch),
so a sample gets the same noise on one process or on several, and after a resume.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lightwam_ros.model.dit import first_frame_causal_mask
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.training import (
    action_loss,
    downsample_latents,
    first_n_step_weights,
    flow_matching_target,
    gaussian_timestep_weight,
    noisy_latents,
    per_token_timesteps,
    sample_sigmas,
    timesteps_from_sigmas,
    video_loss,
    with_clean_first_frame,
)
from lightwam_ros.train.config import ObjectiveConfig
from lightwam_ros.train.samples import Batch


@dataclass(frozen=True)
class LossParts:
    total: Tensor
    action: Tensor
    video: Tensor


def sample_generators(seed: int, step: int, slots: list[int]) -> list[torch.Generator]:
    """One CPU generator per sample, seeded by (seed, step, slot in the global batch)."""
    out = []
    for slot in slots:
        generator = torch.Generator()
        generator.manual_seed((seed * 1_000_003 + step) * 65_537 + slot)
        out.append(generator)
    return out


class Objective(nn.Module):
    """``forward(batch, latents, generators)`` -> LossParts; an nn.Module so DDP can wrap it."""

    step_weights: Tensor  # a buffer, registered in __init__

    def __init__(
        self,
        model: LightWAM,
        cfg: ObjectiveConfig,
        supervised_steps: int,
        target_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.target_dtype = target_dtype
        self.register_buffer(
            "step_weights", first_n_step_weights(model.cfg.horizon, supervised_steps), persistent=False
        )

    @property
    def uses_video(self) -> bool:
        return self.cfg.video_weight > 0

    def encode(self, batch: Batch) -> Tensor:
        """Normalised latents [B, 16, F', h, w] of the batch's clips (frame 0 only without video)."""
        clips = batch.loaded_clips() if self.uses_video else batch.loaded_clips()[:, :, :1]
        return self.model.vae.encode(clips)

    def forward(self, batch: Batch, latents: Tensor | None, generators: list[torch.Generator]) -> LossParts:
        model = self.model
        first = None
        if latents is None and self.uses_video and _trains(model.vae):
            # Only frame 0 needs the encoder's gradient (the video branch reads detached
            # latents, and the causal encoder's first latent frame sees frame 0 alone): the
            # clip is encoded without a graph, frame 0 again with one, as a 2-D pass.
            with torch.no_grad(), _autocast(batch.proprio.device, self.target_dtype):
                latents = self.encode(batch)
            first = model.vae.encode(batch.loaded_clips()[:, :, :1])
        elif latents is None:
            latents = self.encode(batch)
        first = latents[:, :, :1] if first is None else first
        context = model.build_context(batch.instruction, batch.proprio)
        zero = latents.new_zeros((), dtype=torch.float32)
        action = zero
        if self.cfg.action_weight > 0:
            t = torch.zeros(latents.shape[0], device=latents.device)
            tapped = model.dit.tapped_states(first, t, context, taps=model.cfg.adapter.layers)
            action = action_loss(model.expert(tapped), batch.actions, self.step_weights, batch.pad)
        video = zero
        if self.uses_video:
            video = self._video_loss(latents.detach(), context, batch.frame_mask, generators)
        total = self.cfg.action_weight * action + self.cfg.video_weight * video
        return LossParts(total=total, action=action.detach(), video=video.detach())

    def _video_loss(
        self, latents: Tensor, context: Tensor, frame_mask: Tensor, generators: list[torch.Generator]
    ) -> Tensor:
        x0 = downsample_latents(latents.float())
        _, _, frames = x0.shape[:3]
        if frames < 2:
            raise ValueError("the video loss needs a clip of at least 2 latent frames")
        sigma = torch.cat([sample_sigmas(1, g, self.cfg.shift) for g in generators]).to(x0.device)
        eps = torch.stack([torch.randn(x0.shape[1:], generator=g) for g in generators]).to(x0.device)
        noisy = noisy_latents(x0, eps, with_clean_first_frame(sigma, frames))
        t = timesteps_from_sigmas(sigma)
        _, ph, pw = self.model.cfg.dit.patch_size
        frame_tokens = (x0.shape[3] // ph) * (x0.shape[4] // pw)
        mask = first_frame_causal_mask(frame_tokens, frames, device=x0.device)
        pred = self.model.dit(noisy, per_token_timesteps(t, frame_tokens, frames), context, mask)
        weights = gaussian_timestep_weight(
            t, self.cfg.timestep_centre, self.cfg.timestep_width, self.cfg.shift
        )
        return video_loss(pred, flow_matching_target(x0, eps), weights, frame_mask.to(x0.device))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


def checkpoint_blocks(model: LightWAM) -> None:
    """Recompute each DiT block's activations in the backward pass (GPU memory for compute).

    Patches the block instances' ``forward``; parameter names and the state dict are unchanged.
    """
    from torch.utils.checkpoint import checkpoint

    for block in model.dit.blocks:
        plain: Callable = type(block).forward

        def forward(*args, _block=block, _plain=plain, **kwargs):
            return checkpoint(_plain, _block, *args, use_reentrant=False, **kwargs)

        block.forward = forward
