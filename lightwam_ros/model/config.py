"""Configuration dataclasses for Light-WAM and its Wan2.1 components.

All configs are frozen so a built model cannot silently drift from the metadata stored next to its
checkpoint; ``to_dict`` / ``from_dict`` give a JSON-safe round trip for that metadata.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

_C = TypeVar("_C", bound="_DictMixin")

# Wan2.1 VAE per-channel latent statistics (latents are stored as (z - mean) / std).
WAN21_LATENTS_MEAN: tuple[float, ...] = (
    -0.7571,
    -0.7089,
    -0.9113,
    0.1075,
    -0.1745,
    0.9653,
    -0.1517,
    1.5508,
    0.4134,
    -0.0715,
    0.5517,
    -0.3632,
    -0.1922,
    -0.9497,
    0.2503,
    -0.2921,
)
WAN21_LATENTS_STD: tuple[float, ...] = (
    2.8184,
    1.4541,
    2.3275,
    2.6558,
    1.2196,
    1.7708,
    2.6052,
    2.0743,
    3.2687,
    2.1526,
    2.8652,
    1.5579,
    1.6382,
    1.1253,
    2.8251,
    1.9160,
)


def _as_tuple(value: Any) -> Any:
    """JSON turns tuples into lists; restore (nested) tuples so frozen configs stay hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value


def _flat_from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
    """Build a flat config dataclass from a mapping, rejecting unknown keys."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown keys {unknown}; expected a subset of {sorted(names)}")
    return cls(**{k: _as_tuple(v) for k, v in data.items()})


class _DictMixin:
    # Every config is a dataclass: this tells the type checker so (dataclasses set the value).
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of built-in types (tuples become lists), ready for ``json.dumps``."""
        return _to_builtin(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        return _flat_from_dict(cls, data)


def _to_builtin(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    return value


def _require_positive(owner: str, **values: int | float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{owner}.{name} must be positive, got {value}")


@dataclass(frozen=True)
class DiTConfig(_DictMixin):
    """Wan2.1 diffusion transformer sizes (defaults follow Wan2.1-T2V except the widths)."""

    dim: int
    ffn_dim: int
    num_layers: int
    num_heads: int
    in_channels: int = 16
    out_channels: int = 16
    patch_size: tuple[int, int, int] = (1, 2, 2)
    text_dim: int = 4096
    text_len: int = 128
    freq_dim: int = 256
    eps: float = 1e-6
    # A fixed absolute 2-D position table added to the patch embeddings (grid_positions.py): for
    # backbones trained from scratch; Wan, and so the release, has none.
    absolute_positions: bool = False

    def __post_init__(self) -> None:
        _require_positive(
            "DiTConfig",
            dim=self.dim,
            ffn_dim=self.ffn_dim,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            text_dim=self.text_dim,
            text_len=self.text_len,
            freq_dim=self.freq_dim,
            eps=self.eps,
        )
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig.dim={self.dim} is not divisible by num_heads={self.num_heads}")
        # RoPE rotates pairs and gives each of the three axes at least one pair.
        if self.head_dim % 2 or self.head_dim < 12:
            raise ValueError(f"DiTConfig head_dim={self.head_dim} must be even and >= 12 for 3-D RoPE")
        if self.freq_dim % 2:
            raise ValueError(f"DiTConfig.freq_dim={self.freq_dim} must be even (cos|sin halves)")
        if self.absolute_positions and self.dim % 4:
            raise ValueError(f"DiTConfig.dim={self.dim} must be divisible by 4 for absolute_positions")
        if len(self.patch_size) != 3 or min(self.patch_size) <= 0:
            raise ValueError(f"DiTConfig.patch_size must be 3 positive ints, got {self.patch_size}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads


@dataclass(frozen=True)
class VAEConfig(_DictMixin):
    """Wan2.1 causal 3-D VAE encoder sizes and the latent normalisation constants."""

    base_dim: int = 96
    z_dim: int = 16
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD

    def __post_init__(self) -> None:
        _require_positive(
            "VAEConfig", base_dim=self.base_dim, z_dim=self.z_dim, num_res_blocks=self.num_res_blocks
        )
        if len(self.temporal_downsample) != len(self.dim_mult) - 1:
            raise ValueError(
                f"VAEConfig.temporal_downsample needs len(dim_mult)-1={len(self.dim_mult) - 1} "
                f"entries, got {len(self.temporal_downsample)}"
            )
        for name in ("latents_mean", "latents_std"):
            if len(getattr(self, name)) != self.z_dim:
                raise ValueError(
                    f"VAEConfig.{name} needs z_dim={self.z_dim} entries, got {len(getattr(self, name))}"
                )
        if min(self.latents_std) <= 0:
            raise ValueError("VAEConfig.latents_std must be positive")


@dataclass(frozen=True)
class LoRAConfig(_DictMixin):
    """Low-rank adapters on every attention / FFN linear of the DiT."""

    rank: int = 64
    alpha: float = 128.0

    def __post_init__(self) -> None:
        _require_positive("LoRAConfig", rank=self.rank, alpha=self.alpha)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class AdapterConfig(_DictMixin):
    """Residual bottleneck adapters after the tapped blocks (0-indexed)."""

    layers: tuple[int, ...] = (8, 16, 24)
    bottleneck: int = 256

    def __post_init__(self) -> None:
        _require_positive("AdapterConfig", bottleneck=self.bottleneck)
        if not self.layers or list(self.layers) != sorted(set(self.layers)) or self.layers[0] < 0:
            raise ValueError(
                f"AdapterConfig.layers must be non-empty, unique, ascending and >= 0, got {self.layers}"
            )


@dataclass(frozen=True)
class ExpertConfig(_DictMixin):
    """StateFusionActionExpert widths."""

    num_queries: int = 16
    num_heads: int = 8
    compress_dim: int = 4608
    fused_dim: int = 6144
    step_embed_dim: int = 256

    def __post_init__(self) -> None:
        _require_positive(
            "ExpertConfig",
            num_queries=self.num_queries,
            num_heads=self.num_heads,
            compress_dim=self.compress_dim,
            fused_dim=self.fused_dim,
            step_embed_dim=self.step_embed_dim,
        )
        if self.step_embed_dim % 2:
            raise ValueError(f"ExpertConfig.step_embed_dim={self.step_embed_dim} must be even")


@dataclass(frozen=True)
class LightWAMConfig(_DictMixin):
    """Everything needed to rebuild a Light-WAM model; ``name`` is the preset it came from."""

    dit: DiTConfig
    vae: VAEConfig
    lora: LoRAConfig
    adapter: AdapterConfig
    expert: ExpertConfig
    action_dim: int
    proprio_dim: int
    horizon: int = 32
    name: str = "custom"

    def __post_init__(self) -> None:
        _require_positive(
            "LightWAMConfig", action_dim=self.action_dim, proprio_dim=self.proprio_dim, horizon=self.horizon
        )
        if self.adapter.layers[-1] >= self.dit.num_layers:
            raise ValueError(
                f"adapter layers {self.adapter.layers} exceed the {self.dit.num_layers} DiT blocks"
            )

    _SECTIONS: ClassVar[dict[str, type[_DictMixin]]] = {
        "dit": DiTConfig,
        "vae": VAEConfig,
        "lora": LoRAConfig,
        "adapter": AdapterConfig,
        "expert": ExpertConfig,
    }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LightWAMConfig:
        missing = sorted(set(cls._SECTIONS) - set(data))
        if missing:
            raise ValueError(f"LightWAMConfig: missing sections {missing}")
        sections: dict[str, Any] = {k: sub.from_dict(data[k]) for k, sub in cls._SECTIONS.items()}
        rest = {k: v for k, v in data.items() if k not in cls._SECTIONS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(rest) - known)
        if unknown:
            raise ValueError(f"LightWAMConfig: unknown keys {unknown}")
        return cls(**sections, **rest)


@dataclass(frozen=True)
class _Preset:
    dit: DiTConfig
    vae: VAEConfig = field(default_factory=VAEConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    expert: ExpertConfig = field(default_factory=ExpertConfig)


PRESETS: dict[str, _Preset] = {
    # The released model: Wan2.1-T2V-1.3B backbone plus the Light-WAM heads.
    "wan2.1-1.3b": _Preset(dit=DiTConfig(dim=1536, ffn_dim=8960, num_layers=30, num_heads=12)),
    # Same structure (30 blocks, taps 8/16/24, patch 1x2x2, 16 latent channels, RoPE split rule,
    # 128 instruction tokens) at widths that run in milliseconds on a CPU, for tests.
    "tiny": _Preset(
        dit=DiTConfig(dim=64, ffn_dim=128, num_layers=30, num_heads=2, text_dim=32),
        vae=VAEConfig(base_dim=8),
        lora=LoRAConfig(rank=4, alpha=8.0),
        adapter=AdapterConfig(bottleneck=16),
        expert=ExpertConfig(num_queries=4, num_heads=2, compress_dim=96, fused_dim=128, step_embed_dim=32),
    ),
    # Sized for training on a CPU (about 5 M parameters): 6 blocks of width 128 tapped after
    # blocks 1/3/5, an 8-wide VAE, a small expert.  Meant for a reduced canvas of at most ~128
    # tokens per frame (e.g. 160x192 -> 20x24 latents -> 10x12 tokens); instructions keep
    # umT5's 4096-wide embeddings so a real instruction cache serves it.
    "small": _Preset(
        dit=DiTConfig(dim=128, ffn_dim=512, num_layers=6, num_heads=4),
        vae=VAEConfig(base_dim=8),
        lora=LoRAConfig(rank=8, alpha=16.0),
        adapter=AdapterConfig(layers=(1, 3, 5), bottleneck=32),
        expert=ExpertConfig(num_queries=8, num_heads=4, compress_dim=256, fused_dim=512, step_embed_dim=64),
    ),
}


def make_config(preset: str, action_dim: int, proprio_dim: int, horizon: int = 32) -> LightWAMConfig:
    """Config for a named preset and an embodiment's action / proprio sizes."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid presets: {sorted(PRESETS)}")
    p = PRESETS[preset]
    return LightWAMConfig(
        dit=p.dit,
        vae=p.vae,
        lora=p.lora,
        adapter=p.adapter,
        expert=p.expert,
        action_dim=action_dim,
        proprio_dim=proprio_dim,
        horizon=horizon,
        name=preset,
    )
