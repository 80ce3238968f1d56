"""Which frames of an episode one training sample reads, and which of them are padding.

A sample at step t reads F video frames every ``stride`` steps (t, t+s, ..., t+(F-1)s; 9 frames
every 4 steps span the 32-step chunk) that the causal VAE encodes into 1 + (F-1)/k latent frames
(k = its temporal factor, 4 for Wan: frame 0 alone, then groups of k).  Frames past the episode's
end repeat its last frame and every latent frame that holds one is masked out of the video loss.
"""

from __future__ import annotations

import numpy as np

from lightwam_ros.model.training import sample_clip_indices


def clip_indices(num_frames: int, start: int, frames: int, stride: int) -> list[int]:
    """Episode frame indices of the clip starting at ``start`` (clamped to the last frame)."""
    return sample_clip_indices(num_frames, start, clip_len=(frames - 1) * stride + 1, stride=stride)


def latent_frame_mask(
    num_frames: int, start: int, frames: int, stride: int, temporal_factor: int
) -> np.ndarray:
    """bool [1 + (frames-1)/temporal_factor]: True where every source frame is a real one."""
    if (frames - 1) % temporal_factor:
        raise ValueError(
            f"clip of {frames} frames does not encode causally: frames - 1 must be a "
            f"multiple of the VAE's temporal factor {temporal_factor}"
        )
    latent = 1 + (frames - 1) // temporal_factor
    last_source = start + stride * temporal_factor * np.arange(latent)  # newest frame of each
    return last_source <= num_frames - 1
