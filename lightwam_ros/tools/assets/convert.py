"""lightwam-convert: released Light-WAM checkpoint -> the package's safetensors checkpoint.

Inputs: the authors' ``.pt`` (a torch pickle: ``mot`` = the whole DiT under ``mixtures.video.``,
``state_fusion_action_expert``, ``proprio_encoder``, ``step``, ``torch_dtype``), the Wan2.1 VAE
(``Wan2.1_VAE.pth`` or a safetensors file with the original keys) and ``dataset_stats.json``
(plus, if present, ``config.yaml``), both looked up in the checkpoint's parent directories when
not given. This is the project's only pickle reader: ``torch.load(weights_only=True)``, and the
result must be nested dicts of tensors, ints, strings and dtypes, or nothing is written.
Model widths are read from the tensor shapes and matched to a preset. Runs offline.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from lightwam_ros.model.checkpoint import (FAMILIES, CheckpointMetadata, assemble_model,
                                           key_family, save_checkpoint, wan_vae_state)
from lightwam_ros.model.config import PRESETS, LightWAMConfig, make_config
from lightwam_ros.model.instructions import DEFAULT_INSTRUCTION_ENCODER
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.normalization import Normalizer

# Released section prefix -> package prefix.
RELEASE_PREFIXES = {"mot.mixtures.video.": "dit.", "state_fusion_action_expert.": "expert.",
                    "proprio_encoder.": "proprio_encoder."}
STATS_FILE = "dataset_stats.json"
CONFIG_FILE = "config.yaml"
SIDE_FILE_SEARCH_LEVELS = 4  # the checkpoint's folder and its 3 nearest ancestors
CONFIG_YAML_DIM_KEYS = ("action_dim", "proprio_dim")  # cross-checked against the tensor shapes
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Config fields read off tensor shapes: field (dotted, as in LightWAMConfig.to_dict()) -> (key, axis).
SHAPE_PROBES: dict[str, tuple[str, int]] = {
    "dit.dim": ("dit.patch_embedding.weight", 0),
    "dit.in_channels": ("dit.patch_embedding.weight", 1),
    "dit.ffn_dim": ("dit.blocks.0.ffn.0.weight", 0),
    "dit.text_dim": ("dit.text_embedding.0.weight", 1),
    "dit.freq_dim": ("dit.time_embedding.0.weight", 1),
    "lora.rank": ("dit.blocks.0.self_attn.lora_q.down_proj.weight", 0),
    "expert.num_queries": ("expert.layer_poolers.0.adapted.queries", 0),
    "expert.compress_dim": ("expert.layer_compressors.0.fc1.weight", 0),
    "expert.fused_dim": ("expert.fused_proj.weight", 0),
    "expert.step_embed_dim": ("expert.step_pos_proj.1.weight", 1),
    "vae.base_dim": ("vae.encoder.conv1.weight", 0),
    "action_dim": ("expert.output.2.weight", 0),
    "proprio_dim": ("proprio_encoder.weight", 1),
}


class ConversionError(ValueError):
    """The inputs cannot be converted; nothing was written."""


@dataclass
class PlainPickle:
    """A weights-only pickle flattened to dotted names: its tensors and its scalar entries."""

    tensors: dict[str, Tensor]
    values: dict[str, int | str | torch.dtype]


# ------------------------------------------------------------------------------ reading inputs
def _rejection_reason(error: Exception) -> str:
    """The weights-only unpickler's own reason, without its advice to load the file unsafely."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if found:
        return f"it references {found.group(1)}, which is not a tensor or plain container"
    found = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", str(error), re.DOTALL)
    return f"not a plain tensor checkpoint, or damaged: {found.group(1) if found else 'unknown reason'}"


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as error:
        if "mmap can only be used" not in str(error):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)  # legacy format: read it whole


def read_plain_pickle(path: Path) -> PlainPickle:
    """Load a torch pickle with ``weights_only=True`` and accept only nested dicts of tensors,
    ints, strings and torch dtypes (a released checkpoint holds nothing else)."""
    try:
        obj = _torch_load(path)
    except Exception as error:  # torch.load reports damaged input through many exception types
        if "Weights only load failed" in str(error):
            raise ConversionError(f"{path}: refused by the weights-only unpickler "
                                  f"({_rejection_reason(error)}); nothing was loaded or written") from None
        raise ConversionError(f"{path}: not a readable torch checkpoint "
                              f"({type(error).__name__}: {error})") from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    result = PlainPickle({}, {})
    _flatten(obj, "", result, path)
    return result


def _flatten(node: dict, prefix: str, out: PlainPickle, path: Path) -> None:
    for key, value in node.items():
        if not isinstance(key, str):
            raise ConversionError(f"{path}: refused: non-string key {key!r} under "
                                  f"{prefix or 'the top level'!r}")
        name = prefix + key
        if isinstance(value, dict):
            _flatten(value, name + ".", out, path)
        elif isinstance(value, Tensor):
            out.tensors[name] = value
        elif isinstance(value, (int, str, torch.dtype)):
            out.values[name] = value
        else:
            raise ConversionError(f"{path}: refused: entry {name!r} is a {type(value).__name__}; only "
                                  f"tensors, ints, strings, torch dtypes and nested dicts are accepted")


def release_state(release: PlainPickle, path: Path) -> dict[str, Tensor]:
    """Rename the released tensors to package keys (``dit.*``, ``expert.*``, ``proprio_encoder.*``)."""
    state: dict[str, Tensor] = {}
    stray = []
    for name, tensor in release.tensors.items():
        prefix = next((p for p in RELEASE_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            stray.append(name)
        else:
            state[RELEASE_PREFIXES[prefix] + name[len(prefix):]] = tensor
    if stray:
        shown = ", ".join(sorted(stray)[:8])
        raise ConversionError(f"{path}: {len(stray)} tensor(s) outside the known sections "
                              f"{sorted(RELEASE_PREFIXES)}: {shown}")
    for prefix, target in RELEASE_PREFIXES.items():
        if not any(k.startswith(target) for k in state):
            raise ConversionError(f"{path}: no tensors under {prefix.rstrip('.')!r}; not a released "
                                  f"Light-WAM checkpoint")
    return state


def read_vae(path: Path) -> dict[str, Tensor]:
    """Original Wan2.1 VAE weights (``.pth`` pickle or safetensors) as package keys (``vae.*``)."""
    if path.suffix == ".safetensors":
        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as error:
            raise ConversionError(f"{path}: not a readable safetensors file ({error})") from None
    else:
        vae = read_plain_pickle(path)
        if vae.values:
            raise ConversionError(f"{path}: expected only tensors in the VAE file, "
                                  f"also found {sorted(vae.values)}")
        tensors = vae.tensors
    return wan_vae_state(tensors)


def find_side_file(start: Path, name: str) -> Path | None:
    """``name`` in the checkpoint's folder or its nearest ancestors (the release's layout)."""
    folder = start.resolve().parent
    for candidate in [folder, *folder.parents][:SIDE_FILE_SEARCH_LEVELS]:
        if (candidate / name).is_file():
            return candidate / name
    return None


def _yaml_ints(node: Any, key: str) -> set[int]:
    """Every integer value stored under ``key`` anywhere in a parsed YAML tree."""
    found: set[int] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, int) and not isinstance(v, bool):
                found.add(v)
            found |= _yaml_ints(v, key)
    elif isinstance(node, list):
        for item in node:
            found |= _yaml_ints(item, key)
    return found


def check_config_yaml(path: Path, dims: dict[str, int]) -> None:
    """Cross-check the dims the training config.yaml declares against the tensor shapes."""
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConversionError(f"{path}: not valid YAML: {error}") from None
    for key in CONFIG_YAML_DIM_KEYS:
        declared = _yaml_ints(tree, key)
        if declared and declared != {dims[key]}:
            raise ConversionError(f"{path}: {key} {sorted(declared)} disagrees with the checkpoint's "
                                  f"tensors ({dims[key]})")


# ----------------------------------------------------------------------------- config inference
def _tensor_shape(state: dict[str, Tensor], key: str, field: str) -> tuple[int, ...]:
    if key not in state:
        raise ConversionError(f"cannot infer {field}: tensor {key!r} is missing")
    return tuple(state[key].shape)


def infer_fields(state: dict[str, Tensor]) -> dict[str, Any]:
    """Config fields implied by the tensor shapes (dotted names as in ``LightWAMConfig.to_dict``)."""
    fields: dict[str, Any] = {f: _tensor_shape(state, k, f)[axis] for f, (k, axis) in SHAPE_PROBES.items()}
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"dit\.blocks\.(\d+)\.", k))}
    adapters = sorted({int(m.group(1)) for k in state if (m := re.match(r"dit\.wam_adapters\.(\d+)\.", k))})
    if not adapters:
        raise ConversionError("cannot infer adapter.layers: no dit.wam_adapters.* tensors")
    fields["dit.num_layers"] = max(blocks) + 1
    fields["adapter.layers"] = adapters
    fields["adapter.bottleneck"] = _tensor_shape(state, f"dit.wam_adapters.{adapters[0]}.down_proj.weight",
                                                 "adapter.bottleneck")[0]
    return fields


def _config_value(cfg: LightWAMConfig, field: str) -> Any:
    value: Any = cfg.to_dict()
    for part in field.split("."):
        value = value[part]
    return value


def _mismatches(cfg: LightWAMConfig, fields: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {f: (v, _config_value(cfg, f)) for f, v in fields.items() if _config_value(cfg, f) != v}


def _describe_mismatches(wrong: dict[str, tuple[Any, Any]], preset: str) -> str:
    return ", ".join(f"{f}: checkpoint {got} vs {preset} {want}" for f, (got, want) in wrong.items())


def choose_config(fields: dict[str, Any], preset: str | None, horizon: int) -> LightWAMConfig:
    """The preset config whose widths match ``fields`` (the named one, or the only one that fits).

    Shapes cannot tell head counts or the LoRA alpha; those come from the preset.
    """
    def config(name: str) -> LightWAMConfig:
        return make_config(name, fields["action_dim"], fields["proprio_dim"], horizon)

    candidates = [preset] if preset is not None else sorted(PRESETS)
    wrong = {name: _mismatches(config(name), fields) for name in candidates}
    fitting = [name for name in candidates if not wrong[name]]
    if len(fitting) == 1:
        return config(fitting[0])
    if fitting:
        raise ConversionError(f"presets {fitting} all fit the checkpoint; name one with --preset")
    closest = min(candidates, key=lambda name: len(wrong[name]))
    raise ConversionError(f"no preset fits the checkpoint; closest {closest!r}: "
                          f"{_describe_mismatches(wrong[closest], closest)}")


# ---------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightwam-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="released Light-WAM .pt file")
    parser.add_argument("--vae", type=Path, required=True, help="Wan2.1_VAE.pth (or .safetensors)")
    parser.add_argument("--embodiment", required=True, help="embodiment name or YAML (e.g. libero_franka)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="package .safetensors to write")
    parser.add_argument("--stats", type=Path, help=f"{STATS_FILE} (default: found next to the checkpoint)")
    parser.add_argument("--config-yaml", type=Path,
                        help=f"training {CONFIG_FILE} (default: found next to the checkpoint)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: the one that fits)")
    parser.add_argument("--horizon", type=int, help="action chunk length (default: the embodiment's chunk)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16",
                        help="storage dtype of floating-point weights (default bfloat16, as released)")
    parser.add_argument("--instruction-encoder", default=DEFAULT_INSTRUCTION_ENCODER,
                        help="text encoder the instruction embeddings come from")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return parser


def _side_file(given: Path | None, checkpoint: Path, name: str) -> Path | None:
    if given is not None:
        if not given.is_file():
            raise ConversionError(f"{given}: no such file")
        return given
    return find_side_file(checkpoint, name)


def convert(args: argparse.Namespace) -> list[str]:
    """Run the conversion; returns the summary lines."""
    if not args.checkpoint.is_file():
        raise ConversionError(f"{args.checkpoint}: no such file")
    if args.output.exists() and not args.overwrite:
        raise ConversionError(f"{args.output} exists; pass --overwrite to replace it")
    stats_path = _side_file(args.stats, args.checkpoint, STATS_FILE)
    if stats_path is None:
        raise ConversionError(f"{STATS_FILE} not found in {args.checkpoint.resolve().parent} or its "
                              f"{SIDE_FILE_SEARCH_LEVELS - 1} nearest parents; pass --stats")
    yaml_path = _side_file(args.config_yaml, args.checkpoint, CONFIG_FILE)
    spec = load_embodiment(args.embodiment)

    release = read_plain_pickle(args.checkpoint)
    state = release_state(release, args.checkpoint)
    state.update(read_vae(args.vae))
    fields = infer_fields(state)
    if yaml_path is not None:
        check_config_yaml(yaml_path, fields)
    if (fields["action_dim"], fields["proprio_dim"]) != (spec.action_dim, spec.state_dim):
        raise ConversionError(f"embodiment {spec.name} has action/state dims "
                              f"{spec.action_dim}/{spec.state_dim}, "
                              f"the checkpoint {fields['action_dim']}/{fields['proprio_dim']}")
    cfg = choose_config(fields, args.preset, args.horizon or spec.chunk.length)
    try:
        stats = json.loads(stats_path.read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{stats_path}: not valid JSON: {error}") from None
    Normalizer.from_stats(stats, spec.normalization.mode, spec.normalization.clamp, state_dim=spec.state_dim,
                          action_dim=spec.action_dim, source=str(stats_path))

    model = assemble_model(cfg, state, f"{args.checkpoint} + {args.vae} (package names: dit. = "
                                       f"mot.mixtures.video., expert. = state_fusion_action_expert.)")
    step = release.values.get("step")
    source = args.checkpoint.name + (f" (step {step})" if step is not None else "")
    meta = CheckpointMetadata(config=cfg, embodiment=spec.name, stats=stats,
                              instruction_encoder=args.instruction_encoder, source=source)
    model_id = save_checkpoint(args.output, model, meta, dtype=DTYPES[args.dtype])
    return _summary(args, model_id, meta, state, release, stats_path, yaml_path)


def _summary(args: argparse.Namespace, model_id: str, meta: CheckpointMetadata, state: dict[str, Tensor],
             release: PlainPickle, stats_path: Path, yaml_path: Path | None) -> list[str]:
    cfg = meta.config
    counts: dict[str, tuple[int, int]] = {}
    for key, tensor in state.items():
        tensors, params = counts.get(key_family(key), (0, 0))
        counts[key_family(key)] = (tensors + 1, params + tensor.numel())
    source_dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()})
    lines = [f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)",
             f"  model_id    {model_id}",
             f"  config      {cfg.name}: action_dim {cfg.action_dim}, proprio_dim {cfg.proprio_dim}, "
             f"horizon {cfg.horizon}",
             f"  embodiment  {meta.embodiment}, stats {stats_path}, config.yaml {yaml_path or 'not found'}",
             "  release     " + ", ".join(f"{k}={v}" for k, v in sorted(release.values.items())),
             f"  dtype       stored {args.dtype} (source tensors: {', '.join(source_dtypes)})",
             "  keys per family:"]
    lines += [f"    {family:<16} {counts[family][0]:>6} tensors {counts[family][1] / 1e6:>10.2f} M params"
              for family in FAMILIES if family in counts]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        lines = convert(args)
    except (ValueError, OSError) as error:  # ConversionError, CheckpointError, spec/stats errors
        print(f"lightwam-convert: error: {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
