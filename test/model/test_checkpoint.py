"""Package checkpoints: round trip, content-addressed model_id, strict errors, Wan loaders, converter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from lightwam_ros.model.checkpoint import (CheckpointError, CheckpointMetadata, empty_model, key_family,
                                           load_checkpoint, load_wan_dit_weights, load_wan_vae_weights,
                                           save_checkpoint)
from lightwam_ros.model.config import make_config
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.lora import set_lora_merged
from lightwam_ros.tools.assets.convert import main as convert_main

ACTION_DIM, PROPRIO_DIM = 7, 8  # libero_franka
CANVAS = (32, 64)


def make_stats(state_dim: int = PROPRIO_DIM, action_dim: int = ACTION_DIM) -> dict:
    def block(dim: int) -> dict:
        return {"global_min": [-1.0 - i for i in range(dim)], "global_max": [1.0 + i for i in range(dim)],
                "global_mean": [0.1] * dim, "global_std": [0.5] * dim,
                "global_q01": [-0.9] * dim, "global_q99": [0.9] * dim}
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
    fields = dict(config=model.cfg, embodiment="libero_franka", stats=make_stats(),
                  instruction_encoder="umt5-xxl", source="unit-test")
    fields.update(changes)
    return CheckpointMetadata(**fields)


def model_inputs(model: LightWAM) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(1)
    dit = model.cfg.dit
    return (torch.rand(1, 3, *CANVAS, generator=generator) * 2 - 1,
            torch.randn(1, dit.text_len, dit.text_dim, generator=generator),
            torch.randn(1, PROPRIO_DIM, generator=generator))


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
    path, model_id = saved
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


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.pop(LORA_KEY), [r"missing 1 key", r"dit\.lora \(1\)", re.escape(LORA_KEY)]),
    (lambda t: t.update({"dit.blocks.0.extra.weight": torch.zeros(2)}),
     [r"unexpected 1 key", r"dit\.base \(1\)", r"dit\.blocks\.0\.extra\.weight"]),
    (lambda t: t.update({"expert.output.2.weight": torch.zeros(9, 128)}),
     [r"1 shape mismatch", r"expert\.output\.2\.weight \(file \(9, 128\) vs model \(7, 128\)\)"]),
], ids=["missing", "unexpected", "shape"])
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


def test_wrong_embodiment_is_refused(saved):
    with pytest.raises(CheckpointError, match="'libero_franka', expected 'robotwin_aloha'"):
        load_checkpoint(saved[0], expect_embodiment="robotwin_aloha")


@pytest.mark.parametrize("metadata_edit, message", [
    (lambda m: m.clear(), "no metadata"),
    (lambda m: m.pop("stats"), r"metadata lacks \['stats'\]"),
    (lambda m: m.update(format="other/2"), "format 'other/2'"),
    (lambda m: m.update(config="{not json"), "invalid config/stats"),
    (lambda m: m.update(embodiment=""), "embodiment must be a non-empty string"),
    (lambda m: m.update(stats=json.dumps(make_stats(state_dim=3))), r"state\.default vectors must have 8"),
], ids=["none", "missing-field", "format", "config", "embodiment", "stats-dims"])
def test_bad_metadata_is_refused(saved, tmp_path, metadata_edit, message):
    bad = rewrite(saved[0], tmp_path / "meta.safetensors", metadata_edit=metadata_edit)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)


def test_non_safetensors_and_missing_files_are_refused(model, tmp_path):
    pickle_path = tmp_path / "model.pt"
    torch.save(model.state_dict(), pickle_path)
    with pytest.raises(CheckpointError, match="not a safetensors file.*lightwam-convert"):
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
    return {k.removeprefix("dit."): v.clone() for k, v in source.state_dict().items()
            if key_family(k) in ("dit.base", "dit.head")}


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
        load_wan_dit_weights(target, {**wan_dit_tensors(source),
                                      "blocks.0.self_attn.lora_q.down_proj.weight": torch.zeros(4, 64)})


def test_wan_vae_weights_ignore_the_decoder():
    target, source = random_model(0), random_model(1)
    original = {k.removeprefix("vae."): v.clone() for k, v in source.state_dict().items()
                if k.startswith("vae.")}
    load_wan_vae_weights(target, {**original, "decoder.conv1.weight": torch.zeros(3),
                                  "conv2.weight": torch.zeros(3)})
    loaded = target.state_dict()
    assert all(torch.equal(loaded[f"vae.{k}"], v) for k, v in original.items())
    del original["encoder.head.2.bias"]
    with pytest.raises(CheckpointError, match=r"missing 1 key.*vae\.encoder\.head\.2\.bias"):
        load_wan_vae_weights(target, original)


# ---------------------------------------------------------------------------------- converter
class NotATensor:
    """Stands in for anything a checkpoint must not smuggle in."""


def release_layout(model: LightWAM) -> dict:
    """The authors' .pt layout: bf16 DiT under mixtures.video., expert and proprio sections."""
    state = model.state_dict()
    return {
        "mot": {f"mixtures.video.{k.removeprefix('dit.')}": v.to(torch.bfloat16)
                for k, v in state.items() if k.startswith("dit.")},
        "state_fusion_action_expert": {k.removeprefix("expert."): v for k, v in state.items()
                                       if k.startswith("expert.")},
        "proprio_encoder": {"weight": state["proprio_encoder.weight"], "bias": state["proprio_encoder.bias"]},
        "step": 1234,
        "torch_dtype": torch.bfloat16,
    }


@pytest.fixture()
def release(model, tmp_path) -> dict:
    """A release folder: run/{dataset_stats.json, config.yaml, checkpoints/weights/step_1234.pt}, VAE."""
    run = tmp_path / "run"
    weights = run / "checkpoints" / "weights"
    weights.mkdir(parents=True)
    (run / "dataset_stats.json").write_text(json.dumps(make_stats()))
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"action_dim": ACTION_DIM,
                                                               "proprio_dim": PROPRIO_DIM}}))
    torch.save(release_layout(model), weights / "step_1234.pt")
    vae = {k.removeprefix("vae."): v for k, v in model.state_dict().items() if k.startswith("vae.")}
    vae["decoder.conv1.weight"] = torch.zeros(4, 3)
    torch.save(vae, tmp_path / "Wan2.1_VAE.pth")
    return {"pt": weights / "step_1234.pt", "vae": tmp_path / "Wan2.1_VAE.pth",
            "out": tmp_path / "out" / "converted.safetensors", "run": run}


def convert_args(release: dict, *extra: str) -> list[str]:
    return [str(release["pt"]), "--vae", str(release["vae"]), "--embodiment", "libero_franka",
            "-o", str(release["out"]), *extra]


def test_converter_reproduces_every_released_tensor(model, release, capsys):
    assert convert_main(convert_args(release, "--dtype", "float32")) == 0
    summary = capsys.readouterr().out
    loaded = load_checkpoint(release["out"], expect_embodiment="libero_franka")
    assert loaded.model_id in summary and "dit.lora" in summary
    assert loaded.meta.config == make_config("tiny", ACTION_DIM, PROPRIO_DIM)
    assert loaded.meta.stats == make_stats() and loaded.meta.instruction_encoder == "umt5-xxl"
    assert loaded.meta.source == "step_1234.pt (step 1234)"

    source = release_layout(model)
    expected = {f"dit.{k.removeprefix('mixtures.video.')}": v for k, v in source["mot"].items()}
    expected.update({f"expert.{k}": v for k, v in source["state_fusion_action_expert"].items()})
    expected.update({f"proprio_encoder.{k}": v for k, v in source["proprio_encoder"].items()})
    expected.update({k: v for k, v in model.state_dict().items() if k.startswith("vae.")})
    converted = loaded.model.state_dict()
    assert converted.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(converted[key], tensor.float()), key


def test_converter_stores_bf16_by_default(release):
    assert convert_main(convert_args(release)) == 0
    tensors, metadata = read_raw(release["out"])
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    assert metadata["embodiment"] == "libero_franka"


@pytest.mark.parametrize("smuggled, reason", [
    (NotATensor(), "NotATensor"),
    (print, "print"),
], ids=["class-instance", "function"])
def test_converter_refuses_pickled_objects(model, release, capsys, smuggled, reason):
    torch.save({**release_layout(model), "extra": smuggled}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    error = capsys.readouterr().err
    assert "refused by the weights-only unpickler" in error
    assert re.search(rf"references (\S+\.)?{reason},", error)
    assert str(release["pt"]) in error
    assert "weights_only=False" not in error  # never advise the unsafe route
    assert not release["out"].exists()


@pytest.mark.parametrize("value, kind", [([1, 2], "list"), (0.5, "float"), (None, "NoneType")])
def test_converter_refuses_unexpected_plain_types(model, release, capsys, value, kind):
    torch.save({**release_layout(model), "extra": {"nested": value}}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    error = capsys.readouterr().err
    assert f"entry 'extra.nested' is a {kind}" in error
    assert not release["out"].exists()


def test_converter_checks_dims_side_files_and_output(release, capsys):
    assert convert_main(convert_args(release)[:-4] + ["--embodiment", "robotwin_aloha", "-o",
                                                      str(release["out"])]) == 1
    assert "action/state dims 14/14, the checkpoint 7/8" in capsys.readouterr().err

    assert convert_main(convert_args(release, "--preset", "wan2.1-1.3b")) == 1
    assert "closest 'wan2.1-1.3b': dit.dim: checkpoint 64 vs wan2.1-1.3b 1536" in capsys.readouterr().err

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
    torch.save(release_layout(model), release["pt"], _use_new_zipfile_serialization=False)
    assert convert_main(convert_args(release)) == 0
    capsys.readouterr()
    release["out"] = release["out"].with_name("garbage.safetensors")
    for garbage, reason in (("not a checkpoint", "damaged: Unsupported operand"),
                            ("hello world", "not a readable torch checkpoint")):
        release["pt"].write_text(garbage)
        assert convert_main(convert_args(release)) == 1
        assert reason in capsys.readouterr().err
    assert not release["out"].exists()


def test_converter_refuses_tensors_outside_the_release_sections(model, release, capsys):
    torch.save({**release_layout(model), "optimizer": {"exp_avg": torch.zeros(2)}}, release["pt"])
    assert convert_main(convert_args(release)) == 1
    assert "optimizer.exp_avg" in capsys.readouterr().err
