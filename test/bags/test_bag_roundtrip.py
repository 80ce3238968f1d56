"""Round trips: BagWriter -> BagReader byte for byte, rosbags' own writer -> BagReader, and
BagWriter -> rosbags' reader (what ``ros2 bag`` reads: metadata.yaml and an MCAP file with every
definition embedded, the project's ActionChunk included)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from bag_samples import CHUNK, IMAGE, TOPICS, recording
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from lightwam_ros.bags import BagReader, BagWriter, project_typestore
from lightwam_ros.bags import typestore as typestore_module

STORE = project_typestore()


def write_with_bag_writer(path: Path, samples, **options) -> None:
    with BagWriter(path, **options) as writer:
        for topic, msgtype in TOPICS.items():
            writer.add_topic(topic, msgtype)
        writer.set_metadata("embodiment", "libero_franka")
        for s in samples:
            assert writer.offer(s.topic, s.log_time_ns, s.data)


def read_all(path: Path) -> tuple[BagReader, list]:
    reader = BagReader(path)
    return reader, list(reader.messages())


def as_tuples(messages) -> list[tuple]:
    return [(m.topic, m.msgtype, m.log_time_ns, m.data) for m in messages]


def test_bag_writer_to_bag_reader_is_byte_for_byte(tmp_path: Path) -> None:
    samples = recording(STORE, 80, image_size=(48, 64))
    write_with_bag_writer(tmp_path / "bag", samples)
    reader, messages = read_all(tmp_path / "bag")
    with reader:
        assert as_tuples(messages) == as_tuples(samples)
        assert reader.topics == TOPICS
        assert reader.counts == {topic: 20 for topic in TOPICS}
        assert (reader.start_ns, reader.end_ns) == (samples[0].log_time_ns, samples[-1].log_time_ns)
        assert reader.metadata == {"embodiment": "libero_franka"}
        assert reader.problems == [] and not reader.recovered
        assert set(reader.definitions) == set(TOPICS.values())
        for message in messages:  # decode, serialize again: the same bytes
            decoded = reader.decode(message)
            assert bytes(reader.typestore.serialize_cdr(decoded, message.msgtype)) == message.data


def test_topic_filter_keeps_log_time_order(tmp_path: Path) -> None:
    samples = recording(STORE, 40)
    write_with_bag_writer(tmp_path / "bag", samples)
    wanted = {"/camera/image_raw", "/lightwam/action_chunk"}
    with BagReader(tmp_path / "bag") as reader:
        assert as_tuples(reader.messages(wanted)) == as_tuples(s for s in samples if s.topic in wanted)
        assert as_tuples(reader.messages("/instruction")) == as_tuples(
            s for s in samples if s.topic == "/instruction"
        )
        assert list(reader.messages(["/not/recorded"])) == []


@pytest.mark.parametrize("plugin", [StoragePlugin.MCAP, StoragePlugin.SQLITE3], ids=["mcap", "sqlite3"])
def test_bag_of_rosbags_writer_reads_back(tmp_path: Path, plugin: StoragePlugin) -> None:
    samples = recording(STORE, 40)
    with Writer(tmp_path / "bag", version=9, storage_plugin=plugin) as bag:
        connections = {
            topic: bag.add_connection(topic, msgtype, typestore=STORE) for topic, msgtype in TOPICS.items()
        }
        for s in samples:
            bag.write(connections[s.topic], s.log_time_ns, s.data)
    reader, messages = read_all(tmp_path / "bag")
    with reader:
        assert as_tuples(messages) == as_tuples(samples)
        assert reader.topics == TOPICS and reader.problems == []
        chunk = reader.decode(next(m for m in messages if m.msgtype == CHUNK))
        assert chunk.embodiment == "libero_franka" and chunk.actions.dtype == np.float32


def test_rosbags_reader_reads_a_bag_writer_bag(tmp_path: Path) -> None:
    """No default type store: AnyReader decodes from the definitions embedded in the bag."""
    samples = recording(STORE, 40)
    write_with_bag_writer(tmp_path / "bag", samples)
    with Reader(tmp_path / "bag") as plain:
        assert plain.message_count == len(samples)
        assert {c.topic: c.msgtype for c in plain.connections} == TOPICS
    with AnyReader([tmp_path / "bag"]) as reader:
        chunk_def = next(c.msgdef.data for c in reader.connections if c.msgtype == CHUNK)
        assert chunk_def.startswith("std_msgs/Header header\n")
        assert "MSG: std_msgs/Header" in chunk_def
        got = [(c.topic, t, bytes(d)) for c, t, d in reader.messages()]
        assert got == [(s.topic, s.log_time_ns, s.data) for s in samples]
        for connection, _, data in reader.messages():
            theirs = reader.deserialize(data, connection.msgtype)
            ours = STORE.deserialize_cdr(data, connection.msgtype)
            if connection.msgtype == CHUNK:
                np.testing.assert_array_equal(theirs.actions, ours.actions)
                assert theirs.header.stamp.nanosec == ours.header.stamp.nanosec
            elif connection.msgtype == IMAGE:
                np.testing.assert_array_equal(theirs.data, ours.data)


def test_action_chunk_hash_matches_the_rosidl_generated_one() -> None:
    """rosbag2 stores a type hash per topic; ours must equal what rosidl computed."""
    description = Path(sys.prefix) / "share" / "lightwam_ros" / "msg" / "ActionChunk.json"
    if not description.is_file():
        pytest.skip(f"no rosidl type description at {description}")
    hashes = {h["type_name"]: h["hash_string"] for h in json.loads(description.read_text())["type_hashes"]}
    assert STORE.hash_rihs01(CHUNK) == hashes[CHUNK]


def test_message_definitions_are_found_through_ament_prefix_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "ws"))
    assert tmp_path / "ws" / "share" / "lightwam_ros" / "msg" in typestore_module.msg_search_dirs()
    monkeypatch.setattr(typestore_module, "msg_search_dirs", lambda: [tmp_path / "nowhere"])
    with pytest.raises(typestore_module.MessageDefinitionsNotFound, match=r"ActionChunk\.msg.*nowhere"):
        typestore_module.find_msg_dir()
