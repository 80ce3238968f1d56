"""Training-time pieces of Light-WAM: the flow-matching schedule, clip sampling and the two losses.

Pure functions on tensors so each can be checked on its own; the trainer wires them together:
a noisy low-resolution clip (future-video loss, frame 0 kept clean) and a clean full-resolution
first frame (action loss) per sample, total loss = video + action.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

NUM_TRAIN_TIMESTEPS = 1000  # t = 1000 * sigma, the timestep scale Wan was trained on
DEFAULT_SHIFT = 5.0


# ----------------------------------------------------------------------------- noise schedule
def _check_shift(shift: float) -> None:
    if not shift > 0:
        raise ValueError(f"shift must be positive, got {shift}")


def shift_sigma(u: Tensor, shift: float = DEFAULT_SHIFT) -> Tensor:
    """Map uniform ``u`` in [0, 1] to ``shift * u / (1 + (shift - 1) * u)``.

    The map multiplies the odds ``sigma / (1 - sigma)`` by ``shift``, so shift > 1 spends more of
    training at high noise, where future frames must be predicted rather than copied.
    """
    _check_shift(shift)
    return shift * u / (1 + (shift - 1) * u)


def sample_sigmas(batch: int, generator: torch.Generator, shift: float = DEFAULT_SHIFT) -> Tensor:
    """Per-sample noise levels [batch] in [0, 1]: ``u ~ U(0, 1)`` pushed through :func:`shift_sigma`."""
    if batch <= 0:
        raise ValueError(f"batch must be positive, got {batch}")
    _check_shift(shift)
    u = torch.rand(batch, generator=generator, device=generator.device)
    return shift_sigma(u, shift)


def timesteps_from_sigmas(sigma: Tensor) -> Tensor:
    """Noise level -> DiT timestep, ``t = 1000 * sigma``."""
    return sigma * NUM_TRAIN_TIMESTEPS


def noisy_latents(x0: Tensor, eps: Tensor, sigma: Tensor) -> Tensor:
    """``(1 - sigma) x0 + sigma eps`` for latents [B, C, F, H, W].

    ``sigma`` is [B] (one level per sample) or [B, F] (one per latent frame, see
    :func:`with_clean_first_frame`).
    """
    if x0.ndim != 5 or eps.shape != x0.shape:
        raise ValueError(
            f"x0 and eps must be equal-shape [B, C, F, H, W], got {tuple(x0.shape)} and {tuple(eps.shape)}"
        )
    batch, _, frames = x0.shape[:3]
    if sigma.shape == (batch,):
        sigma = sigma[:, None, None]
    elif sigma.shape == (batch, frames):
        sigma = sigma[:, None, :]
    else:
        raise ValueError(f"sigma must be [{batch}] or [{batch}, {frames}], got {tuple(sigma.shape)}")
    sigma = sigma[..., None, None].to(x0.dtype)
    return (1 - sigma) * x0 + sigma * eps


def flow_matching_target(x0: Tensor, eps: Tensor) -> Tensor:
    """Velocity target ``eps - x0``, the derivative of :func:`noisy_latents` with respect to sigma."""
    if eps.shape != x0.shape:
        raise ValueError(f"x0 and eps shapes differ: {tuple(x0.shape)} vs {tuple(eps.shape)}")
    return eps - x0


def with_clean_first_frame(values: Tensor, num_frames: int) -> Tensor:
    """Per-sample values [B] -> per-frame [B, num_frames] with frame 0 set to 0.

    Frame 0 is the conditioning frame: it stays clean (sigma = 0, t = 0) while the future frames
    carry the sampled noise level.
    """
    if values.ndim != 1:
        raise ValueError(f"values must be [B], got {tuple(values.shape)}")
    if num_frames < 2:
        raise ValueError(f"num_frames must be >= 2 (a conditioning frame and a future), got {num_frames}")
    per_frame = values[:, None].expand(-1, num_frames).clone()
    per_frame[:, 0] = 0
    return per_frame


def per_token_timesteps(t: Tensor, frame_tokens: int, num_frames: int) -> Tensor:
    """Timesteps [B] -> per-token [B, num_frames * frame_tokens]; frame 0's tokens get t = 0.

    Tokens are frame-major (the DiT's patch order), so frame f owns tokens
    ``f * frame_tokens ... (f + 1) * frame_tokens - 1``.
    """
    if frame_tokens <= 0:
        raise ValueError(f"frame_tokens must be positive, got {frame_tokens}")
    return with_clean_first_frame(t, num_frames).repeat_interleave(frame_tokens, dim=1)


def _gaussian(t: Tensor, centre: float, width: float) -> Tensor:
    return torch.exp(-0.5 * ((t - centre) / width) ** 2)


@functools.lru_cache(maxsize=16)
def _schedule_floor_and_mean(centre: float, width: float, shift: float) -> tuple[float, float]:
    """The Gaussian's lower value at t = 0 / 1000, and the mean of (Gaussian - that floor) over
    ``t = 1000 * shift_sigma(u)``, ``u ~ U(0, 1)``.

    Midpoint rule on 2e5 points in u: the integrand is smooth in u, so this is exact to ~1e-9.
    """
    grid = 200_000
    u = (torch.arange(grid, dtype=torch.float64) + 0.5) / grid
    t = timesteps_from_sigmas(shift_sigma(u, shift))
    ends = torch.tensor([0.0, float(NUM_TRAIN_TIMESTEPS)], dtype=torch.float64)
    floor = _gaussian(ends, centre, width).min().item()
    return floor, (_gaussian(t, centre, width) - floor).mean().item()


def gaussian_timestep_weight(
    t: Tensor, centre: float = 500.0, width: float = 500.0, shift: float = DEFAULT_SHIFT
) -> Tensor:
    """Per-sample video-loss weight: a Gaussian in t, minus its smaller value at t = 0 / 1000 (so
    it falls to 0 at the far end) and scaled to mean 1 over the sampling schedule (``shift``).

    Our model notes give no constants, so the defaults follow the Wan fine-tuning recipe of
    DiffSynth-Studio, a widely used Wan training framework: ``exp(-2 ((t - 500) / 1000)^2)`` is a
    Gaussian with centre 500 and standard deviation 500, with the same floor removed. The
    mid-range noise levels it favours are where predicting the future is hard but learnable; near
    t = 0 the target hinges on noise the input barely shows, and near t = 1000 the input says
    nothing about the clip. Mean 1 keeps the loss scale (and so the learning rate) comparable
    with an unweighted loss.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    _check_shift(shift)
    if t.numel() and (t.min() < 0 or t.max() > NUM_TRAIN_TIMESTEPS):
        raise ValueError(
            f"t must lie in [0, {NUM_TRAIN_TIMESTEPS}], got range [{t.min().item()}, {t.max().item()}]"
        )
    floor, mean = _schedule_floor_and_mean(float(centre), float(width), float(shift))
    return ((_gaussian(t.double(), centre, width) - floor) / mean).to(t.dtype)


# ------------------------------------------------------------------------------------ data
def downsample_latents(latents: Tensor) -> Tensor:
    """[B, C, F, H, W] -> [B, C, F, H/2, W/2] by 2x2 spatial average pooling (the video loss's
    "downsampled latent space": a cheaper future to predict, frames untouched)."""
    if latents.ndim != 5:
        raise ValueError(f"latents must be [B, C, F, H, W], got {tuple(latents.shape)}")
    height, width = latents.shape[-2:]
    if height % 2 or width % 2 or height == 0 or width == 0:
        raise ValueError(f"latent height and width must be positive and even, got {height}x{width}")
    return F.avg_pool3d(latents, kernel_size=(1, 2, 2))


def sample_clip_indices(
    num_frames_available: int, start: int, clip_len: int = 33, stride: int = 4
) -> list[int]:
    """Episode frame indices of one training clip: every ``stride``-th frame of a ``clip_len``-frame
    window from ``start`` (33 / 4 -> 9 frames -> 3 latent frames: 1 conditioning + 2 future).

    Indices past the episode end are clamped to its last frame: the robot stays where the episode
    ended, so a late start still yields a full clip whose future is "hold still" rather than a
    shorter clip the VAE's 1 + 4k frame rule would reject.
    """
    if num_frames_available <= 0:
        raise ValueError(f"num_frames_available must be positive, got {num_frames_available}")
    if not 0 <= start < num_frames_available:
        raise ValueError(f"start must be in [0, {num_frames_available - 1}], got {start}")
    if clip_len <= 0 or stride <= 0 or (clip_len - 1) % stride:
        raise ValueError(
            f"clip_len - 1 must be a non-negative multiple of stride > 0, got "
            f"clip_len={clip_len}, stride={stride}"
        )
    last = num_frames_available - 1
    return [min(start + offset, last) for offset in range(0, clip_len, stride)]


# ---------------------------------------------------------------------------------- losses
def video_loss(pred: Tensor, target: Tensor, weights: Tensor, frame_mask: Tensor | None = None) -> Tensor:
    """Mean over the batch of ``weights[b] * MSE(pred[b], target[b])`` on latent frames 1..F-1.

    Frame 0 is the clean conditioning frame; it is an input, not something to predict.
    ``pred``/``target``: [B, C, F, H, W]; ``weights``: [B] (e.g. :func:`gaussian_timestep_weight`);
    ``frame_mask`` bool [B, F] (True = a real frame) leaves padded frames out of a sample's mean; a
    sample with no real future frame contributes 0 (the batch mean still divides by B, so equal
    shards of a batch on several processes average to the whole batch's loss).
    """
    if pred.ndim != 5 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be equal-shape [B, C, F, H, W], got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    batch, _, frames = pred.shape[:3]
    if frames < 2:
        raise ValueError(f"need at least 2 latent frames (frame 0 is excluded), got {frames}")
    if weights.shape != (batch,):
        raise ValueError(f"weights must be [{batch}], got {tuple(weights.shape)}")
    if frame_mask is None:
        frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=pred.device)
    if frame_mask.shape != (batch, frames) or frame_mask.dtype != torch.bool:
        raise ValueError(
            f"frame_mask must be bool [{batch}, {frames}], got {frame_mask.dtype} {tuple(frame_mask.shape)}"
        )
    diff = torch.where(frame_mask[:, None, :, None, None], pred.float() - target.float(), 0.0)
    per_frame = diff[:, :, 1:].pow(2).mean(dim=(1, 3, 4))  # [B, F-1]
    real = frame_mask[:, 1:].float()
    per_sample = (per_frame * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)
    return (weights.float() * per_sample).mean()


def first_n_step_weights(horizon: int, n: int) -> Tensor:
    """[horizon] weights: 1 on the first ``n`` chunk steps, 0 after (8 for LIBERO, 24 for RoboTwin)."""
    if not 1 <= n <= horizon:
        raise ValueError(f"n must be in [1, horizon={horizon}], got {n}")
    weights = torch.zeros(horizon)
    weights[:n] = 1
    return weights


def action_loss(pred: Tensor, target: Tensor, step_weights: Tensor, pad_mask: Tensor) -> Tensor:
    """Weighted MSE on normalised actions [B, H, A]: per sample, then the mean over the batch.

    ``step_weights`` [H] weights each chunk step; ``pad_mask`` [B, H] is True where a step is padding
    (past the episode end) and contributes nothing. A sample's loss is the weighted mean over its
    supervised steps of the per-step MSE, so it does not shrink when an episode's tail is padded;
    a sample with no supervised step contributes 0, and the batch mean divides by B (equal shards
    of a batch on several processes then average to the whole batch's loss).
    """
    if pred.ndim != 3 or pred.shape != target.shape:
        raise ValueError(
            f"pred and target must be equal-shape [B, H, A], got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    batch, horizon = pred.shape[:2]
    if step_weights.shape != (horizon,):
        raise ValueError(f"step_weights must be [{horizon}], got {tuple(step_weights.shape)}")
    if pad_mask.shape != (batch, horizon) or pad_mask.dtype != torch.bool:
        raise ValueError(
            f"pad_mask must be bool [{batch}, {horizon}], got {pad_mask.dtype} {tuple(pad_mask.shape)}"
        )
    if (step_weights < 0).any():
        raise ValueError("step_weights must be non-negative")
    # Zero the padded differences before squaring so whatever fills the padding (even NaN)
    # reaches neither the loss nor the gradient.
    diff = torch.where(pad_mask[..., None], 0.0, pred.float() - target.float())
    per_step = diff.pow(2).mean(dim=-1)  # [B, H]
    weights = step_weights.float().to(per_step.device)[None, :] * (~pad_mask).float()
    tiny = torch.finfo(torch.float32).tiny
    return ((weights * per_step).sum(dim=1) / weights.sum(dim=1).clamp_min(tiny)).mean()
