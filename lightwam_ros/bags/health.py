"""Stream health of a recording: gaps, stamps going backwards, missing topics.

An offline check must say when its input is suspect instead of crashing on it or silently
averaging over it: a camera that stalled for a second, a clock that jumped back, a topic that was
never recorded.  ``StreamHealth`` is fed (topic, log time, header stamp) per message - the stamp
read straight from the CDR bytes by ``header_stamp_ns``, so checking a bag decodes nothing.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys.store import Typestore

from lightwam_ros.bags.reader import BagProblem

NS_PER_S = 1_000_000_000
HEADER_TYPE = "std_msgs/msg/Header"
CDR_ENCAPSULATIONS = {b"\x00\x00": ">", b"\x00\x01": "<"}  # CDR big / little endian
STAMP_FIELDS = "iI"  # builtin_interfaces/Time: int32 sec, uint32 nanosec
STAMP_OFFSET = 4  # after the encapsulation header; Header.stamp is its first field


def header_stamp_ns(data: bytes, msgtype: str, typestore: Typestore) -> int | None:
    """Header stamp of a CDR message whose type's first field is a std_msgs/Header, in ns;
    None for other types, unknown types and bytes too short to hold a stamp."""
    fielddef = typestore.fielddefs.get(msgtype)
    if not fielddef or not fielddef[1]:
        return None
    _, (nodetype, first_type) = fielddef[1][0]
    if nodetype != Nodetype.NAME or first_type != HEADER_TYPE:
        return None
    byte_order = CDR_ENCAPSULATIONS.get(bytes(data[:2]))
    if byte_order is None or len(data) < STAMP_OFFSET + 8:
        return None
    sec, nanosec = struct.unpack_from(byte_order + STAMP_FIELDS, data, STAMP_OFFSET)
    return sec * NS_PER_S + nanosec


def missing_topics(bag_topics: Iterable[str], required: Iterable[str]) -> list[BagProblem]:
    """A "missing_topic" problem for each required topic the bag does not hold."""
    present = set(bag_topics)
    listing = ", ".join(sorted(present)) or "no topics"
    return [
        BagProblem("missing_topic", f"topic {topic} is not in the bag (it holds {listing})", topic)
        for topic in required
        if topic not in present
    ]


@dataclass
class _Track:
    """Everything StreamHealth keeps per topic (8 bytes per message for the gap analysis)."""

    log_times: array = field(default_factory=lambda: array("q"))
    first_stamp: int | None = None
    last_stamp: int | None = None
    stamps_backwards: int = 0
    first_stamp_backwards_at: int | None = None  # log time
    log_backwards: int = 0
    first_log_backwards_at: int | None = None


@dataclass(frozen=True)
class _Gaps:
    median_period: float  # s
    threshold: float  # s
    longest: float  # s
    longest_at: int  # log time where the longest gap starts
    count: int


class StreamHealth:
    """Feed it every message with ``add``; ``problems`` and ``summary`` judge the streams.

    A gap is an interval between consecutive messages of a topic longer than ``gap_factor``
    times the topic's median period and longer than ``min_gap`` seconds."""

    def __init__(self, gap_factor: float = 3.0, min_gap: float = 0.2) -> None:
        self.gap_factor = gap_factor
        self.min_gap = min_gap
        self._tracks: dict[str, _Track] = {}

    def add(self, topic: str, log_time_ns: int, stamp_ns: int | None = None) -> None:
        track = self._tracks.setdefault(topic, _Track())
        if track.log_times and log_time_ns < track.log_times[-1]:
            track.log_backwards += 1
            if track.first_log_backwards_at is None:
                track.first_log_backwards_at = log_time_ns
        track.log_times.append(log_time_ns)
        if stamp_ns is None:
            return
        if track.last_stamp is not None and stamp_ns <= track.last_stamp:
            track.stamps_backwards += 1
            if track.first_stamp_backwards_at is None:
                track.first_stamp_backwards_at = log_time_ns
        if track.first_stamp is None:
            track.first_stamp = stamp_ns
        track.last_stamp = stamp_ns

    def _start(self) -> int:
        return min(min(t.log_times) for t in self._tracks.values())

    def _gaps(self, track: _Track) -> _Gaps | None:
        times = np.sort(np.frombuffer(track.log_times, dtype=np.int64))
        if times.size < 2:
            return None
        intervals = np.diff(times) / NS_PER_S
        median = float(np.median(intervals))
        threshold = max(self.gap_factor * median, self.min_gap)
        longest = int(np.argmax(intervals))
        return _Gaps(
            median,
            threshold,
            float(intervals[longest]),
            int(times[longest]),
            int(np.count_nonzero(intervals > threshold)),
        )

    def problems(self) -> list[BagProblem]:
        """One problem per topic and kind: gaps, header stamps or log times going backwards."""
        if not self._tracks:
            return []
        start = self._start()

        def at(log_time: int) -> str:
            return f"+{(log_time - start) / NS_PER_S:.3f} s"

        found = []
        for topic, track in sorted(self._tracks.items()):
            gaps = self._gaps(track)
            if gaps is not None and gaps.count:
                found.append(
                    BagProblem(
                        "gap",
                        f"topic {topic}: {gaps.count} gap(s) longer than "
                        f"{gaps.threshold:.3f} s (median period {gaps.median_period:.3f} s); the "
                        f"longest, {gaps.longest:.3f} s, starts at {at(gaps.longest_at)}",
                        topic,
                    )
                )
            if track.first_stamp_backwards_at is not None:  # set with the first one
                found.append(
                    BagProblem(
                        "out_of_order",
                        f"topic {topic}: {track.stamps_backwards} header stamp(s) "
                        f"not after the previous one, first at {at(track.first_stamp_backwards_at)}",
                        topic,
                    )
                )
            if track.first_log_backwards_at is not None:
                found.append(
                    BagProblem(
                        "out_of_order",
                        f"topic {topic}: log time went backwards "
                        f"{track.log_backwards} time(s), first at {at(track.first_log_backwards_at)}",
                        topic,
                    )
                )
        return found

    def summary(self) -> dict[str, dict]:
        """Per topic (JSON-able): count, rate_hz (None below two messages), max_gap_s,
        out_of_order (stamps), log_time_backwards, first/last header stamp and log time (ns)."""
        result = {}
        for topic, track in sorted(self._tracks.items()):
            first, last = min(track.log_times), max(track.log_times)
            gaps = self._gaps(track)
            count = len(track.log_times)
            result[topic] = {
                "count": count,
                "rate_hz": (count - 1) * NS_PER_S / (last - first) if last > first else None,
                "max_gap_s": gaps.longest if gaps else None,
                "out_of_order": track.stamps_backwards,
                "log_time_backwards": track.log_backwards,
                "first_stamp_ns": track.first_stamp,
                "last_stamp_ns": track.last_stamp,
                "first_log_time_ns": first,
                "last_log_time_ns": last,
            }
        return result
