"""Low-rank adaptation (LoRA) of frozen nn.Linear layers, laid out like the Light-WAM release.

The release stores the base weight under its original Wan key (``self_attn.q.weight``) and the
low-rank pair as a *sibling* module (``self_attn.lora_q.{down,up}_proj.weight``). To produce exactly
those state_dict keys, a ``LoRA`` keeps an unregistered reference to the linear it adapts: the base
stays registered where Wan put it, and the LoRA only owns ``down_proj`` / ``up_proj``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .config import LoRAConfig


class LoRA(nn.Module):
    """``base(x) + scale * up(down(x))``; ``merge()`` folds the update into ``base.weight``."""

    base: nn.Linear  # set with object.__setattr__ in __init__, outside the module registry

    def __init__(self, base: nn.Linear, cfg: LoRAConfig) -> None:
        super().__init__()
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.down_proj = nn.Linear(base.in_features, cfg.rank, bias=False, **factory)
        self.up_proj = nn.Linear(cfg.rank, base.out_features, bias=False, **factory)
        nn.init.kaiming_uniform_(self.down_proj.weight, a=math.sqrt(5))
        nn.init.zeros_(self.up_proj.weight)  # starts as the identity edit: output == base output
        self.scale = cfg.scale
        self.merged = False
        # Plain attribute (bypasses nn.Module registration) so the base keeps its original key.
        object.__setattr__(self, "base", base)

    def forward(self, x: Tensor) -> Tensor:
        out = self.base(x)
        if self.merged:
            return out
        return out + self.up_proj(self.down_proj(x)) * self.scale

    def delta_weight(self) -> Tensor:
        """The dense update ``scale * up @ down`` in float32, shaped like ``base.weight``."""
        return (self.up_proj.weight.float() @ self.down_proj.weight.float()) * self.scale

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (one matmul per layer at inference). Idempotent."""
        if not self.merged:
            self.base.weight.add_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge()`` (exact up to the base weight's rounding). Idempotent."""
        if self.merged:
            self.base.weight.sub_(self.delta_weight().to(self.base.weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.down_proj.out_features}, scale={self.scale}, merged={self.merged}"


def maybe_lora(base: nn.Linear, cfg: LoRAConfig | None) -> LoRA | None:
    """A LoRA for ``base`` when LoRA is configured, else None (plain Wan)."""
    return None if cfg is None else LoRA(base, cfg)


def project(base: nn.Linear, lora: LoRA | None, x: Tensor) -> Tensor:
    """Apply ``base`` through its LoRA when one is attached."""
    return base(x) if lora is None else lora(x)


def set_lora_merged(module: nn.Module, merged: bool) -> int:
    """Merge (or unmerge) every LoRA inside ``module``; returns how many were visited."""
    loras = [m for m in module.modules() if isinstance(m, LoRA)]
    for lora in loras:
        if merged:
            lora.merge()
        else:
            lora.unmerge()
    return len(loras)
