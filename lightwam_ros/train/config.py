"""The training run's settings: one YAML file, sections of typed fields, ``key=value`` overrides.

Every key is checked before any work: an unknown one fails naming itself and the keys its section
accepts, so a typo never trains with a silently ignored setting.  Values keep the YAML's types;
an override is parsed as YAML too (``optim.lr=3e-4``, ``data.episodes=[a,b]``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TRAINABLE_SETS = ("lora", "full")
LATENT_NORMS = ("config", "data")
PRECISIONS = ("auto", "fp32", "bf16")
EXPORT_DTYPES = ("float32", "bfloat16", "float16")  # storage of the exported package's weights


class TrainConfigError(ValueError):
    """The training configuration is malformed; the message names the key."""


@dataclass(frozen=True)
class DataConfig:
    episodes: tuple[str, ...] = ()  # episode files or folders of episode_*.safetensors
    val_episodes: tuple[str, ...] = ()  # held out for validation (never trained on)
    embodiment: str = ""  # shipped name or YAML path (its canvas is the model's)
    instructions: str = ""  # instruction cache (safetensors) holding every task
    strict: bool = False  # a bad episode is fatal instead of skipped
    video_frames: int = 9  # frames of the video clip: 9 -> 3 latent frames
    frame_stride: int = 4  # action steps between two clip frames
    cache_dir: str = ""  # latent cache; "" runs the VAE every step


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "tiny"
    init: str = ""  # package checkpoint to start from; "" = seeded random
    trainable: str = "full"  # lora: the paper's set; full: everything, VAE included
    latent_norm: str = "config"  # data: standardise latents with this data's statistics
    absolute_positions: bool = False  # from scratch: tokens get an absolute 2-D position table
    grad_checkpointing: bool = True  # CUDA only


@dataclass(frozen=True)
class ObjectiveConfig:
    action_weight: float = 1.0
    video_weight: float = 1.0  # 0 disables the video branch
    supervised_steps: int = 0  # 0: the embodiment's executed steps
    shift: float = 5.0
    timestep_centre: float = 500.0
    timestep_width: float = 500.0


@dataclass(frozen=True)
class AugmentConfig:
    state_dropout: float = 0.0  # fraction of samples whose whole state input is zeroed
    state_noise: float = 0.0  # std of Gaussian noise on the normalised state
    image_shift: int = 0  # max random shift of the canvas in pixels (edge padded)
    color_jitter: float = 0.0  # max relative brightness / contrast change


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 100
    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 1e-2
    warmup_steps: int = 10
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # > 0 keeps an EMA of the weights, used for export


@dataclass(frozen=True)
class RunConfig:
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    precision: str = "auto"  # auto/bf16: bf16 autocast on CUDA; a CPU: fp32, video targets in native bf16
    checkpoint_every: int = 0  # 0: only at the end
    keep_last: int = 2
    log_every: int = 10
    val_every: int = 0  # 0: only at the end (when val_episodes are given)
    progress: bool = True
    tensorboard: bool = True  # when the tensorboard package is importable
    resume: bool = True  # continue from the newest checkpoint in out_dir
    export_dtype: str = "float32"  # bfloat16 / float16 halve the package (loaded in fp32 on a CPU)


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "augment": AugmentConfig,
    "optim": OptimConfig,
    "run": RunConfig,
}


def _coerce(where: str, value: Any, default: Any) -> Any:
    """``value`` in the type of the field's default (YAML ints accepted for floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TrainConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TrainConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TrainConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if value is None:
            return ""
        if not isinstance(value, str):
            raise TrainConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(default, tuple):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise TrainConfigError(f"{where}: expected a list, got {value!r}")
        if default and len(items) != len(default):
            raise TrainConfigError(f"{where}: expected {len(default)} entries, got {value!r}")
        return tuple(_coerce(f"{where}[{i}]", v, default[0] if default else "") for i, v in enumerate(items))
    raise TrainConfigError(f"{where}: unsupported value {value!r}")


def config_from_dict(data: Mapping[str, Any], source: str = "config") -> TrainConfig:
    """Typed config; unknown sections or keys fail, naming them, before anything else happens."""
    if not isinstance(data, Mapping):
        raise TrainConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_SECTION_TYPES))
    if unknown:
        raise TrainConfigError(
            f"{source}: unknown section(s) {unknown}; sections are {sorted(_SECTION_TYPES)}"
        )
    sections = {}
    for name, cls in _SECTION_TYPES.items():
        given = data.get(name) or {}
        if not isinstance(given, Mapping):
            raise TrainConfigError(f"{source}: section {name!r} must be a mapping, got {given!r}")
        defaults = cls()
        names = [f.name for f in dataclasses.fields(cls)]
        bad = sorted(set(given) - set(names))
        if bad:
            raise TrainConfigError(
                f"{source}: unknown key(s) {[f'{name}.{k}' for k in bad]}; {name} accepts {names}"
            )
        sections[name] = cls(
            **{k: _coerce(f"{source}: {name}.{k}", v, getattr(defaults, k)) for k, v in given.items()}
        )
    config = TrainConfig(**sections)
    _check(config, source)
    return config


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``section.key=value`` strings applied to the raw mapping (values parsed as YAML)."""
    merged = {k: dict(v or {}) for k, v in data.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise TrainConfigError(f"override {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise TrainConfigError(f"override {item!r}: value is not valid YAML: {error}") from None
        merged.setdefault(section, {})[name] = value
    return merged


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> TrainConfig:
    """The config file (or the defaults) with ``overrides`` applied, fully checked."""
    data: Any = {}
    source = "overrides"
    if path is not None:
        path = Path(path)
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise TrainConfigError(f"{path}: cannot read the config: {error}") from None
        if not isinstance(data, Mapping):
            raise TrainConfigError(f"{path}: expected a mapping of sections")
    return config_from_dict(apply_overrides(dict(data), overrides), source)


def _check(config: TrainConfig, source: str) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise TrainConfigError(f"{source}: {message}")

    m, o, a, opt, run, d = (
        config.model,
        config.objective,
        config.augment,
        config.optim,
        config.run,
        config.data,
    )
    need(m.trainable in TRAINABLE_SETS, f"model.trainable must be one of {TRAINABLE_SETS}")
    need(m.latent_norm in LATENT_NORMS, f"model.latent_norm must be one of {LATENT_NORMS}")
    need(
        not (m.init and m.absolute_positions),
        "model.absolute_positions applies to a model built from scratch; with model.init the "
        "checkpoint's own config decides",
    )
    need(run.precision in PRECISIONS, f"run.precision must be one of {PRECISIONS}")
    need(run.export_dtype in EXPORT_DTYPES, f"run.export_dtype must be one of {EXPORT_DTYPES}")
    need(d.video_frames >= 1 and d.frame_stride >= 1, "data.video_frames and frame_stride must be >= 1")
    need(o.action_weight >= 0 and o.video_weight >= 0, "objective weights must be >= 0")
    need(o.action_weight + o.video_weight > 0, "objective: at least one weight must be positive")
    need(o.supervised_steps >= 0, "objective.supervised_steps must be >= 0")
    need(0 <= a.state_dropout <= 1, "augment.state_dropout must lie in [0, 1]")
    need(
        a.state_noise >= 0 and a.image_shift >= 0 and 0 <= a.color_jitter < 1,
        "augment: noise, shift >= 0 and color_jitter in [0, 1)",
    )
    need(opt.steps > 0 and opt.batch_size > 0, "optim.steps and batch_size must be positive")
    need(opt.lr > 0 and opt.grad_clip > 0, "optim.lr and grad_clip must be positive")
    need(0 <= opt.warmup_steps, "optim.warmup_steps must be >= 0")
    need(0 <= opt.ema_decay < 1, "optim.ema_decay must lie in [0, 1)")
    need(run.keep_last >= 1 and run.log_every >= 1, "run.keep_last and log_every must be >= 1")
    need(run.checkpoint_every >= 0 and run.val_every >= 0, "run.*_every must be >= 0")
    need(run.threads >= 0, "run.threads must be >= 0")
