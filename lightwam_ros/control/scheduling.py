"""Placing action chunks in time and combining overlapping chunks into one target plan.

Time convention (LeRobot/openpi): a chunk carries the stamp of the observation it was predicted
from; action i is applied during [stamp + i*dt, stamp + (i+1)*dt).  As a position waypoint the
arm should have reached action i when its interval ends, so waypoint i sits at
``stamp + (i+1)*dt``, and step i is dropped once that time has passed (its interval is over).
Only the first ``execute_steps`` steps are ever used.

Chunk-boundary rules (the choice matters: temporal ensembling helps some robots and hurts some
benchmarks):
- ``latest``: the new chunk replaces the plan (latest wins).
- ``blend``: over the overlap with the current plan, the new chunk's weight grows linearly:
  the j-th overlapping new waypoint (0-based, m in all) gets weight (j+1)/(m+1), the plan the
  rest; after the overlap only the new chunk counts.
- ``ensemble``: temporal ensembling as in ACT: every stored chunk that covers a waypoint time
  predicts it; predictions ordered oldest first get weights exp(-k*i), i = 0, 1, ...  (k > 0
  favours older predictions, as in ACT; k < 0 favours newer ones).  For ACT's behaviour set
  execute_steps = H.

Plans and stored chunks are evaluated at other chunks' times by linear interpolation between
their waypoints (exact when the chunks share a time grid).  The plan's time grid is the newest
chunk's.  Times are integer nanoseconds on the clock of the chunks' stamps.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np

from lightwam_ros.policy.chunk import Chunk

BOUNDARY_RULES = ("latest", "blend", "ensemble")


@dataclass(frozen=True, eq=False)
class TargetPlan:
    """Waypoints to follow: strictly increasing integer times (n,) [ns] and positions (n, A)."""

    times_ns: np.ndarray
    positions: np.ndarray

    @property
    def empty(self) -> bool:
        return self.times_ns.size == 0

    @property
    def end_ns(self) -> int | None:
        """Time of the last waypoint [ns]; None for an empty plan."""
        return int(self.times_ns[-1]) if self.times_ns.size else None

    def after(self, t_ns: int) -> TargetPlan:
        """The waypoints strictly later than t_ns."""
        keep = self.times_ns > t_ns
        return TargetPlan(self.times_ns[keep], self.positions[keep])

    def at(self, times_ns: np.ndarray) -> np.ndarray:
        """Positions at ``times_ns`` by linear interpolation (held constant outside the plan)."""
        origin = self.times_ns[0]  # float offsets from a local origin keep nanoseconds exact
        x = (np.asarray(times_ns) - origin).astype(np.float64)
        xp = (self.times_ns - origin).astype(np.float64)
        return np.column_stack([np.interp(x, xp, column) for column in self.positions.T])

    def covers(self, times_ns: np.ndarray) -> np.ndarray:
        return (times_ns >= self.times_ns[0]) & (times_ns <= self.times_ns[-1])


def chunk_plan(chunk: Chunk) -> TargetPlan:
    """A chunk's executable steps as waypoints at the ends of their intervals."""
    return TargetPlan(chunk.waypoint_times_ns(), chunk.executable())


class ChunkScheduler:
    """Keeps the current target plan and merges each new chunk into it by the boundary rule."""

    def __init__(self, rule: str = "latest", ensemble_k: float = 0.01, max_chunks: int = 32) -> None:
        if rule not in BOUNDARY_RULES:
            raise ValueError(f"unknown chunk-boundary rule {rule!r}; expected one of {BOUNDARY_RULES}")
        if not math.isfinite(ensemble_k):
            raise ValueError(f"ensemble_k must be finite, got {ensemble_k}")
        if max_chunks < 1:
            raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
        self.rule = rule
        self.ensemble_k = float(ensemble_k)
        self._history: collections.deque[TargetPlan] = collections.deque(maxlen=max_chunks)
        self._plan: TargetPlan | None = None

    def clear(self) -> None:
        self._plan = None
        self._history.clear()

    def plan(self, now_ns: int) -> TargetPlan | None:
        """The waypoints still ahead of ``now_ns`` (None before the first chunk)."""
        return None if self._plan is None else self._plan.after(now_ns)

    def add_chunk(self, chunk: Chunk, now_ns: int) -> int:
        """Merge a chunk's still-future executable steps into the plan; returns how many were kept.

        Returns 0 and leaves the plan unchanged when every executable step has already passed.
        """
        if self._plan is not None and chunk.action_dim != self._plan.positions.shape[1]:
            raise ValueError(
                f"chunk has {chunk.action_dim} action dims, the plan has {self._plan.positions.shape[1]}"
            )
        whole = chunk_plan(chunk)
        fresh = whole.after(now_ns)
        if fresh.empty:
            return 0
        current = self._plan.after(now_ns) if self._plan is not None else None
        if self.rule == "ensemble":
            merged = self._ensemble(fresh, now_ns)
        elif self.rule == "blend" and current is not None and not current.empty:
            merged = self._blend(current, fresh)
        else:
            merged = fresh.positions
        self._history.append(whole)
        self._plan = TargetPlan(fresh.times_ns, merged)
        return fresh.times_ns.size

    @staticmethod
    def _blend(current: TargetPlan, fresh: TargetPlan) -> np.ndarray:
        overlap = fresh.times_ns <= current.times_ns[-1]
        count = int(overlap.sum())
        weights = np.ones(fresh.times_ns.size)
        weights[:count] = np.arange(1, count + 1) / (count + 1)
        old = current.at(fresh.times_ns)
        return weights[:, None] * fresh.positions + (1.0 - weights[:, None]) * old

    def _ensemble(self, fresh: TargetPlan, now_ns: int) -> np.ndarray:
        sources = [
            chunk for chunk in self._history if (end_ns := chunk.end_ns) is not None and end_ns > now_ns
        ] + [fresh]
        values = np.stack([chunk.at(fresh.times_ns) for chunk in sources])  # oldest first
        covered = np.stack([chunk.covers(fresh.times_ns) for chunk in sources])
        age_index = np.cumsum(covered, axis=0) - 1  # i per waypoint, counting covering chunks only
        weights = np.where(covered, np.exp(-self.ensemble_k * age_index), 0.0)
        weights /= weights.sum(axis=0, keepdims=True)
        return np.einsum("cn,cna->na", weights, values)


class LatencyEstimator:
    """Expected inference delay from measured latencies, warm-up samples excluded.

    The first ``warmup`` samples (compilation, cache fills) are never counted; the estimate is a
    percentile over the most recent ``window`` samples, robust to the occasional slow pass.
    """

    def __init__(self, warmup: int = 3, window: int = 50, percentile: float = 90.0) -> None:
        if warmup < 0 or window < 1 or not 0.0 <= percentile <= 100.0:
            raise ValueError(
                f"need warmup >= 0, window >= 1, 0 <= percentile <= 100; got {warmup}, {window}, {percentile}"
            )
        self.warmup = warmup
        self.percentile = percentile
        self._seen = 0
        self._samples: collections.deque[float] = collections.deque(maxlen=window)

    def add(self, latency: float) -> None:
        if not (math.isfinite(latency) and latency >= 0.0):
            raise ValueError(f"latency must be finite and >= 0 (s), got {latency}")
        self._seen += 1
        if self._seen > self.warmup:
            self._samples.append(float(latency))

    def quantile(self, percentile: float) -> float | None:
        if not self._samples:
            return None
        return float(np.percentile(np.fromiter(self._samples, float), percentile))

    def expected_delay(self) -> float | None:
        """The configured percentile of recent latencies (s); None until warm-up is over."""
        return self.quantile(self.percentile)

    def steps_elapsed(self, dt: float) -> int:
        """Leading chunk steps whose interval is over when a chunk arrives after the delay."""
        delay = self.expected_delay()
        if delay is None:
            return 0
        if not (math.isfinite(dt) and dt > 0.0):
            raise ValueError(f"dt must be finite and > 0, got {dt}")
        return math.floor(delay / dt + 1e-9)
