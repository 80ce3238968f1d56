"""Light-WAM's StateFusionActionExpert: tapped DiT token states -> normalised action chunk.

Each tapped layer is pooled to one vector by learned queries, compressed, and the compressed vectors
are fused into a single state; every chunk step is then decoded from that state plus an embedding of
its step index, so steps never see each other. Parameter names are the released checkpoint's own
(``state_fusion_action_expert`` section), so release and package share one vocabulary and a
converted checkpoint needs no rename table. Every GELU is the tanh approximation, as released.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import Tensor, nn

from .config import ExpertConfig
from .dit import sinusoidal_embedding

# The released poolers are keyed by the stream they read, the adapter-modified one:
# ``layer_poolers.{i}.adapted.*``.
STREAM_KEY = "adapted"


class LearnedQueryPooling(nn.Module):
    """[B, L, dim] tokens -> [B, dim]: learned queries attend over the normed tokens, and the per-query
    results are merged by softmax weights. Zero-initialised logits start as a plain average."""

    def __init__(self, dim: int, num_queries: int, num_heads: int) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.empty(num_queries, dim))
        nn.init.normal_(self.query_tokens, std=0.02)
        self.token_norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.query_merge_logits = nn.Parameter(torch.zeros(num_queries))
        self.output_norm = nn.LayerNorm(dim)

    def merge_weights(self) -> Tensor:
        """Softmax over the query logits, [num_queries]."""
        return self.query_merge_logits.softmax(dim=0)

    def forward(self, tokens: Tensor) -> Tensor:
        kv = self.token_norm(tokens)
        queries = self.query_tokens.to(kv.dtype).expand(tokens.shape[0], -1, -1)
        per_query, _ = self.attn(queries, kv, kv, need_weights=False)
        merged = torch.einsum("bqd,q->bd", per_query, self.merge_weights().to(per_query.dtype))
        return self.output_norm(merged)


class NormedMLP(nn.Module):
    """LayerNorm -> Linear -> GELU(tanh) -> Linear (the per-layer compressor)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(self.norm(x))))


class ResidualMLPBlock(NormedMLP):
    """Pre-LN residual MLP, ``x + mlp(norm(x))``, at constant width (the fused trunk)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + super().forward(x)


class StateFusionActionExpert(nn.Module):
    """``forward(tapped)``: ``num_taps`` tensors [B, L, dim] -> normalised actions
    [B, horizon, action_dim]."""

    def __init__(self, cfg: ExpertConfig, dim: int, action_dim: int, horizon: int, num_taps: int = 3) -> None:
        super().__init__()
        for name, value in (
            ("dim", dim),
            ("action_dim", action_dim),
            ("horizon", horizon),
            ("num_taps", num_taps),
        ):
            if value <= 0:
                raise ValueError(f"StateFusionActionExpert: {name} must be positive, got {value}")
        if dim % cfg.num_heads:
            raise ValueError(
                f"StateFusionActionExpert: dim={dim} is not divisible by num_heads={cfg.num_heads}"
            )
        self.dim, self.action_dim, self.horizon, self.num_taps = dim, action_dim, horizon, num_taps
        fused = cfg.fused_dim

        self.layer_poolers = nn.ModuleList(
            nn.ModuleDict({STREAM_KEY: LearnedQueryPooling(dim, cfg.num_queries, cfg.num_heads)})
            for _ in range(num_taps)
        )
        self.layer_compressors = nn.ModuleList(
            NormedMLP(dim, cfg.compress_dim, cfg.compress_dim) for _ in range(num_taps)
        )
        self.fused_norm = nn.LayerNorm(num_taps * cfg.compress_dim)
        self.fused_proj = nn.Linear(num_taps * cfg.compress_dim, fused)
        self.trunk = nn.Sequential(ResidualMLPBlock(fused))
        self.step_pos_proj = nn.Sequential(
            nn.LayerNorm(cfg.step_embed_dim),
            nn.Linear(cfg.step_embed_dim, fused),
            nn.GELU(approximate="tanh"),
            nn.Linear(fused, fused),
        )
        self.output_norm = nn.LayerNorm(fused)
        self.output = nn.Sequential(
            nn.Linear(fused, fused), nn.GELU(approximate="tanh"), nn.Linear(fused, action_dim)
        )
        # Input-independent, so computed once; not persistent because the checkpoint does not hold it.
        self.register_buffer(
            "step_embedding",
            sinusoidal_embedding(cfg.step_embed_dim, torch.arange(horizon)),
            persistent=False,
        )

    def _check_tapped(self, tapped: Sequence[Tensor]) -> None:
        if not isinstance(tapped, (list, tuple)) or len(tapped) != self.num_taps:
            got = len(tapped) if isinstance(tapped, (list, tuple)) else type(tapped).__name__
            raise ValueError(
                f"expected a list of {self.num_taps} tapped tensors [B, L, {self.dim}], got {got}"
            )
        for i, x in enumerate(tapped):
            if x.ndim != 3 or x.shape[-1] != self.dim or x.shape[1] == 0:
                raise ValueError(f"tapped[{i}] must be [B, L>0, {self.dim}], got {tuple(x.shape)}")
        batches = [x.shape[0] for x in tapped]
        if len(set(batches)) != 1:
            raise ValueError(f"tapped tensors disagree on batch size: {batches}")

    def fuse(self, tapped: Sequence[Tensor]) -> Tensor:
        """Tapped token states -> one fused state per sample, [B, fused_dim]."""
        self._check_tapped(tapped)
        dtype = self.fused_proj.weight.dtype
        compressed = [
            compressor(cast(nn.ModuleDict, pooler)[STREAM_KEY](x.to(dtype)))  # ModuleList yields Module
            for x, pooler, compressor in zip(tapped, self.layer_poolers, self.layer_compressors, strict=True)
        ]
        return self.trunk(self.fused_proj(self.fused_norm(torch.cat(compressed, dim=-1))))

    def decode(self, state: Tensor) -> Tensor:
        """Fused state [B, fused_dim] -> actions [B, horizon, action_dim], each step on its own."""
        steps = self.step_pos_proj(self.step_embedding.to(state.dtype))  # [horizon, fused_dim]
        return self.output(self.output_norm(state[:, None, :] + steps))

    def forward(self, tapped: Sequence[Tensor]) -> Tensor:
        return self.decode(self.fuse(tapped))
