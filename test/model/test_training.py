"""Training-time pieces: flow-matching schedule, timestep weights, clip sampling and losses."""

from __future__ import annotations

import math

import pytest
import torch

from lightwam_ros.model.training import (
    action_loss,
    downsample_latents,
    first_n_step_weights,
    flow_matching_target,
    gaussian_timestep_weight,
    noisy_latents,
    per_token_timesteps,
    sample_clip_indices,
    sample_sigmas,
    shift_sigma,
    timesteps_from_sigmas,
    video_loss,
    with_clean_first_frame,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- schedule
def test_shift_sigma_endpoints_midpoint_and_monotonic():
    u = torch.linspace(0, 1, 1001, dtype=torch.float64)
    sigma = shift_sigma(u, 5.0)
    assert sigma[0].item() == 0.0 and sigma[-1].item() == 1.0
    assert (sigma.diff() > 0).all()
    assert shift_sigma(torch.tensor(0.5, dtype=torch.float64)).item() == pytest.approx(5 / 6)
    # shift 1 is the identity
    assert torch.allclose(shift_sigma(u, 1.0), u)


@pytest.mark.parametrize("shift", [2.0, 5.0, 8.0])
def test_shift_scales_the_noise_odds(shift):
    """Independent characterisation: sigma / (1 - sigma) = shift * u / (1 - u)."""
    u = torch.tensor([0.05, 0.2, 0.5, 0.7, 0.95], dtype=torch.float64)
    sigma = shift_sigma(u, shift)
    assert torch.allclose(sigma / (1 - sigma), shift * u / (1 - u))


def test_shift_matches_diffusers_flow_match_scheduler():
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=5.0)
    base = torch.linspace(1, 1000, 1000, dtype=torch.float64).flip(0) / 1000  # its unshifted grid
    assert torch.allclose(shift_sigma(base, 5.0).float(), scheduler.sigmas[:1000].float(), atol=1e-6)


def test_sample_sigmas_range_reproducibility_and_median():
    sigma = sample_sigmas(20_000, gen(0))
    assert sigma.shape == (20_000,)
    assert sigma.min() >= 0 and sigma.max() <= 1
    assert torch.equal(sigma, sample_sigmas(20_000, gen(0)))
    assert not torch.equal(sigma, sample_sigmas(20_000, gen(1)))
    # u < 1/2 <=> sigma < 5/6, so half the samples fall below 5/6 (shift 5 favours high noise).
    assert (sigma < 5 / 6).float().mean().item() == pytest.approx(0.5, abs=0.015)
    assert timesteps_from_sigmas(torch.tensor([0.0, 0.25, 1.0])).tolist() == [0.0, 250.0, 1000.0]


def test_sample_sigmas_rejects_bad_arguments():
    with pytest.raises(ValueError, match="batch"):
        sample_sigmas(0, gen())
    with pytest.raises(ValueError, match="shift"):
        sample_sigmas(4, gen(), shift=0.0)


def test_noisy_latents_interpolates_and_target_is_its_velocity():
    g = gen(2)
    x0, eps = torch.randn(3, 4, 3, 2, 2, generator=g), torch.randn(3, 4, 3, 2, 2, generator=g)
    assert torch.equal(noisy_latents(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(noisy_latents(x0, eps, torch.ones(3)), eps)
    sigma = torch.tensor([0.1, 0.5, 0.9])
    xt = noisy_latents(x0, eps, sigma)
    for b in range(3):  # one level per sample
        assert torch.allclose(xt[b], (1 - sigma[b]) * x0[b] + sigma[b] * eps[b])
    # d x_t / d sigma is the flow-matching target eps - x0
    s = sigma.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(noisy_latents(x0, eps, s).sum(), s)
    assert torch.allclose(grad, flow_matching_target(x0, eps).sum(dim=(1, 2, 3, 4)), atol=1e-5)


def test_noisy_latents_keeps_a_clean_first_frame_with_per_frame_sigma():
    g = gen(3)
    x0, eps = torch.randn(2, 4, 3, 2, 2, generator=g), torch.randn(2, 4, 3, 2, 2, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    per_frame = with_clean_first_frame(sigma, 3)
    assert torch.equal(per_frame, torch.tensor([[0.0, 0.3, 0.3], [0.0, 0.8, 0.8]]))
    xt = noisy_latents(x0, eps, per_frame)
    assert torch.equal(xt[:, :, 0], x0[:, :, 0])
    assert torch.allclose(xt[:, :, 1:], noisy_latents(x0, eps, sigma)[:, :, 1:])


def test_noisy_latents_rejects_mismatched_shapes():
    x0 = torch.zeros(2, 4, 3, 2, 2)
    with pytest.raises(ValueError, match="equal-shape"):
        noisy_latents(x0, torch.zeros(2, 4, 3, 2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="sigma must be"):
        noisy_latents(x0, x0, torch.zeros(3))
    with pytest.raises(ValueError, match="num_frames"):
        with_clean_first_frame(torch.zeros(2), 1)


def test_per_token_timesteps_zero_for_frame_zero_tokens():
    t = torch.tensor([250.0, 900.0])
    per_token = per_token_timesteps(t, frame_tokens=4, num_frames=3)
    assert per_token.shape == (2, 12)
    assert torch.equal(per_token[:, :4], torch.zeros(2, 4))
    assert torch.equal(per_token[0, 4:], torch.full((8,), 250.0))
    assert torch.equal(per_token[1, 4:], torch.full((8,), 900.0))
    with pytest.raises(ValueError, match="frame_tokens"):
        per_token_timesteps(t, frame_tokens=0, num_frames=3)


# ----------------------------------------------------------------------- timestep weight
def test_gaussian_weight_has_mean_one_over_the_shifted_schedule():
    # Quadrature in sigma with the schedule's density: u = sigma / (5 - 4 sigma),
    # du/dsigma = 5 / (5 - 4 sigma)^2.
    n = 100_000
    sigma = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    density = 5 / (5 - 4 * sigma) ** 2
    weights = gaussian_timestep_weight(1000 * sigma)
    assert (weights * density).mean().item() == pytest.approx(1.0, abs=1e-4)
    # Monte Carlo through the sampler agrees.
    sampled = gaussian_timestep_weight(timesteps_from_sigmas(sample_sigmas(200_000, gen(5))))
    assert sampled.mean().item() == pytest.approx(1.0, abs=0.01)


def test_gaussian_weight_shape_peak_and_ends():
    t = torch.linspace(0, 1000, 1001, dtype=torch.float64)
    w = gaussian_timestep_weight(t)
    assert w.argmax().item() == 500
    assert torch.allclose(w, w.flip(0))  # symmetric about the centre
    assert w[0].item() == pytest.approx(0.0, abs=1e-12) and w[-1].item() == pytest.approx(0.0, abs=1e-12)
    # Ratio of two points fixes the Gaussian's width (500) once the floor exp(-1/2) is removed.
    floor = math.exp(-0.5)
    expected = (math.exp(-0.5 * (250 / 500) ** 2) - floor) / (1 - floor)
    assert (w[250] / w[500]).item() == pytest.approx(expected)
    # Mean 1 depends on the schedule: a schedule with more low-noise samples scales differently.
    assert not torch.allclose(gaussian_timestep_weight(t, shift=1.0), w)


def test_gaussian_weight_rejects_out_of_range_t():
    with pytest.raises(ValueError, match="t must lie"):
        gaussian_timestep_weight(torch.tensor([10.0, 1001.0]))
    with pytest.raises(ValueError, match="width"):
        gaussian_timestep_weight(torch.tensor([10.0]), width=0.0)


# ---------------------------------------------------------------------------------- data
def test_downsample_averages_each_2x2_block():
    blocks = torch.arange(2 * 3 * 2 * 3, dtype=torch.float32).view(2, 3, 2, 3)  # B, F, h, w values
    latents = blocks[:, None].repeat_interleave(2, dim=-1).repeat_interleave(2, dim=-2)  # constant 2x2
    latents = latents.expand(2, 4, 3, 4, 6).clone()
    pooled = downsample_latents(latents)
    assert pooled.shape == (2, 4, 3, 2, 3)
    assert torch.equal(pooled, blocks[:, None].expand(2, 4, 3, 2, 3))
    checker = torch.tensor([[1.0, 3.0], [5.0, 7.0]]).view(1, 1, 1, 2, 2)
    assert downsample_latents(checker).item() == 4.0


def test_downsample_rejects_odd_or_wrong_rank():
    with pytest.raises(ValueError, match="even"):
        downsample_latents(torch.zeros(1, 16, 3, 5, 4))
    with pytest.raises(ValueError, match=r"\[B, C, F, H, W\]"):
        downsample_latents(torch.zeros(16, 3, 4, 4))


def test_clip_indices_every_fourth_frame():
    assert sample_clip_indices(100, 10) == list(range(10, 43, 4))
    assert len(sample_clip_indices(100, 0)) == 9


def test_clip_indices_clamp_at_episode_end():
    indices = sample_clip_indices(20, 5)
    assert indices == [5, 9, 13, 17, 19, 19, 19, 19, 19]
    assert sample_clip_indices(1, 0) == [0] * 9


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 0), "num_frames_available"),
        ((10, 10), "start"),
        ((10, -1), "start"),
        ((10, 0, 32, 4), "multiple of stride"),
        ((10, 0, 33, 0), "multiple of stride"),
    ],
)
def test_clip_indices_reject_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        sample_clip_indices(*args)


# -------------------------------------------------------------------------------- losses
def test_video_loss_ignores_frame_zero_and_weights_samples():
    g = gen(7)
    pred, target = torch.randn(2, 4, 3, 2, 2, generator=g), torch.randn(2, 4, 3, 2, 2, generator=g)
    weights = torch.tensor([1.0, 3.0])
    loss = video_loss(pred, target, weights)
    moved = pred.clone()
    moved[:, :, 0] += 100.0
    assert video_loss(moved, target, weights).item() == pytest.approx(loss.item())
    per_sample = [((pred[b, :, 1:] - target[b, :, 1:]) ** 2).mean().item() for b in range(2)]
    assert loss.item() == pytest.approx((1.0 * per_sample[0] + 3.0 * per_sample[1]) / 2)
    # A frame-1 error does count.
    moved[:, :, 1] += 1.0
    assert video_loss(moved, target, weights).item() > loss.item()


def test_video_loss_masks_padded_frames():
    g = gen(8)
    pred, target = torch.randn(2, 4, 3, 2, 2, generator=g), torch.randn(2, 4, 3, 2, 2, generator=g)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss = video_loss(pred, target, torch.ones(2), mask)
    # Sample 0 counts frame 1 only; sample 1 has no real future frame and contributes 0.
    expected = ((pred[0, :, 1] - target[0, :, 1]) ** 2).mean().item() / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    moved = pred.clone()
    moved[0, :, 2] = float("nan")
    moved[1, :, 1:] += 9.0
    assert video_loss(moved, target, torch.ones(2), mask).item() == pytest.approx(expected, rel=1e-6)


def test_video_loss_rejects_bad_shapes():
    x = torch.zeros(2, 4, 3, 2, 2)
    with pytest.raises(ValueError, match="weights"):
        video_loss(x, x, torch.ones(3))
    with pytest.raises(ValueError, match="at least 2"):
        video_loss(x[:, :, :1], x[:, :, :1], torch.ones(2))
    with pytest.raises(ValueError, match="equal-shape"):
        video_loss(x, x[:, :2], torch.ones(2))


def test_first_n_step_weights():
    assert first_n_step_weights(32, 8).tolist() == [1.0] * 8 + [0.0] * 24
    assert first_n_step_weights(4, 4).tolist() == [1.0] * 4
    for n in (0, 33):
        with pytest.raises(ValueError, match="n must be"):
            first_n_step_weights(32, n)


def test_action_loss_masks_padding_and_unsupervised_steps():
    g = gen(9)
    pred, target = torch.randn(2, 6, 3, generator=g), torch.randn(2, 6, 3, generator=g)
    steps = first_n_step_weights(6, 4)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[1, 2:] = True  # sample 1's episode ends after step 1
    loss = action_loss(pred, target, steps, pad)
    # Reference: per sample, the mean per-step MSE over its supervised, unpadded steps; then the
    # mean over the two samples.
    kept = {0: (0, 1, 2, 3), 1: (0, 1)}
    expected = (
        sum(
            sum(((pred[b, h] - target[b, h]) ** 2).mean().item() for h in steps_b) / len(steps_b)
            for b, steps_b in kept.items()
        )
        / 2
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    changed = pred.clone()
    changed[1, 3] = float("nan")  # padded
    changed[0, 5] += 50.0  # past the supervised steps
    changed_loss = action_loss(changed, target, steps, pad)
    assert changed_loss.item() == pytest.approx(loss.item(), rel=1e-6)
    grad_pred = changed.clone().requires_grad_(True)
    action_loss(grad_pred, target, steps, pad).backward()
    assert torch.isfinite(grad_pred.grad).all()
    assert torch.equal(grad_pred.grad[1, 3], torch.zeros(3)) and torch.equal(
        grad_pred.grad[0, 5], torch.zeros(3)
    )


def test_action_loss_step_weights_scale_steps():
    pred = torch.zeros(1, 2, 1)
    target = torch.tensor([[[1.0], [2.0]]])  # step errors 1 and 4
    pad = torch.zeros(1, 2, dtype=torch.bool)
    assert action_loss(pred, target, torch.tensor([1.0, 3.0]), pad).item() == pytest.approx((1 + 12) / 4)
    everything_padded = action_loss(pred.requires_grad_(True), target, torch.ones(2), ~pad)
    assert everything_padded.item() == 0.0 and everything_padded.requires_grad


@pytest.mark.parametrize(
    "change, match",
    [
        ({"step_weights": torch.ones(5)}, "step_weights must be"),
        ({"step_weights": -torch.ones(6)}, "non-negative"),
        ({"pad_mask": torch.zeros(2, 6)}, "pad_mask must be bool"),
        ({"pad_mask": torch.zeros(1, 6, dtype=torch.bool)}, "pad_mask must be bool"),
        ({"target": torch.zeros(2, 6, 4)}, "equal-shape"),
    ],
)
def test_action_loss_rejects_bad_inputs(change, match):
    args = {
        "pred": torch.zeros(2, 6, 3),
        "target": torch.zeros(2, 6, 3),
        "step_weights": torch.ones(6),
        "pad_mask": torch.zeros(2, 6, dtype=torch.bool),
        **change,
    }
    with pytest.raises(ValueError, match=match):
        action_loss(**args)
