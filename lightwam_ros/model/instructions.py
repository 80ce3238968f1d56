"""Instruction embeddings: the prompt template, and a file cache of umT5 outputs per task.

The 5.7B umT5-XXL encoder is far too big to keep next to the policy during control, and one
instruction's embedding never changes, so embeddings are computed once (offline, or with
``encode_instructions_live`` on a machine that has the weights) and read from a safetensors file.
Entries are keyed by the sha256 of the full prompt, so a cache can never serve an embedding of a
differently worded prompt; the file also records the prompts and the encoder that produced them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor

PROMPT_TEMPLATE = "A video recorded from a robot's point of view executing the following instruction: {task}"
DEFAULT_INSTRUCTION_ENCODER = "umt5-xxl"
DEFAULT_TEXT_LEN = 128
CACHE_FORMAT = "lightwam_ros/instructions/1"


def prompt_for(task: str) -> str:
    """The text the encoder sees for a task instruction."""
    if not isinstance(task, str) or not task.strip():
        raise ValueError(f"task must be a non-empty string, got {task!r}")
    return PROMPT_TEMPLATE.format(task=task)


def prompt_key(prompt: str) -> str:
    """Cache key of a prompt: sha256 hex of its UTF-8 text."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Entry:
    task: str
    prompt: str
    embedding: Tensor  # [text_len, text_dim], padded positions zero
    mask: Tensor  # [text_len] bool, True = real token


class InstructionCache:
    """Per-task instruction embeddings from one text encoder, saved as one safetensors file.

    File layout: tensors ``<key>.embedding`` [text_len, text_dim] and ``<key>.mask`` [text_len]
    (bool) per prompt key; metadata ``format``, ``encoder_id``, ``text_len``, ``text_dim`` and
    ``entries`` (JSON ``{key: {"task", "prompt"}}``) so the file describes itself.
    """

    def __init__(self, encoder_id: str, text_len: int, text_dim: int) -> None:
        if not isinstance(encoder_id, str) or not encoder_id.strip():
            raise ValueError(f"encoder_id must be a non-empty string, got {encoder_id!r}")
        for name, value in (("text_len", text_len), ("text_dim", text_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.encoder_id = encoder_id
        self.text_len = text_len
        self.text_dim = text_dim
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, task: object) -> bool:
        return isinstance(task, str) and bool(task.strip()) and prompt_key(prompt_for(task)) in self._entries

    def tasks(self) -> list[str]:
        """The cached tasks, sorted."""
        return sorted(entry.task for entry in self._entries.values())

    def add(self, task: str, embedding: Tensor, mask: Tensor) -> None:
        """Store (or replace) a task's embedding [text_len, text_dim]; positions where ``mask``
        [text_len] (bool or 0/1 ints) is false are zeroed, as the model was trained with."""
        prompt = prompt_for(task)
        expected = (self.text_len, self.text_dim)
        if (
            not isinstance(embedding, Tensor)
            or not embedding.is_floating_point()
            or tuple(embedding.shape) != expected
        ):
            raise ValueError(
                f"embedding for {task!r} must be a floating-point tensor {list(expected)}, got "
                f"{_describe(embedding)}"
            )
        if not isinstance(mask, Tensor) or tuple(mask.shape) != (self.text_len,) or mask.is_floating_point():
            raise ValueError(
                f"mask for {task!r} must be a bool/integer tensor [{self.text_len}], got {_describe(mask)}"
            )
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(f"mask for {task!r} must hold only 0/1 (or bool) values")
        keep = mask.detach().to("cpu", torch.bool)
        if not bool(keep.any()):
            raise ValueError(f"mask for {task!r} marks no token as real")
        stored = embedding.detach().to("cpu").clone()
        stored[~keep] = 0
        self._entries[prompt_key(prompt)] = _Entry(task, prompt, stored, keep.clone())

    def get(self, task: str) -> tuple[Tensor, Tensor]:
        """(embedding [text_len, text_dim], mask [text_len] bool) for ``task``, as copies."""
        entry = self._entries.get(prompt_key(prompt_for(task)))
        if entry is None:
            raise KeyError(f"no cached instruction embedding for task {task!r}; known tasks: {self.tasks()}")
        return entry.embedding.clone(), entry.mask.clone()

    def check_compatible(self, encoder_id: str, text_len: int, text_dim: int) -> None:
        """Raise ValueError unless this cache was made by ``encoder_id`` with the given sizes
        (a model trained on one text encoder must not be fed another's embeddings)."""
        wrong = [
            f"{name} {mine!r} (expected {theirs!r})"
            for name, mine, theirs in (
                ("encoder", self.encoder_id, encoder_id),
                ("text_len", self.text_len, text_len),
                ("text_dim", self.text_dim, text_dim),
            )
            if mine != theirs
        ]
        if wrong:
            raise ValueError("instruction cache does not match the model: " + ", ".join(wrong))

    # ------------------------------------------------------------------------------- file I/O
    def save(self, path: str | os.PathLike) -> None:
        path = Path(path)
        tensors: dict[str, Tensor] = {}
        entries = {}
        for key, entry in sorted(self._entries.items()):
            tensors[f"{key}.embedding"] = entry.embedding.contiguous()
            tensors[f"{key}.mask"] = entry.mask.contiguous()
            entries[key] = {"task": entry.task, "prompt": entry.prompt}
        metadata = {
            "format": CACHE_FORMAT,
            "encoder_id": self.encoder_id,
            "text_len": str(self.text_len),
            "text_dim": str(self.text_dim),
            "entries": json.dumps(entries),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata=metadata)

    @classmethod
    def load(cls, path: str | os.PathLike) -> InstructionCache:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"instruction cache {path} does not exist")
        try:
            handle = safe_open(str(path), framework="pt", device="cpu")
        except (SafetensorError, OSError) as error:
            raise ValueError(f"{path}: not a safetensors instruction cache ({error})") from None
        with handle as reader:
            cache, entries = cls._from_metadata(reader.metadata() or {}, path)
            expected = {f"{key}.{part}" for key in entries for part in ("embedding", "mask")}
            found = set(reader.keys())
            if found != expected:
                raise ValueError(
                    f"{path}: tensors do not match the recorded entries: missing "
                    f"{sorted(expected - found)}, unexpected {sorted(found - expected)}"
                )
            for key, info in entries.items():
                cache._add_recorded(
                    key, info, reader.get_tensor(f"{key}.embedding"), reader.get_tensor(f"{key}.mask"), path
                )
        return cache

    @classmethod
    def _from_metadata(cls, metadata: dict[str, str], path: Path) -> tuple[InstructionCache, dict]:
        if metadata.get("format") != CACHE_FORMAT:
            raise ValueError(
                f"{path}: not an instruction cache (format {metadata.get('format')!r}, "
                f"expected {CACHE_FORMAT!r})"
            )
        try:
            cache = cls(metadata["encoder_id"], int(metadata["text_len"]), int(metadata["text_dim"]))
            entries = json.loads(metadata["entries"])
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: invalid instruction cache metadata: {error!r}") from None
        if not isinstance(entries, dict):
            raise ValueError(f"{path}: metadata 'entries' must be a JSON object")
        return cache, entries

    def _add_recorded(self, key: str, info: object, embedding: Tensor, mask: Tensor, path: Path) -> None:
        """Add one entry read from a file, after checking its key and prompt against the template."""
        if not isinstance(info, dict) or not all(isinstance(info.get(k), str) for k in ("task", "prompt")):
            raise ValueError(f"{path}: entry {key} must record 'task' and 'prompt' strings, got {info!r}")
        if prompt_key(info["prompt"]) != key:
            raise ValueError(f"{path}: entry {key} does not match the hash of its prompt {info['prompt']!r}")
        if prompt_for(info["task"]) != info["prompt"]:
            raise ValueError(
                f"{path}: entry for task {info['task']!r} was built with a different prompt "
                f"template ({info['prompt']!r}); re-encode it"
            )
        try:
            self.add(info["task"], embedding, mask)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} {list(value.shape)}"
    return type(value).__name__


# ---------------------------------------------------------------------------- live encoding
def encode_instructions_live(
    tasks: Iterable[str],
    model_dir: str | os.PathLike,
    device: str | torch.device = "cpu",
    encoder_id: str = DEFAULT_INSTRUCTION_ENCODER,
    text_len: int = DEFAULT_TEXT_LEN,
) -> InstructionCache:
    """Encode ``tasks`` with a local umT5 encoder (Hugging Face layout in ``model_dir``).

    Needs the optional ``transformers`` package; only reads local files (never downloads). The
    encoder runs in bf16, as Wan runs it; prompts get Wan's whitespace clean-up before tokenising.
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("no tasks to encode")
    prompts = [prompt_for(task) for task in tasks]
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise FileNotFoundError(
            f"umT5 directory {model_dir} does not exist; instructions are encoded only "
            f"from local weights (nothing is downloaded)"
        )
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "encode_instructions_live needs the optional 'transformers' package (and "
            "'sentencepiece' for the umT5 tokenizer); install them, or encode the "
            "instructions on another machine and copy the cache file"
        ) from None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        encoder = transformers.UMT5EncoderModel.from_pretrained(
            str(model_dir), local_files_only=True, torch_dtype=torch.bfloat16
        )
    except OSError as error:
        raise FileNotFoundError(f"{model_dir}: no usable local umT5 tokenizer/weights ({error})") from None
    encoder = encoder.to(device).eval()
    cache = InstructionCache(encoder_id, text_len, int(encoder.config.d_model))
    with torch.inference_mode():
        for task, prompt in zip(tasks, prompts, strict=True):
            tokens = tokenizer(
                " ".join(prompt.split()),
                padding="max_length",
                max_length=text_len,
                truncation=True,
                return_tensors="pt",
            )
            hidden = encoder(
                input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
            ).last_hidden_state
            cache.add(task, hidden[0].cpu(), tokens["attention_mask"][0])
    return cache
