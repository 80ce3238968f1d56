"""Sequential MCAP scanner: what a writer that never closed its file left behind.

rosbags' reader needs the summary and footer an MCAP writer adds on close.  After a kill -9 (or a
copy cut short) they are missing and the last chunk may be cut in half.  MCAP records delimit
themselves (opcode, uint64 length, content), so every complete record before the damage can
still be read front to back.  ``scan_mcap`` (pass one) checks each chunk (length, size, CRC) and
collects schemas, channels, counts and where each block of messages lies; ``iter_messages``
(pass two) reads the messages back in log-time order with one block in memory at a time.
"""

from __future__ import annotations

import heapq
import os
import struct
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from rosbags.rosbag2.errors import ReaderError
from rosbags.rosbag2.storage_mcap import decompress

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER = 0x01
OP_FOOTER = 0x02
OP_SCHEMA = 0x03
OP_CHANNEL = 0x04
OP_MESSAGE = 0x05
OP_CHUNK = 0x06
OP_METADATA = 0x0C
RECORD_NAMES = {
    OP_HEADER: "header",
    OP_FOOTER: "footer",
    OP_SCHEMA: "schema",
    OP_CHANNEL: "channel",
    OP_MESSAGE: "message",
    OP_CHUNK: "chunk",
    OP_METADATA: "metadata",
}
RECORD_HEAD = struct.Struct("<BQ")  # opcode, content length
MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
CHUNK_HEAD = struct.Struct("<QQQI")  # start time, end time, uncompressed size, CRC32
CUSTOM_DATA_RECORD = "lightwam_ros/custom_data"
"""Name of the MCAP metadata record in which BagWriter keeps the bag's custom data durable."""


class McapFormatError(ValueError):
    """The bytes are not (or no longer) a well-formed MCAP record."""


@dataclass(frozen=True)
class Schema:
    id: int
    name: str
    encoding: str
    data: str


@dataclass(frozen=True)
class Channel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Block:
    """Messages stored together: one chunk, or a run of records outside any chunk
    (``compression`` "" and ``crc`` 0 then, as stored)."""

    offset: int  # file offset of the stored (maybe compressed) record bytes
    stored_size: int
    compression: str
    uncompressed_size: int
    crc: int
    start_ns: int
    end_ns: int
    channel_ids: frozenset[int]


@dataclass
class McapScan:
    """What ``scan_mcap`` found.  ``damage`` says why the scan stopped before a footer;
    ``lost_span_ns`` is the log-time range of a chunk cut off by the damage, when known."""

    path: Path
    file_size: int
    schemas: dict[int, Schema] = field(default_factory=dict)
    channels: dict[int, Channel] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)
    message_counts: dict[int, int] = field(default_factory=dict)
    metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    complete: bool = False
    valid_end: int = 0
    damage: str | None = None
    lost_span_ns: tuple[int, int] | None = None

    @property
    def message_count(self) -> int:
        return sum(self.message_counts.values())

    @property
    def start_ns(self) -> int | None:
        return min((b.start_ns for b in self.blocks), default=None)

    @property
    def end_ns(self) -> int | None:
        return max((b.end_ns for b in self.blocks), default=None)


class _Cursor:
    """Reads MCAP primitives from a record's content; short content raises McapFormatError."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, size: int) -> memoryview:
        if size < 0 or self.pos + size > len(self.data):
            raise McapFormatError(f"field of {size} bytes runs past the end of its record")
        view = self.data[self.pos : self.pos + size]
        self.pos += size
        return view

    def uint(self, fmt: str) -> int:
        unpacker = struct.Struct("<" + fmt)
        return unpacker.unpack(self.take(unpacker.size))[0]

    def string(self) -> str:
        try:
            return bytes(self.take(self.uint("I"))).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise McapFormatError(f"string is not UTF-8: {exc}") from None

    def string_map(self) -> dict[str, str]:
        entries = _Cursor(self.take(self.uint("I")))
        result = {}
        while entries.pos < len(entries.data):
            key = entries.string()
            result[key] = entries.string()
        return result


def _parse_schema(content: memoryview) -> Schema:
    cursor = _Cursor(content)
    schema_id = cursor.uint("H")
    name, encoding = cursor.string(), cursor.string()
    return Schema(schema_id, name, encoding, cursor.string())


def _parse_channel(content: memoryview) -> Channel:
    cursor = _Cursor(content)
    channel_id, schema_id = cursor.uint("H"), cursor.uint("H")
    topic, encoding = cursor.string(), cursor.string()
    return Channel(channel_id, schema_id, topic, encoding, cursor.string_map())


def _parse_message(content: memoryview) -> tuple[int, int, memoryview]:
    """(channel id, log time, data)."""
    if len(content) < MESSAGE_HEAD.size:
        raise McapFormatError(f"message record of {len(content)} bytes is too short")
    channel_id, _, log_time, _ = MESSAGE_HEAD.unpack_from(content)
    return channel_id, log_time, content[MESSAGE_HEAD.size :]


def _records(data: memoryview) -> Iterator[tuple[int, memoryview]]:
    """(opcode, content) of the records packed in ``data`` (a chunk's or a run's bytes)."""
    pos = 0
    while pos < len(data):
        if pos + RECORD_HEAD.size > len(data):
            raise McapFormatError(f"record header cut off at byte {pos} of {len(data)}")
        opcode, length = RECORD_HEAD.unpack_from(data, pos)
        start = pos + RECORD_HEAD.size
        if start + length > len(data):
            raise McapFormatError(
                f"{RECORD_NAMES.get(opcode, hex(opcode))} record at byte "
                f"{pos} runs {start + length - len(data)} bytes past its end"
            )
        yield opcode, data[start : start + length]
        pos = start + length


def metadata_record(name: str, values: Mapping[str, str]) -> bytes:
    """An MCAP metadata record (opcode, length, name, string map) ready to append to a file."""

    def string(text: str) -> bytes:
        encoded = text.encode("utf-8")
        return struct.pack("<I", len(encoded)) + encoded

    entries = b"".join(string(key) + string(value) for key, value in values.items())
    content = string(name) + struct.pack("<I", len(entries)) + entries
    return RECORD_HEAD.pack(OP_METADATA, len(content)) + content


class _BlockCollector:
    """Message statistics of the block being scanned."""

    def __init__(self) -> None:
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.channel_ids: set[int] = set()

    def add(self, channel_id: int, log_time: int) -> None:
        self.start_ns = log_time if self.start_ns is None else min(self.start_ns, log_time)
        self.end_ns = log_time if self.end_ns is None else max(self.end_ns, log_time)
        self.channel_ids.add(channel_id)


class _Scanner:
    def __init__(self, stream: BinaryIO, scan: McapScan) -> None:
        self.stream = stream
        self.scan = scan
        # (start, end, statistics) of records outside chunks, while they last
        self.unchunked: tuple[int, int, _BlockCollector] | None = None

    def scan_records(self) -> None:
        scan, pos = self.scan, len(MAGIC)
        scan.valid_end = pos
        while pos < scan.file_size:
            head = self.stream.read(RECORD_HEAD.size)
            if len(head) < RECORD_HEAD.size:
                scan.damage = f"the file ends inside the record header at byte {pos}"
                break
            opcode, length = RECORD_HEAD.unpack(head)
            end = pos + RECORD_HEAD.size + length
            name = RECORD_NAMES.get(opcode, f"0x{opcode:02x}")
            if end > scan.file_size:
                scan.damage = (
                    f"the file ends inside a {name} record at byte {pos} "
                    f"({end - scan.file_size} of its bytes are missing)"
                )
                if opcode == OP_CHUNK:
                    self._note_lost_chunk(length)
                break
            if opcode == OP_FOOTER:
                scan.complete = True
                scan.valid_end = end
                break
            try:
                self._handle(opcode, pos, length)
            except McapFormatError as exc:
                scan.damage = f"the {name} record at byte {pos} is damaged ({exc})"
                break
            pos = scan.valid_end = end
            self.stream.seek(end)
        else:
            scan.damage = (
                "the file has no summary and footer (its writer did not close it, e.g. it was killed)"
            )
        self._end_unchunked()

    def _handle(self, opcode: int, pos: int, length: int) -> None:
        content_at = pos + RECORD_HEAD.size
        if opcode == OP_CHUNK:
            self._end_unchunked()
            self._chunk(content_at, length)
        elif opcode in (OP_SCHEMA, OP_CHANNEL, OP_MESSAGE):
            self._top_level(opcode, content_at, memoryview(self.stream.read(length)))
        else:
            self._end_unchunked()
            if opcode == OP_METADATA:
                cursor = _Cursor(self.stream.read(length))
                name = cursor.string()
                self.scan.metadata[name] = cursor.string_map()

    def _register(self, opcode: int, content: memoryview, block: _BlockCollector) -> None:
        if opcode == OP_SCHEMA:
            schema = _parse_schema(content)
            self.scan.schemas[schema.id] = schema
        elif opcode == OP_CHANNEL:
            channel = _parse_channel(content)
            self.scan.channels[channel.id] = channel
        elif opcode == OP_MESSAGE:
            channel_id, log_time, _ = _parse_message(content)
            block.add(channel_id, log_time)
            self.scan.message_counts[channel_id] = self.scan.message_counts.get(channel_id, 0) + 1

    def _chunk(self, content_at: int, length: int) -> None:
        cursor = _Cursor(self.stream.read(length))
        _, _, uncompressed_size, crc = (cursor.uint(f) for f in "QQQI")
        compression = cursor.string()
        stored_size = cursor.uint("Q")
        offset = content_at + cursor.pos
        records = _decompressed(cursor.take(stored_size), compression, uncompressed_size, crc)
        block = _BlockCollector()
        for opcode, content in _records(memoryview(records)):
            self._register(opcode, content, block)
        self._add_block(offset, stored_size, compression, uncompressed_size, crc, block)

    def _top_level(self, opcode: int, content_at: int, content: memoryview) -> None:
        if self.unchunked is None:
            self.unchunked = (content_at - RECORD_HEAD.size, 0, _BlockCollector())
        start, _, block = self.unchunked
        self._register(opcode, content, block)
        self.unchunked = (start, content_at + len(content), block)

    def _end_unchunked(self) -> None:
        if self.unchunked is not None:
            start, end, block = self.unchunked
            self._add_block(start, end - start, "", end - start, 0, block)
            self.unchunked = None

    def _add_block(
        self,
        offset: int,
        stored_size: int,
        compression: str,
        uncompressed_size: int,
        crc: int,
        block: _BlockCollector,
    ) -> None:
        if block.start_ns is not None and block.end_ns is not None:
            self.scan.blocks.append(
                Block(
                    offset,
                    stored_size,
                    compression,
                    uncompressed_size,
                    crc,
                    block.start_ns,
                    block.end_ns,
                    frozenset(block.channel_ids),
                )
            )

    def _note_lost_chunk(self, length: int) -> None:
        head = self.stream.read(min(length, CHUNK_HEAD.size))
        if len(head) == CHUNK_HEAD.size:
            start_ns, end_ns, _, _ = CHUNK_HEAD.unpack(head)
            if start_ns <= end_ns:
                self.scan.lost_span_ns = (start_ns, end_ns)


def _decompressed(data: memoryview, compression: str, size: int, crc: int) -> bytes:
    try:
        return decompress(bytes(data), compression, size, crc)
    except (ReaderError, ValueError, RuntimeError, OSError) as exc:  # zstd/lz4 errors vary
        raise McapFormatError(f"chunk data cannot be decompressed: {exc}") from None


def scan_mcap(path: str | os.PathLike) -> McapScan:
    """Pass one over an MCAP file, stopping at the footer or at the first damaged record.
    Raises McapFormatError when there is nothing to read (empty file, not MCAP)."""
    path = Path(path)
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        magic = stream.read(len(MAGIC))
        if not magic:
            raise McapFormatError(f"{path} is empty")
        if magic != MAGIC:
            raise McapFormatError(f"{path} is not an MCAP file (it does not start with the MCAP magic bytes)")
        scan = McapScan(path=path, file_size=size)
        _Scanner(stream, scan).scan_records()
    return scan


def _block_messages(
    stream: BinaryIO, block: Block, index: int, wanted: Collection[int]
) -> Iterator[tuple[int, int, int, int, bytes | None]]:
    """A sentinel at the block's start time, then its messages sorted by log time, as
    (log time, block index, position, channel id, data): reading waits for the sentinel's turn
    in the merge, so only the blocks that overlap in time are in memory together."""
    yield block.start_ns, index, -1, -1, None
    stream.seek(block.offset)
    data = stream.read(block.stored_size)
    if len(data) != block.stored_size:
        raise McapFormatError(
            f"{block.stored_size - len(data)} bytes of the block at byte "
            f"{block.offset} are gone (the file changed since it was scanned)"
        )
    records = _decompressed(memoryview(data), block.compression, block.uncompressed_size, block.crc)
    messages: list[tuple[int, int, int, int, bytes]] = []
    for opcode, content in _records(memoryview(records)):
        if opcode == OP_MESSAGE:
            channel_id, log_time, payload = _parse_message(content)
            if channel_id in wanted:
                messages.append((log_time, index, len(messages), channel_id, bytes(payload)))
    messages.sort()
    yield from messages


def iter_messages(
    scan: McapScan, channel_ids: Collection[int] | None = None
) -> Iterator[tuple[int, int, bytes]]:
    """Pass two: (channel id, log time, data) of the scanned blocks in log-time order (ties keep
    file order).  Raises McapFormatError if the file no longer matches the scan."""
    wanted = set(scan.channels if channel_ids is None else channel_ids)
    with scan.path.open("rb") as stream:
        sources = [
            _block_messages(stream, block, index, wanted)
            for index, block in enumerate(scan.blocks)
            if block.channel_ids & wanted
        ]
        for log_time, _, position, channel_id, data in heapq.merge(*sources):
            if position >= 0 and data is not None:
                yield channel_id, log_time, data
