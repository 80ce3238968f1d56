"""Recorded episodes (``lightwam-bag-to-samples`` files) checked and held ready for training.

One file per episode: ``images.<role>`` uint8 (T, H, W, 3) per camera, ``state`` (T, S),
``action_chunks`` (T, H, A), ``action_mask`` bool (T, H), ``timestamps`` (T,); metadata names the
embodiment and the instruction.

Alignment convention (one for every episode, checked by the tests on a synthetic episode):
the sample at step t sees the canvas of frame t and the state at t, and its targets are the
actions of steps t .. t+H-1: ``action_chunks[t, i]`` is what was commanded at step t+i (the
target due at the end of that step), masked past the episode's end.  Its video clip holds
frames t, t+s, ..., t+(F-1)s (s = frame stride), clamped to the last frame and masked there.

A bad episode (unreadable, another embodiment, wrong dimensions, NaN, no frames, an instruction
the cache lacks) is skipped with its reason, or is fatal with ``strict``; a sample is never
silently replaced by another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from lightwam_ros.policy.canvas import build_canvas
from lightwam_ros.policy.embodiment import EmbodimentSpec

EPISODE_GLOB = "episode_*.safetensors"


class EpisodeError(ValueError):
    """An episode that cannot be trained on; the message says why."""


@dataclass(frozen=True)
class Episode:
    path: Path
    instruction: str
    canvases: np.ndarray  # uint8 (T, Hc, Wc, 3): the model's view of each frame
    state: np.ndarray  # float32 (T, S)
    action_chunks: np.ndarray  # float32 (T, H, A)
    action_mask: np.ndarray  # bool (T, H), True = a real (not padded) step
    digest: str  # sha256 of the file: what the latent cache keys on

    @property
    def num_frames(self) -> int:
        return int(self.state.shape[0])


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


def episode_files(entries: Sequence[str | Path]) -> list[Path]:
    """Files named directly, plus the ``episode_*.safetensors`` of named folders, sorted."""
    files: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            files += sorted(path.glob(EPISODE_GLOB))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no episode file or folder at {path}")
    return files


def load_episode(path: Path, spec: EmbodimentSpec, tasks: Sequence[str]) -> Episode:
    """One checked episode; EpisodeError says what is wrong with it."""
    try:
        with safe_open(str(path), framework="numpy") as reader:
            meta = reader.metadata() or {}
            arrays = {key: reader.get_tensor(key) for key in reader.keys()}
    except (SafetensorError, OSError) as error:
        raise EpisodeError(f"not a readable safetensors file ({error})") from None
    if meta.get("embodiment") != spec.name:
        raise EpisodeError(f"recorded for embodiment {meta.get('embodiment')!r}, training {spec.name!r}")
    instruction = meta.get("instruction", "")
    if not instruction:
        raise EpisodeError("no instruction in its metadata")
    if instruction not in tasks:
        raise EpisodeError(f"instruction {instruction!r} is not in the instruction cache")
    missing = [
        k
        for k in ("state", "action_chunks", "action_mask") + tuple(f"images.{r}" for r in spec.canvas.roles)
        if k not in arrays
    ]
    if missing:
        raise EpisodeError(f"missing arrays {missing}")
    state, chunks, mask = arrays["state"], arrays["action_chunks"], arrays["action_mask"]
    frames = state.shape[0] if state.ndim == 2 else -1
    if frames == 0:
        raise EpisodeError("no frames")
    horizon, dim = spec.chunk.length, spec.action_dim
    shapes = {
        "state": (state.shape, (frames, spec.state_dim)),
        "action_chunks": (chunks.shape, (frames, horizon, dim)),
        "action_mask": (mask.shape, (frames, horizon)),
    }
    for role in spec.canvas.roles:
        image = arrays[f"images.{role}"]
        shapes[f"images.{role}"] = (image.shape[:1] + image.shape[3:], (frames, 3))
        if image.dtype != np.uint8 or image.ndim != 4:
            raise EpisodeError(f"images.{role} must be uint8 (T, H, W, 3), got {image.dtype} {image.shape}")
    wrong = {k: f"{got} (expected {want})" for k, (got, want) in shapes.items() if tuple(got) != tuple(want)}
    if frames < 0 or wrong:
        raise EpisodeError(f"wrong dimensions: {wrong or {'state': state.shape}}")
    if not np.isfinite(state).all():
        raise EpisodeError(f"non-finite state at steps {_bad_steps(state)}")
    mask = mask.astype(bool)
    if not np.isfinite(chunks[mask]).all():
        raise EpisodeError(f"non-finite actions at steps {_bad_steps(np.where(mask[..., None], chunks, 0))}")
    if not mask[:, 0].all():
        raise EpisodeError(f"steps {np.nonzero(~mask[:, 0])[0][:5].tolist()} have no action")
    canvases = np.stack(
        [build_canvas({r: arrays[f"images.{r}"][t] for r in spec.canvas.roles}, spec) for t in range(frames)]
    )
    return Episode(
        path=path,
        instruction=instruction,
        canvases=canvases,
        state=state.astype(np.float32),
        action_chunks=np.where(mask[..., None], chunks, 0).astype(np.float32),
        action_mask=mask,
        digest=_file_digest(path),
    )


def _bad_steps(values: np.ndarray) -> list[int]:
    flat = values.reshape(values.shape[0], -1)
    return np.nonzero(~np.isfinite(flat).all(axis=1))[0][:5].tolist()


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_episodes(
    entries: Sequence[str | Path], spec: EmbodimentSpec, tasks: Sequence[str], strict: bool = False
) -> tuple[list[Episode], list[Skipped]]:
    """The usable episodes and the skipped ones with their reasons (``strict``: the first bad
    one raises EpisodeError naming its file)."""
    episodes, skipped = [], []
    for path in episode_files(entries):
        try:
            episodes.append(load_episode(path, spec, tasks))
        except EpisodeError as error:
            if strict:
                raise EpisodeError(f"{path}: {error}") from None
            skipped.append(Skipped(path, str(error)))
    return episodes, skipped
