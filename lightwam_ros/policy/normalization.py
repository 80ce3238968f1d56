"""State/action normalisation from Light-WAM's ``dataset_stats.json``.

Layout: ``{"state": {"default": {"global_min": [...], "global_max": [...], "global_mean": [...],
"global_std": [...], "global_q01": [...], "global_q99": [...]}}, "action": {"default": {...}}}``.

- ``min_max``: x -> 2 (x - min) / (max - min) - 1, so the data range maps to [-1, 1]; a dimension
  whose range is below 1e-4 maps to x - min and back to y + min (the authors' rule: a constant
  dimension normalises to 0 and a prediction keeps its offset).
- ``z_score``: x -> (x - mean) / (std + 1e-8).
Normalised values are clamped to +-clamp (5 in Light-WAM).  Denormalisation does not clamp: the
model's output is returned as predicted, and the executor's safety filter judges it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightwam_ros.policy.embodiment import NORMALIZATION_MODES, EmbodimentSpec

MIN_RANGE = 1e-4  # min_max: narrower dimensions are treated as constant
STD_EPS = 1e-8  # z_score: added to the standard deviation
STATS_KEY = "default"
_KEYS_FOR_MODE = {"min_max": ("global_min", "global_max"), "z_score": ("global_mean", "global_std")}


@dataclass(frozen=True)
class _AffineMap:
    """normalised = (x - center) / half_width, and back."""

    center: np.ndarray
    half_width: np.ndarray
    name: str

    def normalize(self, x: np.ndarray, clamp: float) -> np.ndarray:
        x = _as_vectors(x, self.center.size, self.name)
        if not np.all(np.isfinite(x)):
            bad = sorted({int(i) for i in np.nonzero(~np.isfinite(x))[-1]})
            raise ValueError(f"{self.name}: non-finite values in dimension(s) {bad}")
        return np.clip((x - self.center) / self.half_width, -clamp, clamp).astype(np.float32)

    def denormalize(self, y: np.ndarray) -> np.ndarray:
        y = _as_vectors(y, self.center.size, self.name)
        return y * self.half_width + self.center


class Normalizer:
    """Normalises states and actions, denormalises predicted actions; vectorised over [..., D]."""

    def __init__(self, mode: str, state: _AffineMap, action: _AffineMap, clamp: float) -> None:
        self.mode = mode
        self.clamp = clamp
        self._state = state
        self._action = action

    @property
    def state_dim(self) -> int:
        return self._state.center.size

    @property
    def action_dim(self) -> int:
        return self._action.center.size

    @classmethod
    def from_stats_file(
        cls,
        path: str | Path,
        mode: str,
        clamp: float = 5.0,
        *,
        state_dim: int | None = None,
        action_dim: int | None = None,
    ) -> Normalizer:
        path = Path(path)
        try:
            stats = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON: {error}") from None
        return cls.from_stats(
            stats, mode, clamp, state_dim=state_dim, action_dim=action_dim, source=str(path)
        )

    @classmethod
    def from_stats(
        cls,
        stats: Mapping,
        mode: str,
        clamp: float = 5.0,
        *,
        state_dim: int | None = None,
        action_dim: int | None = None,
        source: str = "stats",
    ) -> Normalizer:
        """Build from the parsed stats; ``state_dim``/``action_dim`` check the lengths."""
        if mode not in NORMALIZATION_MODES:
            raise ValueError(f"normalisation mode {mode!r} not one of {list(NORMALIZATION_MODES)}")
        if not np.isfinite(clamp) or clamp <= 0:
            raise ValueError(f"clamp must be a positive finite number, got {clamp}")
        state = _build_map(stats, "state", mode, state_dim, source)
        action = _build_map(stats, "action", mode, action_dim, source)
        return cls(mode, state, action, float(clamp))

    @classmethod
    def for_embodiment(cls, path: str | Path, spec: EmbodimentSpec) -> Normalizer:
        """Stats file checked against the embodiment's dimensions, with its mode and clamp."""
        return cls.from_stats_file(
            path,
            spec.normalization.mode,
            spec.normalization.clamp,
            state_dim=spec.state_dim,
            action_dim=spec.action_dim,
        )

    def normalize_state(self, state: np.ndarray) -> np.ndarray:
        """[..., state_dim] -> float32, clamped."""
        return self._state.normalize(state, self.clamp)

    def normalize_action(self, action: np.ndarray) -> np.ndarray:
        """[..., action_dim] -> float32, clamped (training targets, offline comparisons)."""
        return self._action.normalize(action, self.clamp)

    def denormalize_action(self, action: np.ndarray) -> np.ndarray:
        """Normalised model output [..., action_dim] -> float64 in dataset units (not clamped)."""
        return self._action.denormalize(action)


def _as_vectors(x: np.ndarray, dim: int, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ValueError(f"{name}: expected shape [..., {dim}], got {x.shape}")
    return x


def _build_map(stats: Mapping, section: str, mode: str, expected_dim: int | None, source: str) -> _AffineMap:
    where = f"{source}: {section}.{STATS_KEY}"
    if not isinstance(stats, Mapping) or not isinstance(stats.get(section), Mapping):
        raise ValueError(f"{source}: missing section {section!r}")
    entry = stats[section].get(STATS_KEY)
    if not isinstance(entry, Mapping):
        raise ValueError(f"{source}: missing {section}.{STATS_KEY}")
    low_key, high_key = _KEYS_FOR_MODE[mode]
    first = _stat_vector(entry, low_key, where)
    second = _stat_vector(entry, high_key, where)
    if first.size != second.size:
        raise ValueError(f"{where}: {low_key} has {first.size} entries but {high_key} {second.size}")
    if expected_dim is not None and first.size != expected_dim:
        raise ValueError(f"{where}: stats have {first.size} dimensions, the embodiment {expected_dim}")
    if mode == "min_max":
        if np.any(second < first):
            bad = np.nonzero(second < first)[0].tolist()
            raise ValueError(f"{where}: global_max below global_min in dimension(s) {bad}")
        degenerate = second - first < MIN_RANGE
        return _AffineMap(
            center=np.where(degenerate, first, (first + second) / 2.0),
            half_width=np.where(degenerate, 1.0, (second - first) / 2.0),
            name=section,
        )
    if np.any(second < 0):
        bad = np.nonzero(second < 0)[0].tolist()
        raise ValueError(f"{where}: negative global_std in dimension(s) {bad}")
    return _AffineMap(center=first, half_width=second + STD_EPS, name=section)


def _stat_vector(entry: Mapping, key: str, where: str) -> np.ndarray:
    if key not in entry:
        raise ValueError(f"{where}: missing {key!r}")
    try:
        values = np.asarray(entry[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}.{key}: not a list of numbers") from None
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"{where}.{key}: expected a non-empty flat list, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        bad = np.nonzero(~np.isfinite(values))[0].tolist()
        raise ValueError(f"{where}.{key}: non-finite entries at {bad}")
    return values
