"""The model a run starts from and the parameters it trains.

- ``init`` empty: a seeded random model of the preset for the embodiment's dimensions (with
  ``absolute_positions``: the backbone's tokens get an absolute position table); a path:
  a package checkpoint (a converted release for ``lora``), checked against the embodiment.
- ``lora``: the paper's set (LoRA, adapters, video head, expert, proprio encoder) on a frozen
  backbone and VAE; ``full``: every parameter, the VAE encoder included.
- ``latent_norm: data``: a frozen random encoder's latents are nearly constant after Wan's
  normalisation, so they are re-standardised per channel with statistics of this data; the
  statistics go into the model's config (and so into the exported checkpoint).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from lightwam_ros.model.checkpoint import load_checkpoint
from lightwam_ros.model.config import make_config
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.train.config import ModelConfig


def build_model(cfg: ModelConfig, spec: EmbodimentSpec, seed: int) -> LightWAM:
    """The starting model, float32 on the CPU, in train mode."""
    if cfg.init:
        model = load_checkpoint(cfg.init, expect_embodiment=spec.name).model
        dims = (model.cfg.proprio_dim, model.cfg.action_dim, model.cfg.horizon)
        if dims != (spec.state_dim, spec.action_dim, spec.chunk.length):
            raise ValueError(f"{cfg.init}: model (state, action, horizon) {dims} does not fit {spec.name}")
        model = model.float()
    else:
        config = make_config(
            cfg.preset, action_dim=spec.action_dim, proprio_dim=spec.state_dim, horizon=spec.chunk.length
        )
        dit = dataclasses.replace(config.dit, absolute_positions=cfg.absolute_positions)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LightWAM(dataclasses.replace(config, dit=dit))
    return model.train()


def select_trainable(model: LightWAM, trainable: str) -> list[nn.Parameter]:
    """Set ``requires_grad`` for the trainable set and return its parameters."""
    if trainable == "lora":
        model.freeze_for_training()
    else:
        model.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def set_latent_statistics(model: LightWAM, mean: Iterable[float], std: Iterable[float]) -> None:
    """Replace the VAE's latent normalisation (config and buffers) by ``mean`` / ``std``."""
    vae_cfg = dataclasses.replace(
        model.cfg.vae, latents_mean=tuple(float(m) for m in mean), latents_std=tuple(float(s) for s in std)
    )
    model.cfg = dataclasses.replace(model.cfg, vae=vae_cfg)
    model.vae.cfg = vae_cfg
    shape = model.vae.latents_mean.shape
    model.vae.latents_mean.copy_(torch.tensor(vae_cfg.latents_mean).view(shape))
    model.vae.latents_std.copy_(torch.tensor(vae_cfg.latents_std).view(shape))


@torch.no_grad()
def standardise_latents(model: LightWAM, clips: Iterable[Tensor]) -> None:
    """Per-channel statistics of the encoder's raw latents over ``clips`` become its normalisation."""
    z = model.cfg.vae.z_dim
    set_latent_statistics(model, [0.0] * z, [1.0] * z)
    raw = torch.cat([model.vae.encode(clip).float().transpose(0, 1).reshape(z, -1) for clip in clips], dim=1)
    set_latent_statistics(model, raw.mean(dim=1).tolist(), raw.std(dim=1).clamp_min(1e-6).tolist())
