"""Writing MCAP rosbag2 bags from a live system without ever holding up the caller.

``offer`` only appends to a bounded queue (dropping, and counting, what does not fit); a
background thread does all the file work.  Every ``flush_period`` it closes the current MCAP
chunk and flushes + fsyncs the file, so after a kill -9 everything older than about one period is
on disk and ``BagReader`` recovers it.  ``close`` adds the summary, footer and metadata.yaml that
make the bag readable by rosbags and by ``ros2 bag``.  The bag embeds every message definition
(rosbags' ``Writer`` does that from the type store), the project's own messages included.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, cast

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.metadata import parse_qos
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from lightwam_ros.bags.mcap_recovery import CUSTOM_DATA_RECORD, metadata_record
from lightwam_ros.bags.typestore import project_typestore

if TYPE_CHECKING:
    from rosbags.rosbag2.metadata import QosDict

MIB = 1 << 20
ROSBAG2_VERSION: Final = 9
MAX_LOG_TIME_NS = 2**63 - 1  # rosbag2 stores signed 64-bit nanoseconds
# rosbags' McapWriter keeps the open chunk (up to 1 MiB) in memory and writes the file only when
# the chunk is full or the bag is closed; a killed recorder would lose all of it.  The writer
# thread therefore closes the chunk itself on every flush, through these attributes of the
# pinned rosbags 0.11.9: checked when a bag is opened; test_bag_kill.py guards the behaviour.
STORAGE_INTERNALS = ("chunk", "close_chunk", "bio")
_INFINITE = {"sec": 9223372036, "nsec": 854775807}  # rmw's infinite duration, as rosbag2 dumps it
QOS_DEFAULTS = {
    "history": "keep_last",
    "depth": 10,
    "reliability": "reliable",
    "durability": "volatile",
    "deadline": _INFINITE,
    "lifespan": _INFINITE,
    "liveliness": "automatic",
    "liveliness_lease_duration": _INFINITE,
    "avoid_ros_namespace_conventions": False,
}


class BagWriteError(Exception):
    """The bag cannot be created, or a call was invalid (the message says why)."""


@dataclass(frozen=True)
class WriterStats:
    written: int
    dropped: int
    bytes_written: int  # message payload bytes
    per_topic: dict[str, int]  # messages written per topic
    dropped_per_topic: dict[str, int]


class BagWriter:
    """An MCAP rosbag2 bag at ``path`` (a new directory) fed from any thread; see the module doc.

    ``max_queue_messages`` / ``max_queue_bytes`` bound what waits for the writer thread,
    messages being written included, so memory stays bounded when the disk is slow.
    ``error`` says why the writer thread stopped (e.g. disk full); None while it runs."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        typestore: Typestore | None = None,
        max_queue_messages: int = 1000,
        max_queue_bytes: int = 256 * MIB,
        flush_period: float = 1.0,
    ) -> None:
        if max_queue_messages < 1 or max_queue_bytes < 1 or not flush_period > 0:
            raise BagWriteError(
                f"queue limits must be >= 1 and the flush period > 0 s, got max_queue_messages="
                f"{max_queue_messages}, max_queue_bytes={max_queue_bytes}, "
                f"flush_period={flush_period}"
            )
        self.path = Path(path)
        self._typestore = typestore if typestore is not None else project_typestore()
        self._max_messages = max_queue_messages
        self._max_bytes = max_queue_bytes
        self._flush_period = flush_period
        self._bag = _open_mcap_bag(self.path)

        self._io_lock = threading.Lock()  # guards self._bag: rosbags' Writer is not thread-safe
        self._connections: dict[str, Connection] = {}  # replaced, never mutated: offer reads it
        self._custom_data_changed = False
        self._unflushed = False

        self._state = threading.Condition()  # guards everything below
        self._queue: deque[tuple[str, Connection, int, bytes]] = deque()
        self._pending_messages = 0  # queued or being written
        self._pending_bytes = 0
        self._written: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._bytes_written = 0
        self._closing = False
        self._closed = False
        self.error: str | None = None

        self._thread = threading.Thread(target=self._run, name=f"bag-writer {self.path.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ public API

    def add_topic(self, topic: str, msgtype: str, *, offered_qos: str = "") -> None:
        """Declare a topic (any thread, any time).  ``offered_qos``: rosbag2's YAML list of QoS
        profiles, "" for none; keys left out take rosbag2's defaults (e.g.
        ``"- {reliability: reliable, durability: transient_local, depth: 1}"``).  Adding a
        topic again with the same type does nothing."""
        with self._io_lock:
            existing = self._connections.get(topic)
            if existing is not None:
                if existing.msgtype != msgtype:
                    raise BagWriteError(
                        f"topic {topic} was added as {existing.msgtype}; it "
                        f"cannot be added again as {msgtype}"
                    )
                return
            if msgtype not in self._typestore.fielddefs:
                raise BagWriteError(
                    f"cannot record topic {topic}: unknown message type {msgtype!r} (expected "
                    "a full name such as sensor_msgs/msg/Image of a ROS 2 Kilted or "
                    "lightwam_ros message, or a type registered in the writer's type store)"
                )
            qos = _qos_profiles(topic, offered_qos)
            if self._bag.storage is None:
                raise BagWriteError(f"cannot add topic {topic}: bag {self.path} is closed")
            connection = self._bag.add_connection(
                topic, msgtype, typestore=self._typestore, offered_qos_profiles=qos
            )
            self._connections = {**self._connections, topic: connection}

    def offer(self, topic: str, log_time_ns: int, data: bytes) -> bool:
        """Queue one serialized (CDR) message; never blocks.  False when it was dropped: the
        queue is full, the writer failed (see ``error``) or the bag is closing."""
        connection = self._connections.get(topic)
        if connection is None:
            raise BagWriteError(f"topic {topic} was not added to bag {self.path} (call add_topic first)")
        if (
            not isinstance(data, (bytes, bytearray, memoryview))
            or not isinstance(log_time_ns, int)
            or not 0 <= log_time_ns <= MAX_LOG_TIME_NS
        ):
            raise BagWriteError(
                f"topic {topic}: expected serialized bytes and a log time of 0 to "
                f"{MAX_LOG_TIME_NS} ns, got {type(data).__name__} at "
                f"{log_time_ns!r}"
            )
        size = len(data)
        with self._state:
            if (
                self.error is not None
                or self._closing
                or self._pending_messages >= self._max_messages
                or self._pending_bytes + size > self._max_bytes
            ):
                self._dropped[topic] += 1
                return False
            self._queue.append((topic, connection, log_time_ns, data))
            self._pending_messages += 1
            self._pending_bytes += size
            self._state.notify()
        return True

    def set_metadata(self, key: str, value: str) -> None:
        """A custom_data entry of metadata.yaml (also kept durable in the MCAP file)."""
        with self._io_lock:
            if self._closed:
                raise BagWriteError(f"cannot set metadata {key}: bag {self.path} is closed")
            try:
                self._bag.set_custom_data(key, value)
            except WriterError as exc:
                raise BagWriteError(f"metadata {key}: {exc}") from None
            self._custom_data_changed = True

    def stats(self) -> WriterStats:
        with self._state:
            return WriterStats(
                sum(self._written.values()),
                sum(self._dropped.values()),
                self._bytes_written,
                dict(self._written),
                dict(self._dropped),
            )

    def close(self) -> WriterStats:
        """Write what is queued, then the summary and metadata.yaml.  Does not raise on write
        failures: they end up in ``error``.  Closing twice is harmless."""
        with self._state:
            self._closing = True
            self._state.notify()
        self._thread.join()
        with self._io_lock:
            if not self._closed:
                self._closed = True
                self._finish()
        return self.stats()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---------------------------------------------------------------------------- writer thread

    def _run(self) -> None:
        next_flush = time.monotonic() + self._flush_period
        while True:
            with self._state:
                while not self._queue and not self._closing:
                    timeout = next_flush - time.monotonic()
                    if timeout <= 0:
                        break
                    self._state.wait(timeout)
                batch = list(self._queue)
                self._queue.clear()
                closing = self._closing
            written = 0
            try:
                for item in batch:
                    self._write(*item)
                    written += 1
                if closing or time.monotonic() >= next_flush:
                    self._flush()
                    next_flush = time.monotonic() + self._flush_period
            # Disk full, I/O errors, a bad message: the thread must record it, never just die.
            except Exception as exc:  # noqa: BLE001
                self._fail(exc, [topic for topic, _, _, _ in batch[written:]])
                return
            if closing and not batch:
                return

    def _write(self, topic: str, connection: Connection, log_time_ns: int, data: bytes) -> None:
        with self._io_lock:
            self._bag.write(connection, log_time_ns, data)
            self._unflushed = True
        with self._state:
            self._pending_messages -= 1
            self._pending_bytes -= len(data)
            self._written[topic] += 1
            self._bytes_written += len(data)

    def _flush(self) -> None:
        """Close the open chunk (when it holds messages), persist changed custom data, fsync."""
        with self._io_lock:
            storage = self._bag.storage
            if not isinstance(storage, McapWriter) or not (self._unflushed or self._custom_data_changed):
                return
            if storage.chunk.msgs:
                storage.close_chunk()
            if self._custom_data_changed:
                storage.bio.write(metadata_record(CUSTOM_DATA_RECORD, self._bag.custom_data))
                self._custom_data_changed = False
            storage.bio.flush()
            os.fsync(storage.bio.fileno())
            self._unflushed = False

    def _fail(self, exc: Exception, unwritten: list[str]) -> None:
        """Record the error; the messages not written (``unwritten`` topics of the batch and
        everything still queued) count as dropped."""
        with self._state:
            self.error = f"writing bag {self.path} failed: {exc}"
            self._dropped.update(unwritten)
            self._dropped.update(topic for topic, _, _, _ in self._queue)
            self._queue.clear()
            self._pending_messages = self._pending_bytes = 0

    def _finish(self) -> None:
        """Summary, footer and metadata.yaml; on failure keep what the file already holds."""
        try:
            self._bag.close()
        except Exception as exc:  # noqa: BLE001 - I/O errors of any kind end up in ``error``
            self.error = self.error or f"closing bag {self.path} failed: {exc}"
            with contextlib.suppress(OSError):
                self._bag.abort()


def _qos_profiles(topic: str, offered_qos: str) -> list[Qos]:
    try:
        profiles = yaml.safe_load(offered_qos) or []
        if not isinstance(profiles, list) or not all(isinstance(p, dict) for p in profiles):
            raise TypeError("expected a YAML list of mappings")
        # parse_qos checks the keys and values itself (the errors caught below).
        return parse_qos(cast("list[QosDict]", [{**QOS_DEFAULTS, **profile} for profile in profiles]))
    except (yaml.YAMLError, ReaderError, KeyError, TypeError, AttributeError) as exc:
        raise BagWriteError(f"topic {topic}: bad offered_qos {offered_qos!r}: {exc}") from None


def _open_mcap_bag(path: Path) -> Writer:
    try:
        bag = Writer(path, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP)
        bag.open()
    except (WriterError, OSError) as exc:
        raise BagWriteError(f"cannot create bag {path}: {exc}") from None
    missing = [name for name in STORAGE_INTERNALS if not hasattr(bag.storage, name)]
    if missing:
        bag.abort()
        raise BagWriteError(
            f"this rosbags version's MCAP writer lacks {missing}; BagWriter "
            "needs rosbags 0.11.9 (see requirements/runtime.txt)"
        )
    return bag
