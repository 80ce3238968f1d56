"""Validation on held-out episodes: de-normalised action error per chunk step and per dimension
(the offline check's metrics), as numbers and a PNG."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from lightwam_ros.train.samples import Batch, SampleSet


@dataclass(frozen=True)
class ValidationResult:
    mae: float  # mean absolute error over every real step and dimension
    per_step: np.ndarray  # [H] mean absolute error (NaN where no step is real)
    per_dim: np.ndarray  # [A]
    samples: int


def evaluate(
    samples: SampleSet, predict: Callable[[Batch], Tensor], batch_size: int, every: int = 1
) -> ValidationResult:
    """Errors of ``predict`` (normalised chunk [B, H, A]) on every ``every``-th sample."""
    keys = list(range(0, len(samples), every))
    errors, masks = [], []
    for first in range(0, len(keys), batch_size):
        batch = samples.batch(keys[first : first + batch_size], clips="first")
        predicted = samples.normalizer.denormalize_action(predict(batch).float().cpu().numpy())
        truth = samples.normalizer.denormalize_action(batch.actions.numpy())
        errors.append(np.abs(predicted - truth))
        masks.append(~batch.pad.numpy())
    error, real = np.concatenate(errors), np.concatenate(masks)
    weights = real[..., None].astype(float)
    with np.errstate(invalid="ignore"):
        per_step = (error * weights).sum(axis=(0, 2)) / (weights.sum(axis=(0, 2)) * error.shape[2])
        per_dim = (error * weights).sum(axis=(0, 1)) / weights.sum(axis=(0, 1))
    return ValidationResult(
        mae=float((error * weights).sum() / (weights.sum() * error.shape[2])),
        per_step=per_step,
        per_dim=per_dim,
        samples=len(keys),
    )


def plot_validation(result: ValidationResult, dim_names: Sequence[str], png: Path, title: str) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    left.plot(np.arange(len(result.per_step)), result.per_step, marker=".")
    left.set_xlabel("chunk step")
    left.set_ylabel("mean |error| (action units)")
    left.set_title("per chunk step")
    right.bar(np.arange(len(result.per_dim)), result.per_dim)
    right.set_xticks(np.arange(len(result.per_dim)), list(dim_names), rotation=60, ha="right", fontsize=7)
    right.set_title("per dimension")
    fig.suptitle(f"{title}: {result.samples} held-out samples, MAE {result.mae:.4g}")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
