"""The frozen VAE's latents of every training clip, encoded once into sharded safetensors.

``<cache_dir>/<key>/`` holds ``meta.json`` (everything the key was made of) and
``shard_NNNNN.safetensors`` files of ``shard_size`` samples each (tensor ``latents`` [n, 16, F',
h, w], un-pooled: the 2x pooling happens at train time, and ``keys`` [n]).  The key is a hash of
everything that changes the latents: the embodiment and its canvas, the clip's frames and
stride, the VAE's weights and latent statistics, and the episodes' contents; a change gives a new
key and so a rebuild.  Each shard is written to a temporary file and renamed, so an interrupted
build leaves only complete shards, and the next build resumes after them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CACHE_FORMAT = "lightwam_ros/latent_cache/1"


@dataclass(frozen=True)
class CacheReport:
    folder: Path
    hits: int  # shards found complete
    built: int  # shards encoded by this run
    vae_calls: int


def module_digest(module: nn.Module) -> str:
    """sha256 over a module's state (names, shapes, bytes): the VAE's identity."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def cache_key(fields: dict[str, Any]) -> str:
    text = json.dumps({"format": CACHE_FORMAT, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class LatentCache:
    def __init__(self, root: Path, fields: dict[str, Any], num_samples: int, shard_size: int = 256) -> None:
        self.fields = fields
        self.folder = Path(root) / cache_key(fields)
        self.num_samples, self.shard_size = num_samples, shard_size

    def _shard(self, index: int) -> Path:
        return self.folder / f"shard_{index:05d}.safetensors"

    @property
    def num_shards(self) -> int:
        return -(-self.num_samples // self.shard_size)

    def build(self, encode: Callable[[Sequence[int]], Tensor], batch_size: int) -> CacheReport:
        """Encode the missing shards (``encode(sample keys)`` -> latents); existing ones are hits."""
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "meta.json"
        if not meta.is_file():
            _atomic_text(
                meta,
                json.dumps(
                    {
                        "format": CACHE_FORMAT,
                        "fields": self.fields,
                        "num_samples": self.num_samples,
                        "shard_size": self.shard_size,
                    },
                    indent=1,
                ),
            )
        hits = built = calls = 0
        for shard in range(self.num_shards):
            path = self._shard(shard)
            if path.is_file():
                hits += 1
                continue
            keys = list(range(shard * self.shard_size, min(self.num_samples, (shard + 1) * self.shard_size)))
            parts = []
            with torch.no_grad():
                for first in range(0, len(keys), batch_size):
                    parts.append(encode(keys[first : first + batch_size]).float().cpu())
                    calls += 1
            partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
            save_file({"latents": torch.cat(parts).contiguous(), "keys": torch.tensor(keys)}, str(partial))
            os.replace(partial, path)
            built += 1
        return CacheReport(self.folder, hits=hits, built=built, vae_calls=calls)

    def load(self) -> Tensor:
        """All latents [N, 16, F', h, w], in sample order."""
        shards = [load_file(str(self._shard(i))) for i in range(self.num_shards)]
        keys = torch.cat([s["keys"] for s in shards])
        if not torch.equal(keys, torch.arange(self.num_samples)):
            raise ValueError(f"{self.folder}: the shards do not hold samples 0..{self.num_samples - 1}")
        return torch.cat([s["latents"] for s in shards])


def _atomic_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    partial.write_text(text)
    os.replace(partial, path)
