"""Training samples: every step of every episode starts one (see ``episodes`` for the alignment).

``SampleSet.batch`` assembles the tensors of a list of sample indices: the clip's canvases in
[-1, 1], the normalised state and action chunk with its padding mask, the latent-frame mask, the
instruction embedding, and each sample's identity (for the latent cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.train.clips import clip_indices, latent_frame_mask
from lightwam_ros.train.episodes import Episode


@dataclass
class Batch:
    keys: list[int]  # sample indices
    clips: Tensor | None  # float [B, 3, F, Hc, Wc] in [-1, 1] (None: latents come cached)
    frame_mask: Tensor  # bool [B, latent frames], True = real
    instruction: Tensor  # [B, text_len, text_dim]
    proprio: Tensor  # normalised [B, S]
    actions: Tensor  # normalised [B, H, A]
    pad: Tensor  # bool [B, H], True = padding

    def loaded_clips(self) -> Tensor:
        """The clips; ValueError for a batch whose latents come from the cache (it has none)."""
        if self.clips is None:
            raise ValueError("the batch carries no clips: its latents come from the cache")
        return self.clips


class SampleSet:
    def __init__(
        self,
        episodes: Sequence[Episode],
        normalizer: Normalizer,
        embeddings: dict[str, Tensor],
        frames: int,
        stride: int,
        temporal_factor: int,
    ) -> None:
        self.episodes = list(episodes)
        self.normalizer = normalizer
        self.embeddings = embeddings
        self.frames, self.stride, self.temporal_factor = frames, stride, temporal_factor
        self.index = [(e, t) for e, episode in enumerate(self.episodes) for t in range(episode.num_frames)]

    def __len__(self) -> int:
        return len(self.index)

    def clip(self, key: int) -> np.ndarray:
        """uint8 [F, Hc, Wc, 3] canvases of sample ``key``'s clip."""
        e, t = self.index[key]
        episode = self.episodes[e]
        return episode.canvases[clip_indices(episode.num_frames, t, self.frames, self.stride)]

    def batch(self, keys: Sequence[int], clips: str = "all") -> Batch:
        """``clips``: "all" frames, the "first" (the action pass's observation) or "none"."""
        rows = [self.index[k] for k in keys]
        episodes = [self.episodes[e] for e, _ in rows]
        states = np.stack([ep.state[t] for ep, (_, t) in zip(episodes, rows, strict=True)])
        chunks = np.stack([ep.action_chunks[t] for ep, (_, t) in zip(episodes, rows, strict=True)])
        real = np.stack([ep.action_mask[t] for ep, (_, t) in zip(episodes, rows, strict=True)])
        frame_mask = np.stack(
            [
                latent_frame_mask(ep.num_frames, t, self.frames, self.stride, self.temporal_factor)
                for ep, (_, t) in zip(episodes, rows, strict=True)
            ]
        )
        pixels = None
        if clips != "none":
            frames = slice(None) if clips == "all" else slice(0, 1)
            stacked = np.stack([self.clip(k)[frames] for k in keys])  # [B, F, H, W, 3]
            pixels = torch.from_numpy(stacked).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
        return Batch(
            keys=list(keys),
            clips=pixels,
            frame_mask=torch.from_numpy(frame_mask),
            instruction=torch.stack([self.embeddings[ep.instruction] for ep in episodes]),
            proprio=torch.from_numpy(self.normalizer.normalize_state(states)),
            actions=torch.from_numpy(self.normalizer.normalize_action(chunks)),
            pad=torch.from_numpy(~real),
        )
