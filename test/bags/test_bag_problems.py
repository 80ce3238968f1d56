"""Bad bags give a clear BagError (nothing to read) or a problem list - never a traceback."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from bag_samples import IMAGE, STRING, TOPICS, recording
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from lightwam_ros.bags import BagDecodeError, BagError, BagReader, BagWriter, project_typestore
from lightwam_ros.bags.mcap_recovery import MAGIC, scan_mcap
from lightwam_ros.tools.offline import bag_repair

STORE = project_typestore()
MYSTERY = "acme_msgs/msg/Mystery"


@pytest.fixture(scope="module")
def multi_chunk_bag(tmp_path_factory: pytest.TempPathFactory):
    """A closed BagWriter bag of ~2.8 MB of images: rosbags' writer closes a chunk at 1 MiB and
    no timed flush happens (flush_period 60 s), so the file holds several chunks."""
    samples = recording(STORE, 48, image_size=(240, 320))
    path = tmp_path_factory.mktemp("bags") / "bag"
    with BagWriter(path, flush_period=60.0) as writer:
        for topic, msgtype in TOPICS.items():
            writer.add_topic(topic, msgtype)
        for s in samples:
            writer.offer(s.topic, s.log_time_ns, s.data)
    return path, samples


def as_tuples(messages) -> list[tuple]:
    return [(m.topic, m.msgtype, m.log_time_ns, m.data) for m in messages]


def test_file_cut_inside_a_chunk_keeps_the_complete_chunks(tmp_path: Path, multi_chunk_bag) -> None:
    source, samples = multi_chunk_bag
    bag = tmp_path / "bag"
    shutil.copytree(source, bag)  # metadata.yaml stays: it no longer matches the file
    mcap = bag / "bag.mcap"
    blocks = scan_mcap(mcap).blocks
    assert len(blocks) >= 3
    last = blocks[-1]
    os.truncate(mcap, last.offset + last.stored_size // 2)
    with BagReader(bag) as reader:
        messages = list(reader.messages())
        kept = [s for s in samples if s.log_time_ns <= blocks[-2].end_ns]
        assert as_tuples(messages) == as_tuples(kept)
        assert reader.recovered and reader.counts == {
            topic: sum(s.topic == topic for s in kept) for topic in TOPICS
        }
        (problem,) = reader.problems
        assert problem.kind == "truncated"
        assert "the file ends inside a chunk record" in problem.message
        assert f"recovered {len(kept)} messages" in problem.message
        assert "the cut-off chunk held" in problem.message


def test_compressed_chunks_without_footer_are_recovered(tmp_path: Path) -> None:
    samples = recording(STORE, 40)
    path = tmp_path / "bag"
    bag = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    bag.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with bag:
        connections = {
            topic: bag.add_connection(topic, msgtype, typestore=STORE) for topic, msgtype in TOPICS.items()
        }
        for s in samples:
            bag.write(connections[s.topic], s.log_time_ns, s.data)
    mcap = path / "bag.mcap"
    (block,) = scan_mcap(mcap).blocks
    assert block.compression == "zstd"
    os.truncate(mcap, block.offset + block.stored_size)  # summary and footer gone
    with BagReader(path) as reader:
        assert as_tuples(reader.messages()) == as_tuples(samples)
        assert [p.kind for p in reader.problems] == ["truncated"]


def test_messages_outside_chunks_are_recovered(tmp_path: Path, multi_chunk_bag) -> None:
    """Other MCAP writers may store schemas, channels and messages outside chunks."""
    source, samples = multi_chunk_bag
    chunked = (source / "bag.mcap").read_bytes()
    records = b"".join(
        chunked[b.offset : b.offset + b.stored_size] for b in scan_mcap(source / "bag.mcap").blocks
    )
    unchunked = tmp_path / "unchunked.mcap"
    unchunked.write_bytes(MAGIC + records)
    with BagReader(unchunked) as reader:
        assert reader.recovered and reader.topics == TOPICS
        assert as_tuples(reader.messages()) == as_tuples(samples)


def test_damage_met_while_iterating_ends_cleanly(tmp_path: Path, multi_chunk_bag) -> None:
    """The summary is intact, so rosbags opens the bag; a chunk in the middle is garbage."""
    source, samples = multi_chunk_bag
    bag = tmp_path / "bag"
    shutil.copytree(source, bag)
    middle = scan_mcap(bag / "bag.mcap").blocks[1]
    with open(bag / "bag.mcap", "r+b") as stream:
        stream.seek(middle.offset)
        stream.write(b"\x05" + b"\xff" * 8)  # a message record claiming 2**64 - 1 bytes
    with BagReader(bag) as reader:
        assert not reader.recovered and reader.problems == []
        messages = list(reader.messages())
        (problem,) = reader.problems
        assert problem.kind == "truncated"
        assert problem.message.startswith(f"reading stopped after {len(messages)} messages")
        assert as_tuples(messages) == as_tuples(samples[: len(messages)])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(os.urandom(4096)), "not an MCAP file"),
    ],
)
def test_nothing_to_read_is_a_bag_error(tmp_path: Path, make, match: str) -> None:
    path = tmp_path / "recording.mcap"
    make(path)
    with pytest.raises(BagError, match=match):
        BagReader(path)


def test_directory_or_file_that_is_no_bag(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a bag")
    with pytest.raises(BagError, match="is not a readable bag"):
        BagReader(tmp_path)
    with pytest.raises(BagError, match="is not a readable bag"):
        BagReader(tmp_path / "notes.txt")
    (tmp_path / "empty_bag").mkdir()
    (tmp_path / "empty_bag" / "empty_bag.mcap").write_bytes(b"")
    with pytest.raises(BagError, match=r"empty_bag\.mcap is empty"):
        BagReader(tmp_path / "empty_bag")


def test_repair_of_garbage_is_a_message_not_a_traceback(tmp_path: Path, capsys) -> None:
    (tmp_path / "garbage.mcap").write_bytes(os.urandom(1000))
    assert bag_repair.main([str(tmp_path / "garbage.mcap"), str(tmp_path / "out")]) == 1
    assert "not an MCAP file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture
def mystery_bag(tmp_path: Path) -> Path:
    """A bag with a topic whose type has no definition, one known topic, and one known topic
    whose bytes are not a valid message."""
    path = tmp_path / "bag"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as bag:
        mystery = bag.add_connection("/mystery", MYSTERY, msgdef="", rihs01="RIHS01_" + "0" * 64)
        images = bag.add_connection("/camera/image_raw", IMAGE, typestore=STORE)
        broken = bag.add_connection("/instruction", STRING, typestore=STORE)
        for s in recording(STORE, 12):
            if s.msgtype == IMAGE:
                bag.write(images, s.log_time_ns, s.data)
                bag.write(mystery, s.log_time_ns + 1, b"\x00\x01\x00\x00opaque")
        bag.write(broken, 1, b"\x00\x01\x00\x00\xff\xff\xff\x7f")  # a 2 GB string
    return path


def test_unknown_type_is_listed_not_decoded(mystery_bag: Path) -> None:
    with BagReader(mystery_bag) as reader:
        (problem,) = reader.problems
        assert (problem.kind, problem.topic) == ("unknown_type", "/mystery")
        assert MYSTERY in problem.message and "3 messages" in problem.message
        mystery = [m for m in reader.messages() if m.topic == "/mystery"]
        assert [m.data for m in mystery] == [b"\x00\x01\x00\x00opaque"] * 3
        with pytest.raises(BagDecodeError, match=f"{MYSTERY} message on /mystery.*no definition"):
            reader.decode(mystery[0])
        (broken,) = reader.messages(["/instruction"])
        with pytest.raises(BagDecodeError, match="cannot decode the std_msgs/msg/String message"):
            reader.decode(broken)
        image = next(iter(reader.messages(["/camera/image_raw"])))
        assert reader.decode(image).encoding == "rgb8"


def test_repair_leaves_out_what_cannot_be_played(mystery_bag: Path, tmp_path: Path, capsys) -> None:
    assert bag_repair.main([str(mystery_bag), str(tmp_path / "out")]) == 0
    report = capsys.readouterr().out
    assert "not copied: topic /mystery: 3 messages of type acme_msgs/msg/Mystery" in report
    assert f"wrote {tmp_path / 'out'}: 4 messages on 2 topics" in report
    with BagReader(tmp_path / "out") as reader:
        assert reader.topics == {"/camera/image_raw": IMAGE, "/instruction": STRING}
