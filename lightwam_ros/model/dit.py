"""Wan2.1 diffusion transformer (DiT) with Light-WAM's LoRA and residual adapters.

Module and parameter names mirror the original Wan2.1 checkpoint (``blocks.N.self_attn.q.weight``,
``head.modulation`` ...) so its weights load with no renaming; LoRA and adapter keys follow the
Light-WAM release (see lora.py / adapters.py). Parameter-free norms (Wan's ``norm1``/``norm2`` and
the head norm) are functional because they contribute no keys.

Numerics follow Wan: norms, adaLN modulation and gated residual updates run in float32 and are cast
back to the stream's dtype; the timestep embedding is built in float64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .adapters import build_adapters
from .config import AdapterConfig, DiTConfig, LoRAConfig
from .grid_positions import grid_position_embedding
from .grid_tables import GridTables
from .lora import maybe_lora, project
from .rope import apply_rope, rope_cos_sin

NUM_MODULATIONS = 6  # shift/scale/gate for self-attention, then for the FFN


def sinusoidal_embedding(dim: int, positions: Tensor) -> Tensor:
    """``[cos | sin]`` embedding (base 10000) of ``positions`` [...] -> [..., dim], float32."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=positions.device) / half)
    angles = positions.to(torch.float64)[..., None] * freqs
    return torch.cat((angles.cos(), angles.sin()), dim=-1).float()


def first_frame_causal_mask(
    frame_tokens: int, num_frames: int, device: torch.device | str | None = None
) -> Tensor:
    """Self-attention mask (True = may attend) [L, L] with L = frame_tokens * num_frames.

    Frame-0 tokens (the clean conditioning frame) see only frame 0, so the noisy future frames
    cannot leak into the features the action expert reads; later frames see everything.
    """
    if frame_tokens <= 0 or num_frames <= 0:
        raise ValueError(f"frame_tokens and num_frames must be positive, got {frame_tokens}, {num_frames}")
    frame = torch.arange(frame_tokens * num_frames, device=device) // frame_tokens
    return (frame[:, None] != 0) | (frame[None, :] == 0)


class RMSNorm(nn.Module):
    """RMS norm over the last dim, computed in float32, with a learned gain (Wan's q/k norm)."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm evaluated in float32 whatever the weight / input dtype (Wan's ``norm3``)."""

    def forward(self, x: Tensor) -> Tensor:
        weight = None if self.weight is None else self.weight.float()
        bias = None if self.bias is None else self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor, eps: float) -> Tensor:
    """adaLN: affine-free LayerNorm of ``x`` then ``* (1 + scale) + shift`` (float32 maths)."""
    normed = F.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    return (normed * (1 + scale) + shift).to(x.dtype)


def gated_residual(x: Tensor, update: Tensor, gate: Tensor) -> Tensor:
    return (x.float() + update.float() * gate).to(x.dtype)


class _Attention(nn.Module):
    """q/k/v/o projections with RMS-normed q and k (across all heads) and optional LoRA."""

    def __init__(self, dim: int, num_heads: int, eps: float, lora: LoRAConfig | None) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = RMSNorm(dim, eps)
        self.norm_k = RMSNorm(dim, eps)
        self.lora_q = maybe_lora(self.q, lora)
        self.lora_k = maybe_lora(self.k, lora)
        self.lora_v = maybe_lora(self.v, lora)
        self.lora_o = maybe_lora(self.o, lora)

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, -1))  # [B, L, heads, head_dim]

    def _project_qkv(self, x: Tensor, source: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q = self._heads(self.norm_q(project(self.q, self.lora_q, x)))
        k = self._heads(self.norm_k(project(self.k, self.lora_k, source)))
        v = self._heads(project(self.v, self.lora_v, source))
        return q, k, v

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
        )
        return project(self.o, self.lora_o, out.transpose(1, 2).flatten(2))


class SelfAttention(_Attention):
    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None) -> Tensor:
        q, k, v = self._project_qkv(x, x)
        return self._attend(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v, mask)


class CrossAttention(_Attention):
    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        return self._attend(*self._project_qkv(x, context), mask=None)


class WanBlock(nn.Module):
    """adaLN self-attention -> cross-attention to the text context -> adaLN FFN."""

    def __init__(self, cfg: DiTConfig, lora: LoRAConfig | None) -> None:
        super().__init__()
        self.eps = cfg.eps
        self.modulation = nn.Parameter(torch.randn(1, NUM_MODULATIONS, cfg.dim) / cfg.dim**0.5)
        self.self_attn = SelfAttention(cfg.dim, cfg.num_heads, cfg.eps, lora)
        self.norm3 = FP32LayerNorm(cfg.dim, eps=cfg.eps, elementwise_affine=True)
        self.cross_attn = CrossAttention(cfg.dim, cfg.num_heads, cfg.eps, lora)
        ffn_in, ffn_out = nn.Linear(cfg.dim, cfg.ffn_dim), nn.Linear(cfg.ffn_dim, cfg.dim)
        self.ffn = nn.Sequential(ffn_in, nn.GELU(approximate="tanh"), ffn_out)
        self.ffn_lora_in = maybe_lora(ffn_in, lora)
        self.ffn_lora_out = maybe_lora(ffn_out, lora)

    def forward(
        self, x: Tensor, e0: Tensor, context: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | None
    ) -> Tensor:
        """``e0`` [B, 1 or L, 6, dim] float32: per-sample or per-token modulation."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.unsqueeze(1) + e0).unbind(2)
        x = gated_residual(x, self.self_attn(modulate(x, shift1, scale1, self.eps), cos, sin, mask), gate1)
        x = x + self.cross_attn(self.norm3(x), context)
        ffn_in, ffn_out = cast(nn.Linear, self.ffn[0]), cast(nn.Linear, self.ffn[2])  # Sequential: Module
        hidden = self.ffn[1](project(ffn_in, self.ffn_lora_in, modulate(x, shift2, scale2, self.eps)))
        return gated_residual(x, project(ffn_out, self.ffn_lora_out, hidden), gate2)


class Head(nn.Module):
    """Video output head: adaLN (shift/scale from the time embedding) + Linear to patch pixels."""

    def __init__(self, cfg: DiTConfig) -> None:
        super().__init__()
        self.eps = cfg.eps
        self.head = nn.Linear(cfg.dim, math.prod(cfg.patch_size) * cfg.out_channels)
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim**0.5)

    def forward(self, x: Tensor, e: Tensor) -> Tensor:
        shift, scale = (self.modulation.unsqueeze(1) + e.unsqueeze(2)).unbind(2)
        return self.head(modulate(x, shift, scale, self.eps))


class _Prepared(NamedTuple):
    tokens: Tensor  # [B, L, dim]
    grid: tuple[int, int, int]
    e: Tensor  # [B, 1 or L, dim] time embedding (head modulation)
    e0: Tensor  # [B, 1 or L, 6, dim] block modulation
    context: Tensor  # [B, Lc, dim]
    cos: Tensor
    sin: Tensor
    mask: Tensor | None  # broadcastable to [B, heads, L, L]


class WanDiT(nn.Module):
    """Wan2.1 text-to-video DiT; optional LoRA on every block and residual adapters after taps."""

    def __init__(
        self, cfg: DiTConfig, lora: LoRAConfig | None = None, adapters: AdapterConfig | None = None
    ) -> None:
        super().__init__()
        if adapters is not None and adapters.layers[-1] >= cfg.num_layers:
            raise ValueError(f"adapter layers {adapters.layers} exceed the {cfg.num_layers} blocks")
        self.cfg = cfg
        self.patch_embedding = nn.Conv3d(
            cfg.in_channels, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size
        )
        self.text_embedding = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.dim, cfg.dim)
        )
        self.time_embedding = nn.Sequential(
            nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim)
        )
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, NUM_MODULATIONS * cfg.dim))
        self.blocks = nn.ModuleList(WanBlock(cfg, lora) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        self.adapter_layers: tuple[int, ...] = () if adapters is None else tuple(adapters.layers)
        if adapters is not None:
            self.wam_adapters = build_adapters(cfg.dim, adapters, cfg.eps)
        head_dim, dim = cfg.head_dim, cfg.dim
        self.rope = GridTables(lambda grid, device: rope_cos_sin(grid, head_dim, device))
        self.positions = GridTables(lambda grid, device: grid_position_embedding(grid, dim, device))

    # ----------------------------------------------------------------------------------- public
    def forward(
        self, latents: Tensor, t: Tensor, context: Tensor, self_attn_mask: Tensor | None = None
    ) -> Tensor:
        """Velocity prediction [B, out_channels, F, H, W] for normalised ``latents`` [B, C, F, H, W].

        ``t``: [B] (one timestep per sample) or [B, L] (one per video token, L = F*H*W/patch);
        ``context``: [B, Lc, text_dim]; ``self_attn_mask``: bool [L, L] or [B, L, L], True = attend.
        """
        p = self._prepare(latents, t, context, self_attn_mask)
        x, _ = self._run_blocks(p, last_block=self.cfg.num_layers - 1, taps=())
        return self._unpatchify(self.head(x, p.e), p.grid)

    def tapped_states(
        self,
        latents: Tensor,
        t: Tensor,
        context: Tensor,
        taps: Sequence[int] | None = None,
        self_attn_mask: Tensor | None = None,
    ) -> list[Tensor]:
        """Token states [B, L, dim] after each block in ``taps`` (after its adapter, if any).

        Stops after the last tapped block: later blocks and the head cannot change these states.
        ``taps`` defaults to the adapter layers.
        """
        taps = self._check_taps(self.adapter_layers if taps is None else taps)
        p = self._prepare(latents, t, context, self_attn_mask)
        _, tapped = self._run_blocks(p, last_block=taps[-1], taps=taps)
        return tapped

    # --------------------------------------------------------------------------------- internals
    def _check_taps(self, taps: Sequence[int]) -> tuple[int, ...]:
        taps = tuple(int(i) for i in taps)
        if not taps or list(taps) != sorted(set(taps)) or taps[0] < 0 or taps[-1] >= self.cfg.num_layers:
            raise ValueError(
                f"taps must be non-empty, unique, ascending block indices in "
                f"[0, {self.cfg.num_layers - 1}], got {taps}"
            )
        return taps

    def _prepare(self, latents: Tensor, t: Tensor, context: Tensor, mask: Tensor | None) -> _Prepared:
        cfg = self.cfg
        if latents.ndim != 5 or latents.shape[1] != cfg.in_channels:
            raise ValueError(f"latents must be [B, {cfg.in_channels}, F, H, W], got {tuple(latents.shape)}")
        if any(n % p for n, p in zip(latents.shape[2:], cfg.patch_size, strict=True)):
            raise ValueError(
                f"latent grid {tuple(latents.shape[2:])} not divisible by patch {cfg.patch_size}"
            )
        batch = latents.shape[0]
        if context.ndim != 3 or context.shape[0] != batch or context.shape[2] != cfg.text_dim:
            raise ValueError(f"context must be [{batch}, Lc, {cfg.text_dim}], got {tuple(context.shape)}")
        frames, height, width = (n // p for n, p in zip(latents.shape[2:], cfg.patch_size, strict=True))
        grid = (frames, height, width)
        num_tokens = math.prod(grid)
        if t.shape not in ((batch,), (batch, num_tokens)):
            raise ValueError(
                f"t must be [{batch}] or [{batch}, {num_tokens}] (one per video token), got {tuple(t.shape)}"
            )
        mask = self._check_mask(mask, batch, num_tokens)

        dtype = self.patch_embedding.weight.dtype
        tokens = self.patch_embedding(latents.to(dtype)).flatten(2).transpose(1, 2).contiguous()
        if cfg.absolute_positions:
            tokens = tokens + self.positions(grid, tokens.device).to(dtype)
        e = self.time_embedding(sinusoidal_embedding(cfg.freq_dim, t.reshape(batch, -1)).to(dtype)).float()
        e0 = self.time_projection(e.to(dtype)).float().unflatten(-1, (NUM_MODULATIONS, cfg.dim))
        cos, sin = self.rope(grid, latents.device)
        return _Prepared(tokens, grid, e, e0, self.text_embedding(context.to(dtype)), cos, sin, mask)

    @staticmethod
    def _check_mask(mask: Tensor | None, batch: int, num_tokens: int) -> Tensor | None:
        if mask is None:
            return None
        square = (num_tokens, num_tokens)
        if mask.dtype != torch.bool or mask.shape not in (square, (batch, *square)):
            raise ValueError(
                f"self_attn_mask must be bool [{num_tokens}, {num_tokens}] or "
                f"[{batch}, {num_tokens}, {num_tokens}], got {mask.dtype} {tuple(mask.shape)}"
            )
        return mask if mask.ndim == 2 else mask[:, None]  # broadcast over heads

    def _run_blocks(
        self, p: _Prepared, last_block: int, taps: tuple[int, ...]
    ) -> tuple[Tensor, list[Tensor]]:
        x, tapped = p.tokens, []
        for index in range(last_block + 1):
            x = self.blocks[index](x, p.e0, p.context, p.cos, p.sin, p.mask)
            if index in self.adapter_layers:
                x = self.wam_adapters[str(index)](x)
            if index in taps:
                tapped.append(x)
        return x, tapped

    def _unpatchify(self, x: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """[B, L, pf*ph*pw*C] -> [B, C, F, H, W]; Wan orders head outputs as (pf, ph, pw, C)."""
        pf, ph, pw = self.cfg.patch_size
        f, h, w = grid
        x = x.unflatten(1, grid).unflatten(-1, (pf, ph, pw, -1))  # [B, f, h, w, pf, ph, pw, C]
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(x.shape[0], -1, f * pf, h * ph, w * pw)
