"""lightwam-convert: released Light-WAM checkpoint -> the package's safetensors checkpoint.

Inputs: the authors' ``.pt`` (a torch pickle: ``mot`` = the whole DiT under ``mixtures.video.``,
``state_fusion_action_expert``, ``proprio_encoder``, ``step``, ``torch_dtype``), the Wan2.1 VAE
(``Wan2.1_VAE.pth`` or a safetensors file with the original keys) and ``dataset_stats.json``
(plus, if present, ``config.yaml``), both looked up in the checkpoint's parent directories when
not given. This is the project's only pickle reader: ``torch.load(weights_only=True)``, and the
result must be nested dicts of tensors, ints, strings and dtypes, or nothing is written.
The release and the package share one vocabulary: tensors keep their released names, only the
section prefixes change. The model's shape is read from the checkpoint itself (widths, tapped
layers, LoRA rank, action and proprio sizes) and from the run's ``config.yaml`` (what shapes
cannot tell: LoRA alpha, pooling heads, instruction length); a preset supplies the rest (head
count, VAE layout), and what disagrees is named. Runs offline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from lightwam_ros.model.checkpoint import (
    FAMILIES,
    CheckpointMetadata,
    assemble_model,
    key_family,
    save_checkpoint,
    wan_vae_state,
)
from lightwam_ros.model.config import PRESETS, LightWAMConfig, make_config
from lightwam_ros.model.instructions import DEFAULT_INSTRUCTION_ENCODER
from lightwam_ros.policy.canvas import canvas_layout
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.normalization import Normalizer

# Released section prefix -> package prefix.
RELEASE_PREFIXES = {
    "mot.mixtures.video.": "dit.",
    "state_fusion_action_expert.": "expert.",
    "proprio_encoder.": "proprio_encoder.",
}
STATS_FILE = "dataset_stats.json"
CONFIG_FILE = "config.yaml"
SIDE_FILE_SEARCH_LEVELS = 4  # the checkpoint's folder and its 3 nearest ancestors
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}

# Config fields read off tensor shapes: field (dotted, as in LightWAMConfig.to_dict()) -> (key, axis).
SHAPE_PROBES: dict[str, tuple[str, int]] = {
    "dit.dim": ("dit.patch_embedding.weight", 0),
    "dit.in_channels": ("dit.patch_embedding.weight", 1),
    "dit.ffn_dim": ("dit.blocks.0.ffn.0.weight", 0),
    "dit.text_dim": ("dit.text_embedding.0.weight", 1),
    "dit.freq_dim": ("dit.time_embedding.0.weight", 1),
    "lora.rank": ("dit.blocks.0.self_attn.lora_q.down_proj.weight", 0),
    "expert.num_queries": ("expert.layer_poolers.0.adapted.query_tokens", 0),
    "expert.compress_dim": ("expert.layer_compressors.0.fc1.weight", 0),
    "expert.fused_dim": ("expert.fused_proj.weight", 0),
    "expert.step_embed_dim": ("expert.step_pos_proj.1.weight", 1),
    "vae.base_dim": ("vae.encoder.conv1.weight", 0),
    "action_dim": ("expert.output.2.weight", 0),
    "proprio_dim": ("proprio_encoder.weight", 1),
}
# Config fields in the authors' training config.yaml (under ``model:``, Hydra's resolved dump).
YAML_FIELDS: dict[str, str] = {
    "adapter.layers": "wam_adapter.adapter_layer_indices",
    "adapter.bottleneck": "wam_adapter.adapter_dim",
    "lora.rank": "wam_adapter.lora_rank",
    "lora.alpha": "wam_adapter.lora_alpha",
    "expert.num_queries": "state_fusion_action_expert_config.token_pooling_num_queries",
    "expert.num_heads": "state_fusion_action_expert_config.token_pooling_num_heads",
    "expert.compress_dim": "state_fusion_action_expert_config.per_layer_dim",
    "expert.fused_dim": "state_fusion_action_expert_config.trunk_dim",
    "expert.step_embed_dim": "state_fusion_action_expert_config.step_pos_dim",
    "dit.text_len": "tokenizer_max_len",
    "proprio_dim": "proprio_dim",
}
# Released variants this package's model does not implement: config.yaml key -> the value it needs.
YAML_REQUIREMENTS: dict[str, Any] = {
    "state_fusion_action_expert_config.num_trunk_blocks": 1,
    "state_fusion_action_expert_config.token_pooling_type": "learned_query",
    "state_fusion_action_expert_config.feature_sources": ["adapted"],
}
YAML_DIM_KEYS = ("action_dim", "proprio_dim")  # anywhere in config.yaml (data processors too)


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
    except Exception as error:  # noqa: BLE001 - torch.load reports damaged input through many types
        if "Weights only load failed" in str(error):
            raise ConversionError(
                f"{path}: refused by the weights-only unpickler "
                f"({_rejection_reason(error)}); nothing was loaded or written"
            ) from None
        raise ConversionError(
            f"{path}: not a readable torch checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(obj, dict):
        raise ConversionError(f"{path}: expected a dict at the top level, got {type(obj).__name__}")
    result = PlainPickle({}, {})
    _flatten(obj, "", result, path)
    return result


def _flatten(node: dict, prefix: str, out: PlainPickle, path: Path) -> None:
    for key, value in node.items():
        if not isinstance(key, str):
            raise ConversionError(
                f"{path}: refused: non-string key {key!r} under {prefix or 'the top level'!r}"
            )
        name = prefix + key
        if isinstance(value, dict):
            _flatten(value, name + ".", out, path)
        elif isinstance(value, Tensor):
            out.tensors[name] = value
        elif isinstance(value, (int, str, torch.dtype)):
            out.values[name] = value
        else:
            raise ConversionError(
                f"{path}: refused: entry {name!r} is a {type(value).__name__}; only "
                f"tensors, ints, strings, torch dtypes and nested dicts are accepted"
            )


def release_state(release: PlainPickle, path: Path) -> dict[str, Tensor]:
    """Rename the released tensors to package keys (``dit.*``, ``expert.*``, ``proprio_encoder.*``)."""
    state: dict[str, Tensor] = {}
    stray = []
    for name, tensor in release.tensors.items():
        prefix = next((p for p in RELEASE_PREFIXES if name.startswith(p)), None)
        if prefix is None:
            stray.append(name)
        else:
            state[RELEASE_PREFIXES[prefix] + name[len(prefix) :]] = tensor
    if stray:
        shown = ", ".join(sorted(stray)[:8])
        raise ConversionError(
            f"{path}: {len(stray)} tensor(s) outside the known sections {sorted(RELEASE_PREFIXES)}: {shown}"
        )
    for prefix, target in RELEASE_PREFIXES.items():
        if not any(k.startswith(target) for k in state):
            raise ConversionError(
                f"{path}: no tensors under {prefix.rstrip('.')!r}; not a released Light-WAM checkpoint"
            )
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
            raise ConversionError(
                f"{path}: expected only tensors in the VAE file, also found {sorted(vae.values)}"
            )
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


def _yaml_value(tree: dict, dotted: str) -> Any:
    """The value at ``dotted`` under ``model:`` (or the top level); None when absent or still an
    unresolved ``${...}`` interpolation."""
    for root in (tree.get("model"), tree):
        node: Any = root
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and not (isinstance(node, str) and node.startswith("${")):
            return node
    return None


def read_config_yaml(path: Path, shape_fields: dict[str, Any]) -> dict[str, Any]:
    """Config fields the training config.yaml declares, checked against the tensor shapes;
    refuses a released variant this model does not implement."""
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConversionError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(tree, dict):
        raise ConversionError(f"{path}: expected a mapping at the top level")
    for key in YAML_DIM_KEYS:
        declared = _yaml_ints(tree, key)
        if declared and declared != {shape_fields[key]}:
            raise ConversionError(
                f"{path}: {key} {sorted(declared)} disagrees with the checkpoint's "
                f"tensors ({shape_fields[key]})"
            )
    for key, needed in YAML_REQUIREMENTS.items():
        value = _yaml_value(tree, key)
        if value is not None and value != needed:
            raise ConversionError(
                f"{path}: model.{key} is {value!r}; this package implements {needed!r} only"
            )
    fields: dict[str, Any] = {}
    for field, key in YAML_FIELDS.items():
        value = _yaml_value(tree, key)
        if value is None:
            continue
        value = tuple(value) if isinstance(value, list) else value
        if field in shape_fields and shape_fields[field] != value:
            raise ConversionError(
                f"{path}: model.{key} is {value!r} but the checkpoint's tensors "
                f"give {field} = {shape_fields[field]!r}"
            )
        fields[field] = value
    return fields


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
    patch = _tensor_shape(state, "dit.patch_embedding.weight", "dit.patch_size")[2:]
    head_rows = _tensor_shape(state, "dit.head.head.weight", "dit.out_channels")[0]
    fields["dit.num_layers"] = max(blocks) + 1
    fields["dit.patch_size"] = patch
    fields["dit.out_channels"] = head_rows // math.prod(patch)
    fields["adapter.layers"] = tuple(adapters)
    fields["adapter.bottleneck"] = _tensor_shape(
        state, f"dit.wam_adapters.{adapters[0]}.down_proj.weight", "adapter.bottleneck"
    )[0]
    return fields


def base_preset(dim: int, preset: str | None) -> str:
    """The preset that supplies what neither shapes nor config.yaml tell (head count, VAE layout):
    the named one, or the only one of the checkpoint's DiT width."""
    if preset is not None:
        return preset
    fitting = sorted(name for name, p in PRESETS.items() if p.dit.dim == dim)
    if len(fitting) == 1:
        return fitting[0]
    if fitting:
        raise ConversionError(f"presets {fitting} all have DiT width {dim}; name one with --preset")
    widths = {name: p.dit.dim for name, p in sorted(PRESETS.items())}
    raise ConversionError(
        f"no preset has the checkpoint's DiT width {dim} (presets: {widths}); "
        f"name the one whose head count and VAE layout apply with --preset"
    )


def build_config(fields: dict[str, Any], preset: str, horizon: int) -> LightWAMConfig:
    """``preset``'s config with every field the checkpoint and its config.yaml fix replaced; named
    after the preset only when nothing differs from it."""
    base = make_config(preset, fields["action_dim"], fields["proprio_dim"], horizon)
    sections: dict[str, dict[str, Any]] = {}
    for field, value in fields.items():
        if "." in field:
            section, name = field.split(".")
            sections.setdefault(section, {})[name] = value
    try:
        replaced = {
            section: dataclasses.replace(getattr(base, section), **values)
            for section, values in sections.items()
        }
        cfg = dataclasses.replace(base, **replaced, name="custom")
    except ValueError as error:
        raise ConversionError(
            f"the checkpoint's shape does not make a valid {preset} model: {error}"
        ) from None
    return dataclasses.replace(cfg, name=preset) if cfg == dataclasses.replace(base, name="custom") else cfg


# ---------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightwam-convert", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="released Light-WAM .pt file")
    parser.add_argument("--vae", type=Path, required=True, help="Wan2.1_VAE.pth (or .safetensors)")
    parser.add_argument("--embodiment", required=True, help="embodiment name or YAML (e.g. libero_franka)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="package .safetensors to write")
    parser.add_argument("--stats", type=Path, help=f"{STATS_FILE} (default: found next to the checkpoint)")
    parser.add_argument(
        "--config-yaml", type=Path, help=f"training {CONFIG_FILE} (default: found next to the checkpoint)"
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="preset for what the checkpoint cannot tell: head count, VAE layout "
        "(default: the one of the checkpoint's DiT width)",
    )
    parser.add_argument("--horizon", type=int, help="action chunk length (default: the embodiment's chunk)")
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        default="bfloat16",
        help="storage dtype of floating-point weights (default bfloat16, as released)",
    )
    parser.add_argument(
        "--instruction-encoder",
        default=DEFAULT_INSTRUCTION_ENCODER,
        help="text encoder the instruction embeddings come from",
    )
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
        raise ConversionError(
            f"{STATS_FILE} not found in {args.checkpoint.resolve().parent} or its "
            f"{SIDE_FILE_SEARCH_LEVELS - 1} nearest parents; pass --stats"
        )
    yaml_path = _side_file(args.config_yaml, args.checkpoint, CONFIG_FILE)
    spec = load_embodiment(args.embodiment)

    release = read_plain_pickle(args.checkpoint)
    state = release_state(release, args.checkpoint)
    state.update(read_vae(args.vae))
    fields = infer_fields(state)
    if yaml_path is not None:
        fields.update(read_config_yaml(yaml_path, fields))
    if (fields["action_dim"], fields["proprio_dim"]) != (spec.action_dim, spec.state_dim):
        raise ConversionError(
            f"embodiment {spec.name} has action/state dims "
            f"{spec.action_dim}/{spec.state_dim}, "
            f"the checkpoint {fields['action_dim']}/{fields['proprio_dim']}"
        )
    cfg = build_config(fields, base_preset(fields["dit.dim"], args.preset), args.horizon or spec.chunk.length)
    try:
        stats = json.loads(stats_path.read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{stats_path}: not valid JSON: {error}") from None
    Normalizer.from_stats(
        stats,
        spec.normalization.mode,
        spec.normalization.clamp,
        state_dim=spec.state_dim,
        action_dim=spec.action_dim,
        source=str(stats_path),
    )

    model = assemble_model(
        cfg,
        state,
        f"{args.checkpoint} + {args.vae} (package names: dit. = "
        f"mot.mixtures.video., expert. = state_fusion_action_expert.; "
        f"model shape: {cfg.to_dict()})",
    )
    step = release.values.get("step")
    source = args.checkpoint.name + (f" (step {step})" if step is not None else "")
    meta = CheckpointMetadata(
        config=cfg,
        embodiment=spec.name,
        stats=stats,
        instruction_encoder=args.instruction_encoder,
        source=source,
        canvas=canvas_layout(spec),
    )
    model_id = save_checkpoint(args.output, model, meta, dtype=DTYPES[args.dtype])
    return _summary(args, model_id, meta, state, release, stats_path, yaml_path)


def _summary(
    args: argparse.Namespace,
    model_id: str,
    meta: CheckpointMetadata,
    state: dict[str, Tensor],
    release: PlainPickle,
    stats_path: Path,
    yaml_path: Path | None,
) -> list[str]:
    cfg = meta.config
    counts: dict[str, tuple[int, int]] = {}
    for key, tensor in state.items():
        tensors, params = counts.get(key_family(key), (0, 0))
        counts[key_family(key)] = (tensors + 1, params + tensor.numel())
    source_dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in state.values()})
    lines = [
        f"wrote {args.output} ({args.output.stat().st_size / 2**20:.1f} MiB)",
        f"  model_id    {model_id}",
        f"  config      {cfg.name}: action_dim {cfg.action_dim}, proprio_dim {cfg.proprio_dim}, "
        f"horizon {cfg.horizon}",
        f"  embodiment  {meta.embodiment}, stats {stats_path}, config.yaml {yaml_path or 'not found'}",
        "  release     " + ", ".join(f"{k}={v}" for k, v in sorted(release.values.items())),
        f"  dtype       stored {args.dtype} (source tensors: {', '.join(source_dtypes)})",
        "  keys per family:",
    ]
    lines += [
        f"    {family:<16} {counts[family][0]:>6} tensors {counts[family][1] / 1e6:>10.2f} M params"
        for family in FAMILIES
        if family in counts
    ]
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
