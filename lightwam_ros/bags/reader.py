"""Reading rosbag2 bags (MCAP or sqlite3) - intact ones through rosbags, damaged ones by scanning.

Intact bags are read by rosbags' ``Reader``.  When it cannot open a bag - no metadata.yaml after
a kill -9, an MCAP file without summary and footer, a chunk cut in half - the MCAP files are
scanned record by record (``mcap_recovery``) and everything before the damage is read, with a
"truncated" problem that says how much.  Bad input never ends in a traceback: ``BagError`` when
there is nothing to read at all, otherwise ``problems``.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from lightwam_ros.bags.mcap_recovery import (
    CUSTOM_DATA_RECORD,
    MAGIC,
    McapFormatError,
    McapScan,
    iter_messages,
    scan_mcap,
)
from lightwam_ros.bags.typestore import project_typestore

NS_PER_S = 1_000_000_000
IDL_SEPARATOR = "=" * 80 + "\n"
DEFINITION_FORMATS = {MessageDefinitionFormat.MSG: "ros2msg", MessageDefinitionFormat.IDL: "ros2idl"}


class BagError(Exception):
    """There is nothing to read: the path is missing, empty or not a bag."""


class BagDecodeError(Exception):
    """A message cannot be decoded (no definition for its type, or bytes that do not match)."""


@dataclass(frozen=True)
class BagProblem:
    """Something wrong with a bag.  Kinds: unreadable, truncated, unknown_type, missing_topic,
    gap, out_of_order, decode_error."""

    kind: str
    message: str
    topic: str | None = None


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    log_time_ns: int
    data: bytes


@dataclass(frozen=True)
class _Stream:
    """One connection (rosbags) or channel (MCAP scan) of a bag."""

    topic: str
    msgtype: str
    count: int
    definition: tuple[str, str] | None  # (format, text) when the bag embeds one


def _parse_definition(msgtype: str, fmt: str, text: str) -> dict:
    """rosbags type definitions from an embedded definition (a .msg text with its dependencies,
    or IDL sections as rosbag2 writes them)."""
    if fmt == "ros2msg":
        return get_types_from_msg(text, msgtype)
    sections = text.split(IDL_SEPARATOR)[1:] if text.startswith(IDL_SEPARATOR) else [text]
    types: dict = {}
    for section in sections:
        types.update(
            get_types_from_idl(section.split("\n", 1)[1] if section.startswith("IDL: ") else section)
        )
    return types


def _bag_info(bag_dir: Path) -> dict | None:
    """The rosbag2_bagfile_information of a directory's metadata.yaml; None if unreadable."""
    try:
        info = yaml.safe_load((bag_dir / "metadata.yaml").read_text(encoding="utf-8"))
        section = info["rosbag2_bagfile_information"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return section if isinstance(section, dict) else None


def _custom_data(info: dict) -> dict[str, str]:
    custom = info.get("custom_data")
    return {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}


def _mcap_files(path: Path) -> list[Path]:
    """The MCAP files of a bag: the file itself, or those of a directory (metadata.yaml's list
    when it names existing MCAP files, else every *.mcap in it)."""
    if path.is_file():
        with path.open("rb") as stream:
            return [path] if path.suffix == ".mcap" or stream.read(8) == MAGIC else []
    info = _bag_info(path) or {}
    listed = [path / Path(str(name)).name for name in info.get("relative_file_paths") or []]
    if listed and all(p.suffix == ".mcap" and p.is_file() for p in listed):
        return listed
    return sorted(path.glob("*.mcap"))


def _seconds(ns: int) -> str:
    return f"{ns / NS_PER_S:.3f} s"


class BagReader:
    """A rosbag2 bag (directory, .mcap or .db3 file) opened for reading; see the module doc.

    Attributes: ``topics`` (topic -> message type), ``counts`` (topic -> messages),
    ``definitions`` (type -> (format, text), as embedded in the bag), ``start_ns``/``end_ns``
    (first/last log time, None when empty), ``metadata`` (custom data), ``problems``,
    ``recovered`` (read by scanning, not through rosbags)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.topics: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.definitions: dict[str, tuple[str, str]] = {}
        self.start_ns: int | None = None
        self.end_ns: int | None = None
        self.metadata: dict[str, str] = {}
        self.problems: list[BagProblem] = []
        self.recovered = False
        self._bag_types: dict = {}
        self._typestore: Typestore | None = None
        self._rosbags: Reader | None = None
        self._scans: list[McapScan] = []
        self._open()

    # ---------------------------------------------------------------------------------- opening

    def _open(self) -> None:
        path = self.path
        if not path.exists():
            raise BagError(f"bag {path} does not exist")
        if path.is_file() and path.stat().st_size == 0:
            raise BagError(f"bag file {path} is empty")
        try:
            reader = Reader(path)
            reader.open()
        # rosbags raises many kinds of errors on damaged or foreign files; each one only means
        # "scan it instead", and its text goes into the message when scanning fails too.
        except Exception as exc:  # noqa: BLE001
            self._open_by_scanning(exc)
        else:
            self._rosbags = reader
            self._adopt_rosbags(reader)
        if path.is_dir() and (info := _bag_info(path)) is not None:
            self.metadata = _custom_data(info)
        self._check_types()

    def _adopt_rosbags(self, reader: Reader) -> None:
        streams = [
            _Stream(
                conn.topic,
                conn.msgtype,
                conn.msgcount,
                (DEFINITION_FORMATS[conn.msgdef.format], conn.msgdef.data)
                if conn.msgdef.format in DEFINITION_FORMATS and conn.msgdef.data
                else None,
            )
            for conn in reader.connections
        ]
        self._adopt_streams(streams)
        if reader.message_count:
            self.start_ns, self.end_ns = reader.start_time, reader.end_time - 1

    def _open_by_scanning(self, rosbags_error: Exception) -> None:
        files = _mcap_files(self.path)
        if not files:
            raise BagError(f"{self.path} is not a readable bag: {rosbags_error}")
        for file in files:
            try:
                self._scans.append(scan_mcap(file))
            except (McapFormatError, OSError) as exc:
                if len(files) == 1:
                    raise BagError(f"{self.path} is not a readable bag: {exc}") from None
                self.problems.append(BagProblem("unreadable", f"{file.name}: {exc}"))
        if not self._scans:
            raise BagError(f"{self.path} is not a readable bag: none of its MCAP files can be read")
        self.recovered = True
        streams = []
        for scan in self._scans:
            self._note_damage(scan, rosbags_error)
            for channel in scan.channels.values():
                schema = scan.schemas.get(channel.schema_id)
                definition = (schema.encoding, schema.data) if schema and schema.data else None
                streams.append(
                    _Stream(
                        channel.topic,
                        schema.name if schema else "",
                        scan.message_counts.get(channel.id, 0),
                        definition,
                    )
                )
            self.metadata.update(scan.metadata.get(CUSTOM_DATA_RECORD, {}))
        self._adopt_streams(streams)
        starts = [s.start_ns for s in self._scans if s.start_ns is not None]
        ends = [s.end_ns for s in self._scans if s.end_ns is not None]
        self.start_ns, self.end_ns = min(starts, default=None), max(ends, default=None)

    def _note_damage(self, scan: McapScan, rosbags_error: Exception) -> None:
        recovered = f"recovered {scan.message_count} messages" + (
            f" ({_seconds(scan.end_ns - scan.start_ns)} of log time)"
            if scan.start_ns is not None and scan.end_ns is not None
            else ""
        )
        if scan.damage is None:
            self.problems.append(
                BagProblem(
                    "unreadable",
                    f"{scan.path.name}: rosbags cannot open it ({rosbags_error}); {recovered} by scanning it",
                )
            )
            return
        lost = (
            f"; the cut-off chunk held {_seconds(scan.lost_span_ns[1] - scan.lost_span_ns[0])} of messages"
            if scan.lost_span_ns
            else ""
        )
        self.problems.append(
            BagProblem(
                "truncated",
                f"{scan.path.name}: {scan.damage}; {recovered} from the complete "
                f"records before it, {scan.file_size - scan.valid_end} bytes after them are lost" + lost,
            )
        )

    def _adopt_streams(self, streams: list[_Stream]) -> None:
        counts: Counter[str] = Counter()
        for stream in streams:
            self.topics.setdefault(stream.topic, stream.msgtype)
            counts[stream.topic] += stream.count
            if stream.definition is not None:
                self.definitions.setdefault(stream.msgtype, stream.definition)
        self.counts = {topic: counts[topic] for topic in self.topics}

    def _check_types(self) -> None:
        """Parse the embedded definitions; report types that can be listed but not decoded."""
        unusable: dict[str, str] = {}
        for msgtype, (fmt, text) in self.definitions.items():
            try:
                self._bag_types.update(_parse_definition(msgtype, fmt, text))
            except Exception as exc:  # noqa: BLE001 - the parsers raise assorted errors
                unusable[msgtype] = f"its embedded definition cannot be parsed ({exc})"
        known = project_typestore().fielddefs
        for topic, msgtype in self.topics.items():
            if msgtype in unusable or (msgtype not in self._bag_types and msgtype not in known):
                reason = unusable.get(
                    msgtype,
                    "the bag holds no definition of it and it is not a ROS 2 Kilted or lightwam_ros message",
                )
                self.problems.append(
                    BagProblem(
                        "unknown_type",
                        f"topic {topic}: message type {msgtype or '(none)'} - "
                        f"{reason}; its {self.counts[topic]} messages can be listed but not decoded",
                        topic,
                    )
                )

    # ---------------------------------------------------------------------------------- reading

    def messages(self, topics: Collection[str] | None = None) -> Iterator[BagMessage]:
        """Messages in log-time order, optionally of some topics only.  Damage met on the way
        ends the iteration and adds a problem."""
        wanted = set(self.topics if topics is None else [topics] if isinstance(topics, str) else topics)
        count = 0
        try:
            for message in self._raw_messages(wanted):
                count += 1
                yield message
        # rosbags and the scanner raise various errors on bytes that went bad; all of them
        # mean the same to a caller: the rest of the bag cannot be read.
        except Exception as exc:  # noqa: BLE001
            problem = BagProblem("truncated", f"reading stopped after {count} messages: {exc}")
            if problem not in self.problems:
                self.problems.append(problem)

    def _raw_messages(self, wanted: set[str]) -> Iterator[BagMessage]:
        if self._rosbags is not None:
            connections = [c for c in self._rosbags.connections if c.topic in wanted]
            if connections:  # an empty list would mean "all" to rosbags
                for conn, log_time, data in self._rosbags.messages(connections=connections):
                    yield BagMessage(conn.topic, conn.msgtype, log_time, bytes(data))
            return
        for scan in self._scans:
            streams = {
                cid: (ch.topic, scan.schemas[ch.schema_id].name if ch.schema_id in scan.schemas else "")
                for cid, ch in scan.channels.items()
                if ch.topic in wanted
            }
            for channel_id, log_time, data in iter_messages(scan, streams):
                topic, msgtype = streams[channel_id]
                yield BagMessage(topic, msgtype, log_time, data)

    @property
    def typestore(self) -> Typestore:
        """A store with the bag's embedded definitions, completed by the project's store for
        types the bag does not define (built on first use, private to this reader)."""
        if self._typestore is None:
            types = dict(self._bag_types)
            for name, fielddef in project_typestore().fielddefs.items():
                types.setdefault(name, fielddef)
            store = get_typestore(Stores.EMPTY)
            try:
                store.register(types)
            except Exception as exc:  # noqa: BLE001 - rosbags' code generator raises assorted
                raise BagDecodeError(
                    f"the message definitions of {self.path} are inconsistent: {exc}"
                ) from None
            self._typestore = store
        return self._typestore

    def decode(self, message: BagMessage) -> object:
        """The rosbags message object of ``message``; BagDecodeError says why not."""
        where = (
            f"{message.msgtype or '(no type)'} message on {message.topic} at log time "
            f"{_seconds(message.log_time_ns)}"
        )
        store = self.typestore
        if message.msgtype not in store.fielddefs:
            raise BagDecodeError(f"cannot decode the {where}: its type has no definition")
        try:
            return store.deserialize_cdr(message.data, message.msgtype)
        # Arbitrary bytes make the generated deserializers raise assorted errors.
        except Exception as exc:  # noqa: BLE001
            raise BagDecodeError(f"cannot decode the {where}: {exc}") from None

    # ---------------------------------------------------------------------------------- closing

    def close(self) -> None:
        reader, self._rosbags = self._rosbags, None
        if reader is not None:
            reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
