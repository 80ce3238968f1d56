"""Timestamped input streams and observation assembly "as of" a time.

Each stream (a camera, the joint state) keeps its recent samples in a bounded ring keyed by the
sample's own stamp (``header.stamp``, not the arrival time).  ``ObservationAssembler.assemble(t)``
picks one sample per stream for time t and refuses to build an observation from inputs that are
missing, too old, not synchronised or frozen, naming the stream and by how much it failed, so the
policy never silently acts on a dead camera.

Per-stream matching (``StreamConfig.match``):
- ``as_of``: the latest sample stamped at or before t + tolerance (tolerance allows a stamp
  slightly after t, e.g. clock skew between drivers).
- ``nearest``: the sample nearest to t, which must lie within +-tolerance (strict sync).
Either way the chosen sample must be at most ``max_age`` older than t, and, when
``frozen_after`` is set, its content must have changed within that time (a driver re-publishing
the same image with fresh stamps is frozen, not live).  Simulated cameras looking at a static
scene do produce identical frames: leave ``frozen_after`` unset there.

Stamps must increase per stream: an older or repeated stamp is rejected (counted, reported, the
sample dropped) - unless it goes back by more than the stream's ``max_age``: then the stream's
source started over (a camera driver restarted, the clock source changed, a simulator reset
before anyone saw its clock jump), and refusing it would stall that stream for as long as the
jump.  The stream restarts instead: its samples are forgotten, the new one is kept, and the
restart is counted and described once (``StreamStats.restarts`` / ``last_restart``).  With
``expected_period`` set, gaps in the stamps count as dropped frames.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MATCH_MODES = ("as_of", "nearest")


@dataclass(frozen=True)
class StreamConfig:
    max_age: float  # s; older samples are refused at assembly time
    tolerance: float = 0.0  # s; see the module docstring for its meaning per match mode
    match: str = "as_of"
    capacity: int = 16
    expected_period: float | None = None  # s; enables counting frames lost in stamp gaps
    frozen_after: float | None = None  # s of identical content before the stream counts as frozen

    def __post_init__(self) -> None:
        if self.match not in MATCH_MODES:
            raise ValueError(f"match must be one of {MATCH_MODES}, got {self.match!r}")
        if not self.max_age > 0.0:
            raise ValueError(f"max_age must be > 0 (s), got {self.max_age}")
        if not (math.isfinite(self.tolerance) and self.tolerance >= 0.0):
            raise ValueError(f"tolerance must be finite and >= 0 (s), got {self.tolerance}")
        if int(self.capacity) != self.capacity or self.capacity < 1:
            raise ValueError(f"capacity must be a positive integer, got {self.capacity}")
        for name in ("expected_period", "frozen_after"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be None or finite and > 0 (s), got {value}")


@dataclass(frozen=True)
class Sample:
    stamp: float
    value: Any


@dataclass
class StreamStats:
    received: int = 0
    accepted: int = 0
    rejected_backwards: int = 0  # stamps older than or equal to the previous one
    gap_frames: int = 0  # frames missing between consecutive stamps (needs expected_period)
    restarts: int = 0  # stamps that went back by more than max_age: the stream started over
    last_rejection: str = ""
    last_restart: str = ""

    @property
    def dropped(self) -> int:
        return self.rejected_backwards + self.gap_frames


@dataclass(frozen=True)
class StreamProblem:
    stream: str
    kind: str  # "missing", "unmatched", "stale" or "frozen"
    excess: float  # s beyond the limit (inf when no sample exists)
    message: str


class StaleInputError(RuntimeError):
    """No observation can be assembled; ``problems`` names each failing stream, worst first."""

    def __init__(self, t: float, problems: tuple[StreamProblem, ...]) -> None:
        self.t = t
        self.problems = problems
        super().__init__(
            f"cannot assemble observation at t={t:.6f}: " + "; ".join(p.message for p in problems)
        )


@dataclass(frozen=True, eq=False)
class Observation:
    t: float
    samples: Mapping[str, Sample]
    ages: Mapping[str, float]  # t - stamp per stream (negative for a sample stamped after t)

    @property
    def oldest_age(self) -> float:
        return max(self.ages.values())

    def value(self, stream: str) -> Any:
        return self.samples[stream].value


class StampedRingBuffer:
    """Bounded ring of samples with increasing stamps; the oldest is overwritten when full."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self._stamps = [0.0] * capacity
        self._values: list[Any] = [None] * capacity
        self._since = [0.0] * capacity  # stamp at which the sample's content was first seen
        self._start = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def capacity(self) -> int:
        return len(self._stamps)

    def _slot(self, index: int) -> int:
        return (self._start + index) % self.capacity

    def stamp(self, index: int) -> float:
        return self._stamps[self._slot(index)]

    def sample(self, index: int) -> Sample:
        slot = self._slot(index)
        return Sample(self._stamps[slot], self._values[slot])

    def content_since(self, index: int) -> float:
        return self._since[self._slot(index)]

    def push(self, stamp: float, value: Any, content_since: float) -> None:
        """Append; the caller guarantees the stamp is after the latest one."""
        if self._size < self.capacity:
            slot = self._slot(self._size)
            self._size += 1
        else:
            slot = self._start
            self._start = (self._start + 1) % self.capacity
        self._stamps[slot] = stamp
        self._values[slot] = value
        self._since[slot] = content_since

    def index_at_or_before(self, t: float) -> int:
        """Index of the latest sample stamped <= t, or -1."""
        lo, hi = 0, self._size  # first index with stamp > t lies in [lo, hi]
        while lo < hi:
            mid = (lo + hi) // 2
            if self.stamp(mid) <= t:
                lo = mid + 1
            else:
                hi = mid
        return lo - 1


class _Stream:
    def __init__(self, name: str, config: StreamConfig) -> None:
        self.name = name
        self.config = config
        self.buffer = StampedRingBuffer(int(config.capacity))
        self.stats = StreamStats()
        self.last_stamp = -math.inf
        self.last_digest: bytes | None = None


def content_digest(value: Any) -> bytes:
    """Hash of a sample's content for frozen-input detection (arrays and raw bytes)."""
    hasher = hashlib.blake2b(digest_size=16)
    if isinstance(value, np.ndarray):
        hasher.update(f"{value.dtype.str}{value.shape}".encode())
        hasher.update(np.ascontiguousarray(value).data)
    elif isinstance(value, (bytes, bytearray, memoryview)):
        hasher.update(value)
    else:
        raise ValueError(f"frozen-input detection needs numpy arrays or bytes, got {type(value).__name__}")
    return hasher.digest()


class ObservationAssembler:
    """Per-stream buffers plus the rules that turn them into one observation for a time t."""

    def __init__(self, streams: Mapping[str, StreamConfig]) -> None:
        if not streams:
            raise ValueError("at least one stream is needed")
        for name, config in streams.items():
            if not isinstance(config, StreamConfig):
                raise ValueError(f"stream {name!r}: expected a StreamConfig, got {type(config).__name__}")
        self._streams = {name: _Stream(name, config) for name, config in streams.items()}

    def _stream(self, name: str) -> _Stream:
        try:
            return self._streams[name]
        except KeyError:
            raise ValueError(f"unknown stream {name!r}; streams: {list(self._streams)}") from None

    def add(self, stream: str, stamp: float, value: Any) -> bool:
        """Store a sample; False (counted, ``last_rejection`` set) when its stamp is not newer."""
        entry = self._stream(stream)
        if not math.isfinite(stamp):
            raise ValueError(f"stream {stream!r}: stamp must be finite, got {stamp}")
        config = entry.config
        digest = content_digest(value) if config.frozen_after is not None else None
        stats = entry.stats
        stats.received += 1
        if entry.last_stamp - stamp > config.max_age:
            stats.restarts += 1
            stats.last_restart = (
                f"stream {stream!r} restarted: stamp {stamp:.6f} is {entry.last_stamp - stamp:.3f} s "
                f"before the previous one, more than its max_age {config.max_age:.3f} s; its "
                f"earlier samples are dropped"
            )
            self._forget(entry)
        elif stamp <= entry.last_stamp:
            stats.rejected_backwards += 1
            what = "repeats" if stamp == entry.last_stamp else "is before"
            stats.last_rejection = (
                f"stream {stream!r}: stamp {stamp:.6f} {what} the previous {entry.last_stamp:.6f} "
                f"(went back {entry.last_stamp - stamp:.6f} s); sample dropped"
            )
            return False
        if config.expected_period is not None and len(entry.buffer):
            missed = round((stamp - entry.last_stamp) / config.expected_period) - 1
            stats.gap_frames += max(0, missed)
        since = stamp
        if digest is not None and digest == entry.last_digest:
            since = entry.buffer.content_since(len(entry.buffer) - 1)
        entry.buffer.push(stamp, value, since)
        entry.last_stamp = stamp
        entry.last_digest = digest
        stats.accepted += 1
        return True

    def stats(self, stream: str) -> StreamStats:
        return dataclasses.replace(self._stream(stream).stats)

    @property
    def frames_dropped(self) -> int:
        """Rejected samples plus frames lost in stamp gaps, over all streams."""
        return sum(entry.stats.dropped for entry in self._streams.values())

    def problems(self, t: float) -> tuple[StreamProblem, ...]:
        """Every reason the observation at t cannot be assembled, worst first (empty when fine)."""
        return self._collect(t)[1]

    def assemble(self, t: float) -> Observation:
        """One sample per stream for time t; raises StaleInputError naming the failing streams."""
        samples, problems = self._collect(t)
        if problems:
            raise StaleInputError(t, problems)
        return Observation(t, samples, {name: t - s.stamp for name, s in samples.items()})

    def assemble_anchored(self, t: float, anchor: str) -> Observation:
        """The observation of one instant: that of the newest anchor sample that every other
        stream has reached (has a sample stamped at or after it), as of time t.

        Freshness is judged at t (a dead camera is still refused).  Every stream's sample is
        taken as of the anchor's stamp, so the image and the state come from one instant, as in
        training data; and because the other streams have moved past that instant, nothing
        that belongs to it can still be in flight: the observation depends only on the
        recorded inputs, and a replay rebuilds it exactly, whenever the trigger fires.  With
        synchronised cameras this waits at most one joint-state period.  Ages count from t.
        """
        current = self.assemble(t)
        entry = self._stream(anchor)
        reached = min(
            (other.last_stamp for name, other in self._streams.items() if name != anchor), default=math.inf
        )
        index = entry.buffer.index_at_or_before(min(current.samples[anchor].stamp, reached))
        age = t - entry.buffer.stamp(index) if index >= 0 else math.inf
        if age > entry.config.max_age:
            behind = min(self._streams.values(), key=lambda other: other.last_stamp).name
            raise StaleInputError(
                t,
                (
                    StreamProblem(
                        anchor,
                        "stale",
                        age - entry.config.max_age,
                        f"stream {anchor!r}: no frame within max_age {entry.config.max_age:.3f} s that "
                        f"stream {behind!r} has reached (its newest sample is {t - reached:.3f} s old)",
                    ),
                ),
            )
        synced = self.assemble(entry.buffer.stamp(index))
        return Observation(t, synced.samples, {name: t - s.stamp for name, s in synced.samples.items()})

    def clear(self) -> None:
        """Forget every sample (statistics stay): after time went backwards, e.g. a simulator
        reset or a looping bag, the stored stamps lie in the future and would refuse all input."""
        for entry in self._streams.values():
            self._forget(entry)

    @staticmethod
    def _forget(entry: _Stream) -> None:
        entry.buffer = StampedRingBuffer(int(entry.config.capacity))
        entry.last_stamp = -math.inf
        entry.last_digest = None

    def _collect(self, t: float) -> tuple[dict[str, Sample], tuple[StreamProblem, ...]]:
        if not math.isfinite(t):
            raise ValueError(f"t must be finite, got {t}")
        samples, problems = {}, []
        for name, entry in self._streams.items():
            sample, problem = self._match(entry, t)
            if problem is not None:
                problems.append(problem)
            elif sample is not None:
                samples[name] = sample
        return samples, tuple(sorted(problems, key=lambda problem: -problem.excess))

    @staticmethod
    def _match(entry: _Stream, t: float) -> tuple[Sample | None, StreamProblem | None]:
        config, buffer, name = entry.config, entry.buffer, entry.name
        if not len(buffer):
            return None, StreamProblem(name, "missing", math.inf, f"stream {name!r}: no sample yet")
        if config.match == "as_of":
            index = buffer.index_at_or_before(t + config.tolerance)
            if index < 0:
                early = buffer.stamp(0) - t
                return None, StreamProblem(
                    name,
                    "missing",
                    early - config.tolerance,
                    f"stream {name!r}: no sample at or before t+{config.tolerance:.3f} s "
                    f"(the oldest kept is {early:.3f} s after t)",
                )
        else:
            index = _nearest_index(buffer, t)
            offset = abs(buffer.stamp(index) - t)
            if offset > config.tolerance:
                return None, StreamProblem(
                    name,
                    "unmatched",
                    offset - config.tolerance,
                    f"stream {name!r}: nearest sample is {offset:.3f} s from t, tolerance "
                    f"{config.tolerance:.3f} s ({offset - config.tolerance:.3f} s over)",
                )
        sample = buffer.sample(index)
        age = t - sample.stamp
        if age > config.max_age:
            return None, StreamProblem(
                name,
                "stale",
                age - config.max_age,
                f"stream {name!r} is stale: its sample is {age:.3f} s old, max_age "
                f"{config.max_age:.3f} s ({age - config.max_age:.3f} s too old)",
            )
        if config.frozen_after is not None:
            unchanged = sample.stamp - buffer.content_since(index)
            if unchanged > config.frozen_after:
                return None, StreamProblem(
                    name,
                    "frozen",
                    unchanged - config.frozen_after,
                    f"stream {name!r} is frozen: identical content for {unchanged:.3f} s, limit "
                    f"{config.frozen_after:.3f} s ({unchanged - config.frozen_after:.3f} s over)",
                )
        return sample, None


def _nearest_index(buffer: StampedRingBuffer, t: float) -> int:
    before = buffer.index_at_or_before(t)
    if before < 0:
        return 0
    after = before + 1
    if after < len(buffer) and buffer.stamp(after) - t < t - buffer.stamp(before):
        return after
    return before
