"""Instruction prompts and the embedding cache: keys, padding, file round trip, live encoder glue."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lightwam_ros.model.instructions import (
    PROMPT_TEMPLATE,
    InstructionCache,
    encode_instructions_live,
    prompt_for,
    prompt_key,
)
from lightwam_ros.tools.assets.encode_instructions import main as encode_tool

TEXT_LEN, TEXT_DIM = 16, 6
TASKS = ("put the bowl on the plate", "open the top drawer")
ALL_REAL = torch.ones(TEXT_LEN, dtype=torch.bool)


def sample(valid: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(TEXT_LEN, TEXT_DIM, generator=generator)
    mask = torch.arange(TEXT_LEN) < valid
    return embedding, mask


@pytest.fixture()
def cache() -> InstructionCache:
    cache = InstructionCache("umt5-xxl", TEXT_LEN, TEXT_DIM)
    for seed, task in enumerate(TASKS):
        cache.add(task, *sample(valid=5 + seed, seed=seed))
    return cache


def test_prompt_template_and_key():
    prompt = prompt_for("pick up the ketchup")
    assert prompt == (
        "A video recorded from a robot's point of view executing the following instruction: "
        "pick up the ketchup"
    )
    assert PROMPT_TEMPLATE.format(task="x") == prompt_for("x")
    assert prompt_key(prompt) == hashlib.sha256(prompt.encode("utf-8")).hexdigest()
    assert prompt_key(prompt_for("pick up the ketchup ")) != prompt_key(prompt)
    for bad in ("", "   ", None):
        with pytest.raises(ValueError, match="non-empty string"):
            prompt_for(bad)


def test_padded_positions_are_zeroed_and_copies_returned(cache):
    raw, mask = sample(valid=5, seed=0)
    embedding, stored_mask = cache.get(TASKS[0])
    assert torch.equal(stored_mask, mask) and stored_mask.dtype == torch.bool
    assert torch.equal(embedding[:5], raw[:5])
    assert not embedding[5:].any()
    embedding.fill_(7)
    assert not cache.get(TASKS[0])[0][5:].any()


def test_file_round_trip_is_keyed_by_prompt_hash(cache, tmp_path):
    path = tmp_path / "instructions.safetensors"
    cache.save(path)
    with safe_open(str(path), framework="pt") as reader:
        names, metadata = set(reader.keys()), reader.metadata()
    keys = {prompt_key(prompt_for(task)) for task in TASKS}
    assert names == {f"{k}.{part}" for k in keys for part in ("embedding", "mask")}
    assert metadata["encoder_id"] == "umt5-xxl" and metadata["text_len"] == str(TEXT_LEN)
    assert {v["prompt"] for v in json.loads(metadata["entries"]).values()} == {prompt_for(t) for t in TASKS}

    loaded = InstructionCache.load(path)
    assert (loaded.encoder_id, loaded.text_len, loaded.text_dim) == ("umt5-xxl", TEXT_LEN, TEXT_DIM)
    assert loaded.tasks() == sorted(TASKS) and len(loaded) == 2 and TASKS[1] in loaded
    for task in TASKS:
        for got, want in zip(loaded.get(task), cache.get(task), strict=True):
            assert torch.equal(got, want)


def test_replacing_a_task_keeps_one_entry(cache):
    cache.add(TASKS[0], *sample(valid=TEXT_LEN, seed=9))
    assert len(cache) == 2
    assert torch.equal(cache.get(TASKS[0])[0], sample(valid=TEXT_LEN, seed=9)[0])


def test_missing_task_lists_the_known_ones(cache):
    with pytest.raises(
        KeyError,
        match=r"'close the microwave'.*known tasks: \['open the top drawer', "
        r"'put the bowl on the plate'\]",
    ):
        cache.get("close the microwave")
    assert "close the microwave" not in cache


@pytest.mark.parametrize(
    "embedding, mask, message",
    [
        (torch.zeros(TEXT_LEN, TEXT_DIM + 1), ALL_REAL, r"floating-point tensor \[16, 6\]"),
        (torch.zeros(TEXT_LEN, TEXT_DIM, dtype=torch.long), ALL_REAL, "floating-point"),
        (torch.zeros(TEXT_LEN, TEXT_DIM), torch.ones(TEXT_LEN), r"bool/integer tensor \[16\]"),
        (torch.zeros(TEXT_LEN, TEXT_DIM), torch.full((TEXT_LEN,), 2), "only 0/1"),
        (torch.zeros(TEXT_LEN, TEXT_DIM), torch.zeros(TEXT_LEN, dtype=torch.uint8), "no token"),
    ],
    ids=["shape", "dtype", "float-mask", "non-binary-mask", "empty-mask"],
)
def test_add_rejects_bad_inputs(cache, embedding, mask, message):
    with pytest.raises(ValueError, match=message):
        cache.add("new task", embedding, mask)
    assert "new task" not in cache


def test_uint8_masks_are_accepted(cache):
    embedding, mask = sample(valid=3)
    cache.add("wipe the table", embedding, mask.to(torch.uint8))
    assert torch.equal(cache.get("wipe the table")[1], mask)


def test_check_compatible_names_each_mismatch(cache):
    cache.check_compatible("umt5-xxl", TEXT_LEN, TEXT_DIM)
    expected = r"encoder 'umt5-xxl' \(expected 't5-base'\), text_dim 6 \(expected 4096\)"
    with pytest.raises(ValueError, match=expected):
        cache.check_compatible("t5-base", TEXT_LEN, 4096)


def test_constructor_validates():
    with pytest.raises(ValueError, match="encoder_id"):
        InstructionCache("", 4, 4)
    with pytest.raises(ValueError, match="text_len must be a positive int"):
        InstructionCache("umt5-xxl", 0, 4)


# ------------------------------------------------------------------------------ bad files
def resave(src: Path, dst: Path, edit_metadata) -> Path:
    with safe_open(str(src), framework="pt") as reader:
        tensors = {k: reader.get_tensor(k) for k in reader.keys()}
        metadata = reader.metadata()
    edit_metadata(metadata)
    save_file(tensors, str(dst), metadata=metadata)
    return dst


def other_template_entries(metadata: dict) -> None:
    entries = json.loads(metadata["entries"])
    info = next(iter(entries.values()))
    prompt = "Robot, please: " + info["task"]
    del entries[next(iter(entries))]
    entries[prompt_key(prompt)] = {"task": info["task"], "prompt": prompt}
    metadata["entries"] = json.dumps(entries)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format="x"), "not an instruction cache"),
        (lambda m: m.pop("text_dim"), "invalid instruction cache metadata"),
        (lambda m: m.update(entries="{}"), "do not match the recorded entries"),
        (other_template_entries, "do not match the recorded entries"),
    ],
    ids=["format", "missing-field", "no-entries", "renamed-entry"],
)
def test_load_rejects_inconsistent_files(cache, tmp_path, edit, message):
    cache.save(tmp_path / "good.safetensors")
    with pytest.raises(ValueError, match=message):
        InstructionCache.load(resave(tmp_path / "good.safetensors", tmp_path / "bad.safetensors", edit))


def test_load_rejects_a_prompt_from_another_template(tmp_path):
    task = "stack the cups"
    prompt = "Robot, please: " + task
    key = prompt_key(prompt)
    embedding, mask = sample(valid=4)
    save_file(
        {f"{key}.embedding": embedding, f"{key}.mask": mask},
        str(tmp_path / "old.safetensors"),
        metadata={
            "format": "lightwam_ros/instructions/1",
            "encoder_id": "umt5-xxl",
            "text_len": str(TEXT_LEN),
            "text_dim": str(TEXT_DIM),
            "entries": json.dumps({key: {"task": task, "prompt": prompt}}),
        },
    )
    with pytest.raises(ValueError, match="different prompt template"):
        InstructionCache.load(tmp_path / "old.safetensors")


def test_load_rejects_other_files(tmp_path):
    torch.save({"x": torch.zeros(1)}, tmp_path / "cache.pt")
    with pytest.raises(ValueError, match="not a safetensors instruction cache"):
        InstructionCache.load(tmp_path / "cache.pt")
    with pytest.raises(FileNotFoundError):
        InstructionCache.load(tmp_path / "absent.safetensors")


# --------------------------------------------------------------------------- live encoder
def test_live_encoder_needs_a_local_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        encode_instructions_live(TASKS, tmp_path / "umt5-xxl")


def test_live_encoder_explains_a_missing_transformers(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(ImportError, match="optional 'transformers' package"):
        encode_instructions_live(TASKS, tmp_path)


class FakeTokenizer:
    """Word-level stand-in: one token per word, right-padded with id 0."""

    def __call__(self, text, padding, max_length, truncation, return_tensors):
        assert (padding, truncation, return_tensors) == ("max_length", True, "pt")
        count = min(len(text.split()), max_length)
        ids = torch.zeros(1, max_length, dtype=torch.long)
        ids[0, :count] = torch.arange(1, count + 1)
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


class FakeEncoder:
    config = types.SimpleNamespace(d_model=TEXT_DIM)

    def to(self, device):
        return self

    def eval(self):
        return self

    def __call__(self, input_ids, attention_mask):
        # Non-zero everywhere, padding included, so the cache must do the zeroing.
        hidden = (input_ids[..., None] + 1).float().expand(-1, -1, TEXT_DIM)
        return types.SimpleNamespace(last_hidden_state=hidden.to(torch.bfloat16))


def fake_transformers(calls: list) -> types.ModuleType:
    def loader(result):
        def from_pretrained(path, **kwargs):
            calls.append((path, kwargs))
            return result

        return types.SimpleNamespace(from_pretrained=from_pretrained)

    module = types.ModuleType("transformers")
    module.AutoTokenizer = loader(FakeTokenizer())
    module.UMT5EncoderModel = loader(FakeEncoder())
    return module


def test_live_encoder_builds_a_cache_from_local_files_only(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers(calls))
    cache = encode_instructions_live(TASKS, tmp_path, text_len=32)
    assert len(calls) == 2 and all(kwargs["local_files_only"] for _, kwargs in calls)
    assert (cache.encoder_id, cache.text_len, cache.text_dim) == ("umt5-xxl", 32, TEXT_DIM)
    assert cache.tasks() == sorted(TASKS)
    words = len(prompt_for(TASKS[1]).split())
    embedding, mask = cache.get(TASKS[1])
    assert int(mask.sum()) == words
    assert torch.equal(embedding[:words, 0], torch.arange(2, words + 2, dtype=embedding.dtype))
    assert not embedding[words:].any()


# --------------------------------------------------------------------------- command-line tool
def test_encode_tool_extends_an_existing_cache_and_refuses_a_foreign_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers([]))
    tasks_file = tmp_path / "tasks.txt"
    tasks_file.write_text(f"{TASKS[1]}\n\n  {TASKS[0]}  \n{TASKS[1]}\n")
    output = tmp_path / "instructions.safetensors"
    assert (
        encode_tool(["--umt5", str(tmp_path), "--task", TASKS[0], "-o", str(output), "--text-len", "32"]) == 0
    )
    assert InstructionCache.load(output).tasks() == [TASKS[0]]
    assert (
        encode_tool(
            ["--umt5", str(tmp_path), "--tasks-file", str(tasks_file), "-o", str(output), "--text-len", "32"]
        )
        == 0
    )
    cache = InstructionCache.load(output)
    assert cache.tasks() == sorted(TASKS[:2]) and cache.text_len == 32

    before = output.read_bytes()
    assert (
        encode_tool(
            [
                "--umt5",
                str(tmp_path),
                "--task",
                "new",
                "-o",
                str(output),
                "--encoder-id",
                "t5-base",
                "--text-len",
                "32",
            ]
        )
        == 2
    )
    assert "encoder 'umt5-xxl' (expected 't5-base')" in capsys.readouterr().err
    assert output.read_bytes() == before


def test_encode_tool_explains_missing_tasks_and_weights(tmp_path, capsys):
    output = tmp_path / "instructions.safetensors"
    assert encode_tool(["--umt5", str(tmp_path), "-o", str(output)]) == 2
    assert "no task instructions given" in capsys.readouterr().err
    assert encode_tool(["--umt5", str(tmp_path / "absent"), "--task", "x", "-o", str(output)]) == 2
    assert "nothing is downloaded" in capsys.readouterr().err and not output.exists()
