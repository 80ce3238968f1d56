"""Light-WAM: Wan2.1 VAE + Wan2.1 DiT (with LoRA and adapters) + state-fusion action expert.

Action inference is one DiT pass at t = 0 over the encoded canvas; it stops after the last tapped
block because later blocks and the video head cannot influence the action chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import LightWAMConfig
from .dit import WanDiT
from .expert import StateFusionActionExpert
from .lora import LoRA
from .vae import WanVAEEncoder

TRAINABLE_GROUPS = ("lora", "adapters", "video_head", "expert", "proprio")


class LightWAM(nn.Module):
    """The full model; submodule names match the released checkpoint's sections."""

    def __init__(self, cfg: LightWAMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.dit = WanDiT(cfg.dit, cfg.lora, cfg.adapter)
        self.vae = WanVAEEncoder(cfg.vae)
        self.expert = StateFusionActionExpert(
            cfg.expert,
            dim=cfg.dit.dim,
            action_dim=cfg.action_dim,
            horizon=cfg.horizon,
            num_taps=len(cfg.adapter.layers),
        )
        self.proprio_encoder = nn.Linear(cfg.proprio_dim, cfg.dit.text_dim)

    # ------------------------------------------------------------------------------ inference
    def build_context(self, instruction: Tensor, proprio: Tensor) -> Tensor:
        """Instruction embedding [B, text_len, text_dim] + one proprio token -> [B, text_len+1, text_dim]."""
        dit = self.cfg.dit
        if instruction.ndim != 3 or instruction.shape[1:] != (dit.text_len, dit.text_dim):
            raise ValueError(
                f"instruction must be [B, {dit.text_len}, {dit.text_dim}], got {tuple(instruction.shape)}"
            )
        if proprio.shape != (instruction.shape[0], self.cfg.proprio_dim):
            raise ValueError(
                f"proprio must be [{instruction.shape[0]}, {self.cfg.proprio_dim}], "
                f"got {tuple(proprio.shape)}"
            )
        token = self.proprio_encoder(proprio.to(self.proprio_encoder.weight.dtype))
        return torch.cat((instruction.to(token.dtype), token[:, None]), dim=1)

    def encode_canvas(self, canvas: Tensor) -> Tensor:
        """RGB canvas [B, 3, H, W] in [-1, 1] -> one normalised latent frame [B, 16, 1, H/8, W/8]."""
        if canvas.ndim != 4:
            raise ValueError(f"canvas must be [B, 3, H, W], got {tuple(canvas.shape)}")
        return self.vae.encode(canvas[:, :, None])

    def infer_action_from_latents(self, latents: Tensor, instruction: Tensor, proprio: Tensor) -> Tensor:
        """Normalised action chunk [B, horizon, action_dim] from one encoded frame [B, 16, 1, h, w]."""
        context = self.build_context(instruction, proprio)
        t = torch.zeros(latents.shape[0], device=latents.device)
        return self.expert(self.dit.tapped_states(latents, t, context, taps=self.cfg.adapter.layers))

    def infer_action(self, canvas: Tensor, instruction: Tensor, proprio: Tensor) -> Tensor:
        """Normalised action chunk [B, horizon, action_dim] from a canvas [B, 3, H, W] in [-1, 1]."""
        return self.infer_action_from_latents(self.encode_canvas(canvas), instruction, proprio)

    # ------------------------------------------------------------------------------- training
    def _trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        lora = [p for m in self.dit.modules() if isinstance(m, LoRA) for p in m.parameters()]
        return {
            "lora": lora,
            "adapters": list(self.dit.wam_adapters.parameters()),
            "video_head": list(self.dit.head.parameters()),
            "expert": list(self.expert.parameters()),
            "proprio": list(self.proprio_encoder.parameters()),
        }

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters Light-WAM trains (LoRA, adapters, video head, expert, proprio encoder)."""
        return [p for group in self._trainable_groups().values() for p in group]

    def parameter_counts(self) -> dict[str, int]:
        """Element counts per group, plus ``trainable``, ``frozen_dit`` and ``vae``."""
        groups = self._trainable_groups()
        counts = {name: sum(p.numel() for p in params) for name, params in groups.items()}
        trainable_ids = {id(p) for params in groups.values() for p in params}
        counts["trainable"] = sum(counts[name] for name in TRAINABLE_GROUPS)
        counts["frozen_dit"] = sum(p.numel() for p in self.dit.parameters() if id(p) not in trainable_ids)
        counts["vae"] = sum(p.numel() for p in self.vae.parameters())
        return counts

    def freeze_for_training(self) -> None:
        """Freeze the Wan backbone and VAE; leave only the Light-WAM additions trainable."""
        if any(m.merged for m in self.dit.modules() if isinstance(m, LoRA)):
            raise ValueError("LoRA weights are merged into the backbone; unmerge before training")
        self.requires_grad_(False)
        for param in self.trainable_parameters():
            param.requires_grad_(True)
