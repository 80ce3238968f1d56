"""The package's Light-WAM checkpoint: one safetensors file holding weights and everything needed
to use them (config, embodiment, normalisation statistics, instruction-encoder identity).

Safetensors rather than a pickle, so loading a file can never execute code; the only pickle reader
in the project is the offline converter (tools/convert.py). Loading builds the model with its
parameters on the meta device and assigns the file's tensors, so a multi-GB model is never
allocated twice, and the content hash that names the model is computed while the tensors are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.modules.module import register_module_parameter_registration_hook

from .config import LightWAMConfig
from .lightwam import LightWAM
from .lora import LoRA
from .vae import select_encoder_keys

FORMAT = "lightwam_ros/1"
METADATA_FIELDS = ("format", "config", "embodiment", "stats", "instruction_encoder", "source", "model_id")
ID_HEX_CHARS = 12
# Key families, in display order; ``key_family`` maps each state-dict key to one of them.
FAMILIES = ("dit.base", "dit.lora", "dit.adapters", "dit.head", "vae", "expert", "proprio_encoder", "other")
# Parts of the original Wan2.1 VAE file that the encoder-only model does not use.
WAN_VAE_DECODER_PREFIXES = ("decoder.", "conv2.")
# Pooler parameter names this package wrote before it adopted the release's own (lightwam_ros/1
# files from before that change): old name fragment -> release name fragment. Applied on load only.
LEGACY_POOLER_NAMES = {
    ".adapted.queries": ".adapted.query_tokens",
    ".adapted.kv_norm.": ".adapted.token_norm.",
    ".adapted.merge_logits": ".adapted.query_merge_logits",
    ".adapted.out_norm.": ".adapted.output_norm.",
}
_NAMES_SHOWN_PER_FAMILY = 4
_SHAPES_SHOWN = 8


class CheckpointError(ValueError):
    """A checkpoint (or weight file) that does not fit the model or lacks what it must carry."""


@dataclass(frozen=True)
class CheckpointMetadata:
    config: LightWAMConfig
    embodiment: str  # e.g. "libero_franka"
    stats: dict  # dataset_stats.json content ("state"/"action" -> "default" blocks)
    instruction_encoder: str  # the text encoder the instruction embeddings must come from
    source: str = ""  # provenance: converted file name, "random-init", ...
    # The canvas layout the model was trained on (policy.canvas.canvas_layout); None in files
    # written before it was recorded. A runner refuses an embodiment whose canvas differs.
    canvas: dict | None = None


@dataclass
class LoadedCheckpoint:
    model: LightWAM
    meta: CheckpointMetadata
    model_id: str


# --------------------------------------------------------------------------------- key families
def release_key_name(key: str) -> str:
    """``key`` with a pre-release pooler name replaced by the release's name (others unchanged)."""
    for old, new in LEGACY_POOLER_NAMES.items():
        if old in key and key.startswith("expert.layer_poolers."):
            return key.replace(old, new)
    return key


def key_family(key: str) -> str:
    """Which part of Light-WAM a package state-dict key belongs to (one of ``FAMILIES``)."""
    if key.startswith("dit."):
        if ".lora_" in key or ".ffn_lora_" in key:
            return "dit.lora"
        if key.startswith("dit.wam_adapters."):
            return "dit.adapters"
        if key.startswith("dit.head."):
            return "dit.head"
        return "dit.base"
    for family in ("vae", "expert", "proprio_encoder"):
        if key.startswith(family + "."):
            return family
    return "other"


def _grouped(keys: Iterable[str]) -> str:
    """'family (n): a, b, ... (+k more)' for each family, names sorted, lists truncated."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        groups.setdefault(key_family(key), []).append(key)
    parts = []
    for family in FAMILIES:
        names = groups.get(family)
        if names:
            shown = ", ".join(names[:_NAMES_SHOWN_PER_FAMILY])
            more = len(names) - _NAMES_SHOWN_PER_FAMILY
            parts.append(f"{family} ({len(names)}): {shown}" + (f" (+{more} more)" if more > 0 else ""))
    return "; ".join(parts)


def verify_state_layout(
    expected: Mapping[str, Sequence[int]], found: Mapping[str, Sequence[int]], source: str
) -> None:
    """Raise CheckpointError naming missing / unexpected keys and shape mismatches (key -> shape)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        (k, tuple(found[k]), tuple(expected[k]))
        for k in sorted(set(expected) & set(found))
        if tuple(found[k]) != tuple(expected[k])
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s): {_grouped(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s): {_grouped(unexpected)}")
    if wrong:
        shown = ", ".join(f"{k} (file {f} vs model {e})" for k, f, e in wrong[:_SHAPES_SHOWN])
        more = len(wrong) - _SHAPES_SHOWN
        problems.append(
            f"{len(wrong)} shape mismatch(es): {shown}" + (f" (+{more} more)" if more > 0 else "")
        )
    if problems:
        raise CheckpointError(f"{source} does not fit the model:\n  " + "\n  ".join(problems))


def _shapes(tensors: Mapping[str, Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in tensors.items()}


# ------------------------------------------------------------------------------- model assembly
_EMPTY_BUILD = threading.local()


def _parameter_to_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> nn.Parameter | None:
    if param is None or not getattr(_EMPTY_BUILD, "active", False):
        return None
    return nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)


@contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Register new parameters (of this thread only) on the meta device; buffers stay real.

    ``with torch.device("meta")`` would also empty the non-persistent buffers (latent statistics,
    step embeddings) that no checkpoint holds, so only parameters are redirected.
    """
    # torch annotates the hook as returning None, but a returned Parameter replaces the registered one.
    handle = register_module_parameter_registration_hook(cast(Callable[..., None], _parameter_to_meta))
    _EMPTY_BUILD.active = True
    try:
        yield
    finally:
        _EMPTY_BUILD.active = False
        handle.remove()


def empty_model(cfg: LightWAMConfig) -> LightWAM:
    """A LightWAM whose parameters are on the meta device (no memory), ready for ``assign``."""
    with _parameters_on_meta():
        return LightWAM(cfg)


def assemble_model(cfg: LightWAMConfig, state: Mapping[str, Tensor], source: str) -> LightWAM:
    """Model for ``cfg`` holding exactly ``state`` (package key names); tensors are used, not copied."""
    model = empty_model(cfg)
    verify_state_layout(_shapes(model.state_dict()), _shapes(state), source)
    model.load_state_dict(state, strict=True, assign=True)
    return model


def _require_unmerged(model: LightWAM, action: str) -> None:
    if any(m.merged for m in model.modules() if isinstance(m, LoRA)):
        raise CheckpointError(
            f"cannot {action}: LoRA updates are merged into the base weights; "
            f"unmerge them first (lora.set_lora_merged(model, False))"
        )


def _owned(tensor: Tensor, device: str | torch.device, dtype: torch.dtype | None) -> Tensor:
    """``tensor`` (memory-mapped from the file) on ``device`` in ``dtype``, in memory PyTorch owns.

    Mapped weights would change under a running model if the file were rewritten in place, and
    their 8-byte alignment sends CPU kernels down slower, differently rounded paths.
    """
    moved = tensor.to(device=device, dtype=dtype)
    return moved.clone() if moved is tensor else moved


# ------------------------------------------------------------------------------------- hashing
def _update_digest(digest: hashlib._Hash, name: str, tensor: Tensor) -> None:
    """Feed one CPU tensor (name, dtype, shape, raw bytes) into the running content hash."""
    header = f"{name}\0{str(tensor.dtype).removeprefix('torch.')}\0{list(tensor.shape)}\0"
    digest.update(header.encode())
    digest.update(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().data)


def _model_id(config_name: str, digest: hashlib._Hash) -> str:
    return f"{config_name}:{digest.hexdigest()[:ID_HEX_CHARS]}"


# ------------------------------------------------------------------------------------ metadata
def _check_stats(stats: Any, cfg: LightWAMConfig, where: str) -> None:
    """The stats must hold state/action "default" blocks whose vectors match the model's dims."""
    if not isinstance(stats, dict):
        raise CheckpointError(
            f"{where}: stats must be a dict (dataset_stats.json), got {type(stats).__name__}"
        )
    try:
        json.dumps(stats, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"{where}: stats must be plain JSON (lists of finite numbers): {error}"
        ) from None
    for section, dim in (("state", cfg.proprio_dim), ("action", cfg.action_dim)):
        section_stats = stats.get(section)
        block = section_stats.get("default") if isinstance(section_stats, dict) else None
        if not isinstance(block, dict) or not block:
            raise CheckpointError(f"{where}: stats lack a non-empty {section}.default block")
        wrong = {k: len(v) for k, v in block.items() if isinstance(v, list) and len(v) != dim}
        if wrong:
            raise CheckpointError(
                f"{where}: stats {section}.default vectors must have {dim} entries "
                f"(the model's {section} dim), got {wrong}"
            )


def _check_meta(meta: CheckpointMetadata, where: str) -> None:
    if not isinstance(meta.config, LightWAMConfig):
        raise CheckpointError(f"{where}: config must be a LightWAMConfig, got {type(meta.config).__name__}")
    for name in ("embodiment", "instruction_encoder"):
        value = getattr(meta, name)
        if not isinstance(value, str) or not value.strip():
            raise CheckpointError(f"{where}: {name} must be a non-empty string, got {value!r}")
    if not isinstance(meta.source, str):
        raise CheckpointError(f"{where}: source must be a string, got {meta.source!r}")
    if meta.canvas is not None and not isinstance(meta.canvas, dict):
        raise CheckpointError(f"{where}: canvas must be a dict or None, got {meta.canvas!r}")
    _check_stats(meta.stats, meta.config, where)


def _encode_metadata(meta: CheckpointMetadata, model_id: str) -> dict[str, str]:
    encoded = {
        "format": FORMAT,
        "config": json.dumps(meta.config.to_dict()),
        "embodiment": meta.embodiment,
        "stats": json.dumps(meta.stats),
        "instruction_encoder": meta.instruction_encoder,
        "source": meta.source,
        "model_id": model_id,
    }
    if meta.canvas is not None:
        encoded["canvas"] = json.dumps(meta.canvas)
    return encoded


def _decode_metadata(raw: Mapping[str, str] | None, where: str) -> tuple[CheckpointMetadata, str]:
    """Parse and validate the file's metadata; returns it with the recorded model_id."""
    if not raw:
        raise CheckpointError(
            f"{where}: no metadata; not a {FORMAT} checkpoint "
            f"(convert released checkpoints with lightwam-convert)"
        )
    missing = [k for k in METADATA_FIELDS if k not in raw]
    if missing:
        raise CheckpointError(
            f"{where}: metadata lacks {missing}; a {FORMAT} checkpoint needs {list(METADATA_FIELDS)}"
        )
    if raw["format"] != FORMAT:
        raise CheckpointError(f"{where}: format {raw['format']!r} is not {FORMAT!r}")
    try:
        config = LightWAMConfig.from_dict(json.loads(raw["config"]))
        stats = json.loads(raw["stats"])
        canvas = json.loads(raw["canvas"]) if "canvas" in raw else None
    except (ValueError, TypeError, AttributeError) as error:
        raise CheckpointError(f"{where}: invalid config/stats/canvas metadata: {error}") from None
    meta = CheckpointMetadata(
        config=config,
        embodiment=raw["embodiment"],
        stats=stats,
        instruction_encoder=raw["instruction_encoder"],
        source=raw["source"],
        canvas=canvas,
    )
    _check_meta(meta, where)
    if not raw["model_id"].startswith(f"{config.name}:"):
        raise CheckpointError(
            f"{where}: model_id {raw['model_id']!r} does not belong to config {config.name!r}"
        )
    return meta, raw["model_id"]


# ---------------------------------------------------------------------------------- save / load
def save_checkpoint(
    path: str | os.PathLike, model: LightWAM, meta: CheckpointMetadata, dtype: torch.dtype | None = None
) -> str:
    """Write ``model`` and ``meta`` to one safetensors file; returns the model_id.

    ``dtype`` casts floating-point tensors (e.g. bf16 halves a 1.3B model). The file appears
    atomically, so a failed save never leaves a truncated checkpoint behind.
    """
    path = Path(path)
    if meta.config != model.cfg:
        raise CheckpointError(f"{path}: metadata config ({meta.config.name}) differs from the model's config")
    _check_meta(meta, str(path))
    if dtype is not None and not dtype.is_floating_point:
        raise CheckpointError(f"dtype must be a floating-point dtype, got {dtype}")
    _require_unmerged(model, "save")
    state = model.state_dict()
    empty = [k for k, v in state.items() if v.is_meta]
    if empty:
        raise CheckpointError(f"cannot save: tensors without data (meta device): {_grouped(empty)}")

    digest = hashlib.sha256()
    tensors: dict[str, Tensor] = {}
    for name in sorted(state):
        tensor = state[name]
        if dtype is not None and tensor.is_floating_point():
            tensor = tensor.to(dtype)
        tensors[name] = tensor = tensor.to("cpu").contiguous()
        _update_digest(digest, name, tensor)
    model_id = _model_id(meta.config.name, digest)

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file(tensors, str(partial), metadata=_encode_metadata(meta, model_id))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return model_id


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    expect_embodiment: str | None = None,
) -> LoadedCheckpoint:
    """Load a package checkpoint into an eval-mode LightWAM on ``device``.

    ``dtype`` casts floating-point weights (None keeps the stored dtypes). Non-persistent buffers
    (latent statistics, step embeddings) stay float32. The recorded model_id is checked against
    the content hash, computed in the same pass that reads the tensors.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise CheckpointError(f"{where}: no such checkpoint file")
    if dtype is not None and not dtype.is_floating_point:
        raise CheckpointError(f"dtype must be a floating-point dtype, got {dtype}")
    try:
        handle = safe_open(where, framework="pt", device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(
            f"{where}: not a safetensors file ({error}); released .pt checkpoints "
            f"must be converted with lightwam-convert"
        ) from None
    with handle as reader:
        meta, recorded_id = _decode_metadata(reader.metadata(), where)
        if expect_embodiment is not None and meta.embodiment != expect_embodiment:
            raise CheckpointError(
                f"{where}: checkpoint is for embodiment {meta.embodiment!r}, expected {expect_embodiment!r}"
            )
        model = empty_model(meta.config)
        names = sorted(reader.keys())
        renamed = {name: release_key_name(name) for name in names}
        if any(old != new for old, new in renamed.items()):
            warnings.warn(
                f"{where}: written with this package's pre-release pooler names "
                f"({', '.join(sorted(LEGACY_POOLER_NAMES))}); loaded under the release's "
                f"names. Save it again (save_checkpoint) to drop this translation.",
                stacklevel=2,
            )
        verify_state_layout(
            _shapes(model.state_dict()), {renamed[k]: reader.get_slice(k).get_shape() for k in names}, where
        )
        digest = hashlib.sha256()
        state = {}
        for name in names:
            tensor = reader.get_tensor(name)
            _update_digest(digest, name, tensor)  # the id covers the names as stored
            cast = dtype if dtype is not None and tensor.is_floating_point() else None
            state[renamed[name]] = _owned(tensor, device, cast)
    model_id = _model_id(meta.config.name, digest)
    if model_id != recorded_id:
        raise CheckpointError(
            f"{where}: tensor data hashes to {model_id} but the file records "
            f"{recorded_id}; the file was corrupted or edited after saving"
        )
    model.load_state_dict(state, strict=True, assign=True)
    return LoadedCheckpoint(model=model.to(device).eval(), meta=meta, model_id=model_id)


# ------------------------------------------------------------------------- original Wan weights
def _copy_into(model: LightWAM, state: Mapping[str, Tensor], action: str) -> None:
    targets = model.state_dict()
    if any(targets[k].is_meta for k in state):
        raise CheckpointError(f"cannot {action}: the model's parameters are on the meta device")
    with torch.no_grad():
        for key, tensor in state.items():
            targets[key].copy_(tensor)


def load_wan_dit_weights(model: LightWAM, tensors: Mapping[str, Tensor]) -> None:
    """Copy original Wan2.1 DiT weights (``diffusion_pytorch_model*.safetensors`` key names, shards
    merged) into ``model.dit``. Strict over the base DiT and its video head; LoRA and adapters are
    left as they are. Errors name keys with the package's ``dit.`` prefix."""
    _require_unmerged(model, "load Wan DiT weights")
    expected = {
        k: tuple(v.shape) for k, v in model.state_dict().items() if key_family(k) in ("dit.base", "dit.head")
    }
    state = {f"dit.{k}": v for k, v in tensors.items()}
    source = "Wan2.1 DiT weights"
    if any(k.startswith("condition_embedder.") for k in tensors):
        source += " (these look like diffusers-format keys; use the original Wan2.1 checkpoint)"
    verify_state_layout(expected, _shapes(state), source)
    _copy_into(model, state, "load Wan DiT weights")


def wan_vae_state(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original Wan2.1 VAE tensors -> package keys (``vae.*``); decoder tensors are dropped,
    anything else is kept so that strict checks report it."""
    kept = {k: v for k, v in tensors.items() if not k.startswith(WAN_VAE_DECODER_PREFIXES)}
    encoder = select_encoder_keys(kept)
    return {f"vae.{k}" if k in encoder else k: v for k, v in kept.items()}


def load_wan_vae_weights(model: LightWAM, tensors: Mapping[str, Tensor]) -> None:
    """Copy original ``Wan2.1_VAE`` weights into ``model.vae`` (encoder keys strict, decoder ignored)."""
    state = wan_vae_state(tensors)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if key_family(k) == "vae"}
    verify_state_layout(expected, _shapes(state), "Wan2.1 VAE weights")
    _copy_into(model, state, "load Wan VAE weights")
