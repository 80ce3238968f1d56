"""Package checkpoints: round trip, content-addressed model_id, strict errors, Wan loaders, converter."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from lightwam_ros.model.checkpoint import (
    LEGACY_POOLER_NAMES,
    CheckpointError,
    CheckpointMetadata,
    _model_id,
    _update_digest,
    empty_model,
    key_family,
    load_checkpoint,
    load_wan_dit_weights,
    load_wan_vae_weights,
    save_checkpoint,
)
from lightwam_ros.model.config import LightWAMConfig, make_config
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.lora import set_lora_merged
from lightwam_ros.tools.assets.convert import main as convert_main

ACTION_DIM, PROPRIO_DIM = 7, 8  # libero_franka
CANVAS = (32, 64)


def make_stats(state_dim: int = PROPRIO_DIM, action_dim: int = ACTION_DIM) -> dict:
    def block(dim: int) -> dict:
        return {
            "global_min": [-1.0 - i for i in range(dim)],
            "global_max": [1.0 + i for i in range(dim)],
            "global_mean": [0.1] * dim,
            "global_std": [0.5] * dim,
            "global_q01": [-0.9] * dim,
            "global_q99": [0.9] * dim,
        }

    return {"state": {"default": block(state_dim)}, "action": {"default": block(action_dim)}}


def random_model(seed: int = 0) -> LightWAM:
    """Tiny model with every parameter random, so zero-initialised LoRA/adapters count too."""
    model = LightWAM(make_config("tiny", ACTION_DIM, PROPRIO_DIM))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def make_meta(model: LightWAM, **changes) -> CheckpointMetadata:
    fields = dict(
        config=model.cfg,
        embodiment="libero_franka",
        stats=make_stats(),
        instruction_encoder="umt5-xxl",
        source="unit-test",
    )
    fields.update(changes)
    return CheckpointMetadata(**fields)


def model_inputs(model: LightWAM) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    dit = model.cfg.dit
    return (
        torch.rand(1, 3, *CANVAS, generator=generator) * 2 - 1,
        torch.randn(1, dit.text_len, dit.text_dim, generator=generator),
        torch.randn(1, PROPRIO_DIM, generator=generator),
    )


@pytest.fixture(scope="module")
def model() -> LightWAM:
    return random_model()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    return path, save_checkpoint(path, model, make_meta(model))


def read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as reader:
        return {k: reader.get_tensor(k) for k in reader.keys()}, reader.metadata()


# ------------------------------------------------------------------------------- round trip
def test_round_trip_restores_weights_outputs_and_metadata(model, saved):
    path, model_id = saved
    loaded = load_checkpoint(path, expect_embodiment="libero_franka")
    original, restored = model.state_dict(), loaded.model.state_dict()
    assert restored.keys() == original.keys()
    assert all(torch.equal(restored[k], original[k]) for k in original)
    assert loaded.meta == make_meta(model)
    assert loaded.model_id == model_id and not loaded.model.training
    with torch.no_grad():
        expected = model.infer_action(*model_inputs(model))
        actual = loaded.model.infer_action(*model_inputs(model))
    assert expected.shape == (1, 32, ACTION_DIM)
    assert torch.equal(actual, expected)


def test_loaded_buffers_are_real_and_equal_a_fresh_build(saved):
    loaded = load_checkpoint(saved[0]).model
    fresh = dict(LightWAM(loaded.cfg).named_buffers())
    for name, buffer in loaded.named_buffers():
        assert not buffer.is_meta
        assert torch.equal(buffer, fresh[name]), name


def test_model_id_is_stable_and_follows_the_weights(model, saved, tmp_path):
    _, model_id = saved
    assert re.fullmatch(r"tiny:[0-9a-f]{12}", model_id)
    again = save_checkpoint(tmp_path / "again.safetensors", model, make_meta(model, source="other"))
    assert again == model_id
    changed = random_model()
    with torch.no_grad():
        changed.expert.output[2].bias[0] += 1e-3
    assert save_checkpoint(tmp_path / "changed.safetensors", changed, make_meta(changed)) != model_id


def test_bf16_storage_and_load_dtype(model, saved, tmp_path):
    path = tmp_path / "bf16.safetensors"
    bf16_id = save_checkpoint(path, model, make_meta(model), dtype=torch.bfloat16)
    assert bf16_id != saved[1]
    tensors, _ = read_raw(path)
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert path.stat().st_size < 0.6 * saved[0].stat().st_size

    as_stored = load_checkpoint(path).model
    assert {p.dtype for p in as_stored.parameters()} == {torch.bfloat16}
    widened = load_checkpoint(path, dtype=torch.float32)
    assert widened.model_id == bf16_id
    original = model.state_dict()
    for name, tensor in widened.model.state_dict().items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, original[name].to(torch.bfloat16).float()), name
    assert as_stored.vae.latents_mean.dtype == torch.float32  # constants keep full precision


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_load_onto_cuda(model, saved):
    loaded = load_checkpoint(saved[0], device="cuda").model
    assert {t.device.type for t in [*loaded.parameters(), *loaded.buffers()]} == {"cuda"}
    with torch.no_grad():
        actual = loaded.infer_action(*(x.cuda() for x in model_inputs(model))).cpu()
        expected = model.infer_action(*model_inputs(model))
    torch.testing.assert_close(actual, expected, atol=2e-2, rtol=2e-2)  # TF32 convolutions on GPU


def test_empty_model_puts_only_parameters_on_meta():
    empty = empty_model(make_config("tiny", ACTION_DIM, PROPRIO_DIM))
    assert all(p.is_meta for p in empty.parameters())
    assert not any(b.is_meta for b in empty.buffers())
    assert not nn.Linear(2, 2).weight.is_meta  # the redirection ends with the build


# --------------------------------------------------------------------------- strict loading
def rewrite(src: Path, dst: Path, edit=None, metadata_edit=None) -> Path:
    tensors, metadata = read_raw(src)
    if edit:
        edit(tensors)
    if metadata_edit:
        metadata_edit(metadata)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


LORA_KEY = "dit.blocks.3.self_attn.lora_q.down_proj.weight"


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda t: t.pop(LORA_KEY), [r"missing 1 key", r"dit\.lora \(1\)", re.escape(LORA_KEY)]),
        (
            lambda t: t.update({"dit.blocks.0.extra.weight": torch.zeros(2)}),
            [r"unexpected 1 key", r"dit\.base \(1\)", r"dit\.blocks\.0\.extra\.weight"],
        ),
        (
            lambda t: t.update({"expert.output.2.weight": torch.zeros(9, 128)}),
            [r"1 shape mismatch", r"expert\.output\.2\.weight \(file \(9, 128\) vs model \(7, 128\)\)"],
        ),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_mismatched_tensors_are_named(saved, tmp_path, edit, expected):
    bad = rewrite(saved[0], tmp_path / "bad.safetensors", edit)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(bad)
    for pattern in expected:
        assert re.search(pattern, str(info.value)), (pattern, str(info.value))


def test_long_key_lists_are_grouped_and_truncated(saved, tmp_path):
    def drop_lora(tensors):
        for key in [k for k in tensors if key_family(k) == "dit.lora"]:
            del tensors[key]

    bad = rewrite(saved[0], tmp_path / "nolora.safetensors", drop_lora)
    expected = r"missing 600 key\(s\): dit\.lora \(600\): .*\(\+596 more\)"
    with pytest.raises(CheckpointError, match=expected) as info:
        load_checkpoint(bad)
    assert len(str(info.value)) < 1000


def test_edited_tensor_data_fails_the_hash_check(saved, tmp_path):
    def nudge(tensors):
        tensors["proprio_encoder.bias"] = tensors["proprio_encoder.bias"] + 1

    bad = rewrite(saved[0], tmp_path / "edited.safetensors", nudge)
    with pytest.raises(CheckpointError, match="corrupted or edited"):
        load_checkpoint(bad)


def test_checkpoints_written_with_the_pre_release_pooler_names_still_load(model, saved, tmp_path):
    """Files this package wrote before adopting the release's names: same weights, same id, a warning."""
    legacy_names = {new: old for old, new in LEGACY_POOLER_NAMES.items()}

    def to_legacy(tensors):
        for key in [k for k in tensors if k.startswith("expert.layer_poolers.")]:
            old = next((key.replace(new, o) for new, o in legacy_names.items() if new in key), key)
            tensors[old] = tensors.pop(key)

    def legacy_id(metadata):  # what the old save_checkpoint recorded: the hash over its own names
        tensors, _ = read_raw(legacy)
        digest = hashlib.sha256()
        for name in sorted(tensors):
            _update_digest(digest, name, tensors[name])
        metadata["model_id"] = _model_id(model.cfg.name, digest)

    legacy = rewrite(saved[0], tmp_path / "legacy.safetensors", to_legacy)
    assert "expert.layer_poolers.0.adapted.queries" in read_raw(legacy)[0]
    rewrite(legacy, legacy, metadata_edit=legacy_id)
    with pytest.warns(UserWarning, match="pre-release pooler names"):
        loaded = load_checkpoint(legacy)
    fresh = load_checkpoint(saved[0])
    with torch.no_grad():
        assert torch.equal(
            loaded.model.infer_action(*model_inputs(model)), fresh.model.infer_action(*model_inputs(model))
        )
    assert loaded.model_id == read_raw(legacy)[1]["model_id"]


def test_wrong_embodiment_is_refused(saved):
    with pytest.raises(CheckpointError, match="'libero_franka', expected 'robotwin_aloha'"):
        load_checkpoint(saved[0], expect_embodiment="robotwin_aloha")


@pytest.mark.parametrize(
    "metadata_edit, message",
    [
        (lambda m: m.clear(), "no metadata"),
        (lambda m: m.pop("stats"), r"metadata lacks \['stats'\]"),
        (lambda m: m.update(format="other/2"), "format 'other/2'"),
        (lambda m: m.update(config="{not json"), "invalid config/stats"),
        (lambda m: m.update(embodiment=""), "embodiment must be a non-empty string"),
        (
            lambda m: m.update(stats=json.dumps(make_stats(state_dim=3))),
            r"state\.default vectors must have 8",
        ),
    ],
    ids=["none", "missing-field", "format", "config", "embodiment", "stats-dims"],
)
def test_bad_metadata_is_refused(saved, tmp_path, metadata_edit, message):
    bad = rewrite(saved[0], tmp_path / "meta.safetensors", metadata_edit=metadata_edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)


def test_non_safetensors_and_missing_files_are_refused(model, tmp_path):
    pickle_path = tmp_path / "model.pt"
    torch.save(model.state_dict(), pickle_path)
    with pytest.raises(CheckpointError, match=r"not a safetensors file.*lightwam-convert"):
        load_checkpoint(pickle_path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")


def test_save_refuses_inconsistent_inputs(model, tmp_path):
    target = tmp_path / "x.safetensors"
    with pytest.raises(CheckpointError, match="differs from the model's config"):
        save_checkpoint(target, model, make_meta(model, config=make_config("tiny", ACTION_DIM, 14)))
    with pytest.raises(CheckpointError, match=r"action\.default vectors must have 7"):
        save_checkpoint(target, model, make_meta(model, stats=make_stats(action_dim=14)))
    not_json = make_stats()
    not_json["action"]["default"]["global_std"][0] = float("nan")
    with pytest.raises(CheckpointError, match="plain JSON"):
        save_checkpoint(target, model, make_meta(model, stats=not_json))
    merged = random_model()
    set_lora_merged(merged, True)
    with pytest.raises(CheckpointError, match="unmerge"):
        save_checkpoint(target, merged, make_meta(merged))
    assert not target.exists() and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------- original Wan weights
def wan_dit_tensors(source: LightWAM) -> dict[str, torch.Tensor]:
    """Original Wan2.1 DiT names: the package keys of the base DiT and head without ``dit.``."""
    return {
        k.removeprefix("dit."): v.clone()
        for k, v in source.state_dict().items()
        if key_family(k) in ("dit.base", "dit.head")
    }


def test_wan_dit_weights_load_strictly_and_leave_lora_alone():
    target, source = random_model(0), random_model(1)
    lora_before = {k: v.clone() for k, v in target.state_dict().items() if key_family(k) == "dit.lora"}
    load_wan_dit_weights(target, wan_dit_tensors(source))
    after, expected = target.state_dict(), source.state_dict()
    for key in after:
        if key_family(key) in ("dit.base", "dit.head"):
            assert torch.equal(after[key], expected[key]), key
    assert all(torch.equal(after[k], v) for k, v in lora_before.items())

    tensors = wan_dit_tensors(source)
    del tensors["blocks.7.cross_attn.k.weight"]
    with pytest.raises(CheckpointError, match=r"missing 1 key.*dit\.blocks\.7\.cross_attn\.k\.weight"):
        load_wan_dit_weights(target, tensors)
    with pytest.raises(CheckpointError, match=r"unexpected 1 key.*dit\.blocks\.0\.self_attn\.lora_q"):
        load_wan_dit_weights(
            target,
            {**wan_dit_tensors(source), "blocks.0.self_attn.lora_q.down_proj.weight": torch.zeros(4, 64)},
        )


def test_wan_vae_weights_ignore_the_decoder():
    target, source = random_model(0), random_model(1)
    original = {
        k.removeprefix("vae."): v.clone() for k, v in source.state_dict().items() if k.startswith("vae.")
    }
    load_wan_vae_weights(
        target, {**original, "decoder.conv1.weight": torch.zeros(3), "conv2.weight": torch.zeros(3)}
    )
    loaded = target.state_dict()
    assert all(torch.equal(loaded[f"vae.{k}"], v) for k, v in original.items())
    del original["encoder.head.2.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 key.*vae\.encoder\.head\.2\.bias"):
        load_wan_vae_weights(target, original)


# ---------------------------------------------------------------------------------- converter
class NotATensor:
    """Stands in for anything a checkpoint must not smuggle in."""


# The release's key list and shapes, written from the model spec (lightwam-model-spec.md, "Released
# checkpoint format") and Wan2.1's original DiT names, not from this package's modules: tiny widths,
# adapters (and so the expert's taps) at non-default layers, every key family.
SPEC = dict(
    dim=64,
    ffn=128,
    layers=30,
    text_dim=32,
    freq=256,
    rank=4,
    adapters=(3, 11, 27),
    bottleneck=16,
    queries=4,
    compress=96,
    fused=128,
    step=32,
    latent=16,
    patch=(1, 2, 2),
)
RELEASE_YAML = {
    "model": {
        "tokenizer_max_len": 128,
        "proprio_dim": "${data.train.processor.proprio_output_dim}",
        "wam_adapter": {
            "adapter_layer_indices": list(SPEC["adapters"]),
            "adapter_dim": SPEC["bottleneck"],
            "lora_rank": SPEC["rank"],
            "lora_alpha": 6.0,
        },
        "state_fusion_action_expert_config": {
            "per_layer_dim": SPEC["compress"],
            "trunk_dim": SPEC["fused"],
            "num_trunk_blocks": 1,
            "step_pos_dim": SPEC["step"],
            "token_pooling_type": "learned_query",
            "token_pooling_num_queries": SPEC["queries"],
            "token_pooling_num_heads": 4,
            "feature_sources": ["adapted"],
        },
    },
    "data": {"train": {"processor": {"action_output_dim": ACTION_DIM, "proprio_output_dim": PROPRIO_DIM}}},
}


def spec_release_shapes() -> dict[str, dict[str, tuple[int, ...]]]:
    """Section -> released key -> shape."""
    d, f, r, b = SPEC["dim"], SPEC["ffn"], SPEC["rank"], SPEC["bottleneck"]
    linear = {"weight": lambda o, i: (o, i), "bias": lambda o, i: (o,)}
    mot: dict[str, tuple[int, ...]] = {
        "patch_embedding.weight": (d, SPEC["latent"], *SPEC["patch"]),
        "patch_embedding.bias": (d,),
        "head.modulation": (1, 2, d),
        "head.head.weight": (SPEC["latent"] * 4, d),
        "head.head.bias": (SPEC["latent"] * 4,),
    }
    for name, out_dim, in_dim in (
        ("text_embedding.0", d, SPEC["text_dim"]),
        ("text_embedding.2", d, d),
        ("time_embedding.0", d, SPEC["freq"]),
        ("time_embedding.2", d, d),
        ("time_projection.1", 6 * d, d),
    ):
        mot.update({f"{name}.{p}": shape(out_dim, in_dim) for p, shape in linear.items()})
    for n in range(SPEC["layers"]):
        blk = f"blocks.{n}"
        mot[f"{blk}.modulation"] = (1, 6, d)
        mot.update({f"{blk}.norm3.weight": (d,), f"{blk}.norm3.bias": (d,)})
        for attn in ("self_attn", "cross_attn"):
            for proj in "qkvo":
                mot.update({f"{blk}.{attn}.{proj}.{p}": shape(d, d) for p, shape in linear.items()})
                mot[f"{blk}.{attn}.lora_{proj}.down_proj.weight"] = (r, d)
                mot[f"{blk}.{attn}.lora_{proj}.up_proj.weight"] = (d, r)
            mot.update({f"{blk}.{attn}.norm_q.weight": (d,), f"{blk}.{attn}.norm_k.weight": (d,)})
        for name, out_dim, in_dim in (("ffn.0", f, d), ("ffn.2", d, f)):
            mot.update({f"{blk}.{name}.{p}": shape(out_dim, in_dim) for p, shape in linear.items()})
        for name, out_dim, in_dim in (("ffn_lora_in", f, d), ("ffn_lora_out", d, f)):
            mot[f"{blk}.{name}.down_proj.weight"] = (r, in_dim)
            mot[f"{blk}.{name}.up_proj.weight"] = (out_dim, r)
    for layer in SPEC["adapters"]:
        ad = f"wam_adapters.{layer}"
        mot.update(
            {
                f"{ad}.norm.weight": (d,),
                f"{ad}.norm.bias": (d,),
                f"{ad}.down_proj.weight": (b, d),
                f"{ad}.down_proj.bias": (b,),
                f"{ad}.up_proj.weight": (d, b),
                f"{ad}.up_proj.bias": (d,),
            }
        )
    c, fu, st = SPEC["compress"], SPEC["fused"], SPEC["step"]
    expert: dict[str, tuple[int, ...]] = {}
    for i in range(len(SPEC["adapters"])):
        pool = f"layer_poolers.{i}.adapted"
        expert.update(
            {
                f"{pool}.query_tokens": (SPEC["queries"], d),
                f"{pool}.query_merge_logits": (SPEC["queries"],),
                f"{pool}.token_norm.weight": (d,),
                f"{pool}.token_norm.bias": (d,),
                f"{pool}.attn.in_proj_weight": (3 * d, d),
                f"{pool}.attn.in_proj_bias": (3 * d,),
                f"{pool}.attn.out_proj.weight": (d, d),
                f"{pool}.attn.out_proj.bias": (d,),
                f"{pool}.output_norm.weight": (d,),
                f"{pool}.output_norm.bias": (d,),
            }
        )
        comp = f"layer_compressors.{i}"
        expert.update({f"{comp}.norm.weight": (d,), f"{comp}.norm.bias": (d,)})
        for name, out_dim, in_dim in (("fc1", c, d), ("fc2", c, c)):
            expert.update({f"{comp}.{name}.{p}": shape(out_dim, in_dim) for p, shape in linear.items()})
    n_taps = len(SPEC["adapters"])
    for name, out_dim, in_dim in (
        ("fused_proj", fu, n_taps * c),
        ("trunk.0.fc1", fu, fu),
        ("trunk.0.fc2", fu, fu),
        ("step_pos_proj.1", fu, st),
        ("step_pos_proj.3", fu, fu),
        ("output.0", fu, fu),
        ("output.2", ACTION_DIM, fu),
    ):
        expert.update({f"{name}.{p}": shape(out_dim, in_dim) for p, shape in linear.items()})
    for name, width in (
        ("fused_norm", n_taps * c),
        ("trunk.0.norm", fu),
        ("step_pos_proj.0", st),
        ("output_norm", fu),
    ):
        expert.update({f"{name}.weight": (width,), f"{name}.bias": (width,)})
    proprio = {"weight": (SPEC["text_dim"], PROPRIO_DIM), "bias": (SPEC["text_dim"],)}
    return {
        "mot": {f"mixtures.video.{k}": v for k, v in mot.items()},
        "state_fusion_action_expert": expert,
        "proprio_encoder": proprio,
    }


def spec_release(seed: int = 0) -> dict:
    """The authors' .pt layout with random tensors: bf16 DiT, float32 expert and proprio sections."""
    generator = torch.Generator().manual_seed(seed)
    layout: dict = {"step": 1234, "torch_dtype": torch.bfloat16}
    for section, shapes in spec_release_shapes().items():
        dtype = torch.bfloat16 if section == "mot" else torch.float32
        layout[section] = {
            k: (torch.randn(shape, generator=generator) * 0.1).to(dtype) for k, shape in shapes.items()
        }
    return layout


def spec_config() -> LightWAMConfig:
    """What the spec release is: tiny, with the taps, LoRA alpha and pooling heads it declares."""
    tiny = make_config("tiny", ACTION_DIM, PROPRIO_DIM)
    return dataclasses.replace(
        tiny,
        name="custom",
        adapter=dataclasses.replace(tiny.adapter, layers=SPEC["adapters"]),
        lora=dataclasses.replace(tiny.lora, alpha=6.0),
        expert=dataclasses.replace(tiny.expert, num_heads=4),
    )


@pytest.fixture()
def release(model, tmp_path) -> dict:
    """A release folder: run/{dataset_stats.json, config.yaml, checkpoints/weights/step_1234.pt}, VAE."""
    run = tmp_path / "run"
    weights = run / "checkpoints" / "weights"
    weights.mkdir(parents=True)
    (run / "dataset_stats.json").write_text(json.dumps(make_stats()))
    (run / "config.yaml").write_text(yaml.safe_dump(RELEASE_YAML))
    layout = spec_release()
    torch.save(layout, weights / "step_1234.pt")
    vae = {k.removeprefix("vae."): v for k, v in model.state_dict().items() if k.startswith("vae.")}
    vae["decoder.conv1.weight"] = torch.zeros(4, 3)
    torch.save(vae, tmp_path / "Wan2.1_VAE.pth")
    return {
        "pt": weights / "step_1234.pt",
        "vae": tmp_path / "Wan2.1_VAE.pth",
        "layout": layout,
        "vae_state": vae,
        "out": tmp_path / "out" / "converted.safetensors",
        "run": run,
    }


def convert_args(release: dict, *extra: str) -> list[str]:
    return [
        str(release["pt"]),
        "--vae",
        str(release["vae"]),
        "--embodiment",
        "libero_franka",
        "-o",
        str(release["out"]),
        *extra,
    ]


def released_state(release: dict) -> dict[str, torch.Tensor]:
    """The release's tensors under package keys: section prefixes swapped, nothing else renamed."""
    layout = release["layout"]
    state = {f"dit.{k.removeprefix('mixtures.video.')}": v for k, v in layout["mot"].items()}
    state.update({f"expert.{k}": v for k, v in layout["state_fusion_action_expert"].items()})
    state.update({f"proprio_encoder.{k}": v for k, v in layout["proprio_encoder"].items()})
    state.update({f"vae.{k}": v for k, v in release["vae_state"].items() if not k.startswith("decoder.")})
    return state


def test_converter_places_every_released_tensor_and_acts_as_the_release(release, capsys):
    assert convert_main(convert_args(release, "--dtype", "float32")) == 0
    summary = capsys.readouterr().out
    loaded = load_checkpoint(release["out"], expect_embodiment="libero_franka")
    assert loaded.model_id in summary and "dit.lora" in summary
    # Taps, LoRA rank from the shapes; LoRA alpha and pooling heads from config.yaml.
    assert loaded.meta.config == spec_config()
    assert loaded.meta.stats == make_stats() and loaded.meta.instruction_encoder == "umt5-xxl"
    assert loaded.meta.source == "step_1234.pt (step 1234)"

    expected = released_state(release)
    converted = loaded.model.state_dict()
    assert converted.keys() == expected.keys()  # every tensor placed, no rename table
    for key, tensor in expected.items():
        assert torch.equal(converted[key], tensor.float()), key

    direct = LightWAM(spec_config())  # the same weights, loaded straight into the model
    direct.load_state_dict({k: v.float() for k, v in expected.items()}, strict=True)
    inputs = model_inputs(direct)
    with torch.no_grad():
        assert torch.equal(loaded.model.infer_action(*inputs), direct.eval().infer_action(*inputs))


def test_converter_names_what_it_cannot_place(release, capsys):
    layout = release["layout"]
    layout["state_fusion_action_expert"]["layer_poolers.0.adapted.queries"] = layout[
        "state_fusion_action_expert"
    ].pop("layer_poolers.0.adapted.query_tokens")
    torch.save(layout, release["pt"])
    assert convert_main(convert_args(release)) == 1
    assert "'expert.layer_poolers.0.adapted.query_tokens' is missing" in capsys.readouterr().err

    layout["state_fusion_action_expert"]["layer_poolers.0.adapted.query_tokens"] = torch.zeros(4, 64)
    layout["state_fusion_action_expert"]["trunk.1.fc1.weight"] = torch.zeros(2, 2)
    torch.save(layout, release["pt"])
    assert convert_main(convert_args(release)) == 1
    error = capsys.readouterr().err
    assert "unexpected 2 key(s)" in error and "expert.layer_poolers.0.adapted.queries" in error
    assert "expert.trunk.1.fc1.weight" in error
    assert not release["out"].exists()


def test_converter_checks_config_yaml_against_the_shapes(release, capsys):
    tree = json.loads(json.dumps(RELEASE_YAML))
    tree["model"]["wam_adapter"]["adapter_layer_indices"] = [8, 16, 24]
    (release["run"] / "config.yaml").write_text(yaml.safe_dump(tree))
    assert convert_main(convert_args(release)) == 1
    assert (
        "adapter_layer_indices is (8, 16, 24) but the checkpoint's tensors give adapter.layers = "
        "(3, 11, 27)" in capsys.readouterr().err
    )
    tree = json.loads(json.dumps(RELEASE_YAML))
    tree["model"]["state_fusion_action_expert_config"]["num_trunk_blocks"] = 2
    (release["run"] / "config.yaml").write_text(yaml.safe_dump(tree))
    assert convert_main(convert_args(release)) == 1
    assert "num_trunk_blocks is 2; this package implements 1 only" in capsys.readouterr().err
    assert not release["out"].exists()


def test_converter_stores_bf16_by_default(release):
    assert convert_main(convert_args(release)) == 0
    tensors, metadata = read_raw(release["out"])
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert metadata["embodiment"] == "libero_franka"


@pytest.mark.parametrize(
    "smuggled, reason",
    [
        (NotATensor(), "NotATensor"),
        (print, "print"),
    ],
    ids=["class-instance", "function"],
)
def test_converter_refuses_pickled_objects(model, release, capsys, smuggled, reason):
    torch.save({**release["layout"], "extra": smuggled}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    error = capsys.readouterr().err
    assert "refused by the weights-only unpickler" in error
    assert re.search(rf"references (\S+\.)?{reason},", error)
    assert str(release["pt"]) in error
    assert "weights_only=False" not in error  # never advise the unsafe route
    assert not release["out"].exists()


@pytest.mark.parametrize("value, kind", [([1, 2], "list"), (0.5, "float"), (None, "NoneType")])
def test_converter_refuses_unexpected_plain_types(model, release, capsys, value, kind):
    torch.save({**release["layout"], "extra": {"nested": value}}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    error = capsys.readouterr().err
    assert f"entry 'extra.nested' is a {kind}" in error
    assert not release["out"].exists()


def test_converter_checks_dims_side_files_and_output(release, capsys):
    assert (
        convert_main(
            convert_args(release)[:-4] + ["--embodiment", "robotwin_aloha", "-o", str(release["out"])]
        )
        == 1
    )
    assert "action/state dims 14/14, the checkpoint 7/8" in capsys.readouterr().err

    assert convert_main(convert_args(release, "--preset", "wan2.1-1.3b")) == 1
    assert (
        "does not make a valid wan2.1-1.3b model: DiTConfig.dim=64 is not divisible by "
        "num_heads=12" in capsys.readouterr().err
    )

    (release["run"] / "config.yaml").write_text(yaml.safe_dump({"action_dim": 14}))
    assert convert_main(convert_args(release)) == 1
    assert "action_dim [14] disagrees" in capsys.readouterr().err

    (release["run"] / "config.yaml").unlink()
    (release["run"] / "dataset_stats.json").unlink()
    assert convert_main(convert_args(release)) == 1
    assert "dataset_stats.json not found" in capsys.readouterr().err
    assert not release["out"].exists()

    (release["run"] / "dataset_stats.json").write_text(json.dumps(make_stats()))
    assert convert_main(convert_args(release)) == 0
    assert convert_main(convert_args(release)) == 1
    assert "--overwrite" in capsys.readouterr().err


def test_converter_reads_legacy_pickles_and_reports_unreadable_files(model, release, capsys):
    torch.save(release["layout"], release["pt"], _use_new_zipfile_serialization=False)
    assert convert_main(convert_args(release)) == 0
    capsys.readouterr()
    release["out"] = release["out"].with_name("garbage.safetensors")
    for garbage, reason in (
        ("not a checkpoint", "damaged: Unsupported operand"),
        ("hello world", "not a readable torch checkpoint"),
    ):
        release["pt"].write_text(garbage)
        assert convert_main(convert_args(release)) == 1
        assert reason in capsys.readouterr().err
    assert not release["out"].exists()


def test_converter_refuses_tensors_outside_the_release_sections(model, release, capsys):
    torch.save({**release["layout"], "optimizer": {"exp_avg": torch.zeros(2)}}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    assert "optimizer.exp_avg" in capsys.readouterr().err
