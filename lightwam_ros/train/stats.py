"""``dataset_stats.json`` from the training episodes, in the authors' layout.

``{"state": {"default": {...}}, "action": {"default": {...}}}`` with global_min / max / mean /
std / q01 / q99 per dimension: state over every frame, action over every real (unmasked) chunk
step.  The export stores it in the checkpoint's metadata, where the policy reads it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightwam_ros.train.episodes import Episode

STATS_FILE = "dataset_stats.json"


def summary(values: np.ndarray) -> dict[str, list[float]]:
    """Per-column statistics of (N, D) values as plain float lists."""
    values = np.asarray(values, dtype=np.float64)
    stats = {
        "global_min": values.min(axis=0),
        "global_max": values.max(axis=0),
        "global_mean": values.mean(axis=0),
        "global_std": values.std(axis=0),
        "global_q01": np.quantile(values, 0.01, axis=0),
        "global_q99": np.quantile(values, 0.99, axis=0),
    }
    return {key: [float(v) for v in vector] for key, vector in stats.items()}


def dataset_stats(episodes: Sequence[Episode]) -> dict:
    if not episodes:
        raise ValueError("no episodes to compute statistics from")
    states = np.concatenate([e.state for e in episodes])
    actions = np.concatenate([e.action_chunks[e.action_mask] for e in episodes])
    return {"state": {"default": summary(states)}, "action": {"default": summary(actions)}}


def write_stats(stats: dict, folder: Path) -> Path:
    path = Path(folder) / STATS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats, indent=1) + "\n")
    return path
