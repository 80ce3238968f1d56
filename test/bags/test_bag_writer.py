"""BagWriter: offers never block, the queue is bounded (drops counted per topic), a failing disk
ends in ``error`` instead of an exception, and bad topics get clear errors."""

from __future__ import annotations

import errno
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from bag_samples import TOPICS, recording
from rosbags.rosbag2 import Reader, Writer

from lightwam_ros.bags import BagReader, BagWriteError, BagWriter, project_typestore

STORE = project_typestore()
BLOCK_TIMEOUT = 10.0  # s a blocked write waits for the test to release it


@pytest.fixture
def blocked_writes(monkeypatch: pytest.MonkeyPatch):
    """rosbags' Writer.write waits until the test sets ``release`` (a stalled disk);
    ``entered`` says the writer thread is stuck in it."""
    entered, release = threading.Event(), threading.Event()
    original = Writer.write

    def stalled_write(self, *args, **kwargs):
        entered.set()
        release.wait(BLOCK_TIMEOUT)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Writer, "write", stalled_write)
    yield entered, release
    release.set()


def make_writer(path: Path, **options) -> BagWriter:
    writer = BagWriter(path, **options)
    for topic, msgtype in TOPICS.items():
        writer.add_topic(topic, msgtype)
    return writer


@pytest.mark.parametrize("limit", ["messages", "bytes"])
def test_full_queue_drops_without_blocking(tmp_path: Path, blocked_writes, limit: str) -> None:
    entered, release = blocked_writes
    samples = recording(STORE, 12)
    bound = (
        {"max_queue_messages": 3}
        if limit == "messages"
        else {"max_queue_bytes": sum(len(s.data) for s in samples[:3])}
    )
    writer = make_writer(tmp_path / "bag", **bound)
    accepted = [writer.offer(s.topic, s.log_time_ns, s.data) for s in samples[:3]]
    assert entered.wait(BLOCK_TIMEOUT), "the writer thread never started writing"
    durations, late = [], []
    for s in samples[3:]:  # the writer thread is stuck inside a write, holding the bag
        begin = time.perf_counter()
        late.append(writer.offer(s.topic, s.log_time_ns, s.data))
        durations.append(time.perf_counter() - begin)
    assert accepted == [True] * 3 and late == [False] * 9
    assert max(durations) < 0.1, f"an offer took {max(durations):.3f} s"
    stats = writer.stats()
    assert stats.dropped == 9
    assert stats.dropped_per_topic == dict(Counter(s.topic for s in samples[3:]))
    release.set()
    final = writer.close()
    assert final.written == 3 and final.per_topic == dict(Counter(s.topic for s in samples[:3]))
    assert final.bytes_written == sum(len(s.data) for s in samples[:3])
    with BagReader(tmp_path / "bag") as reader:
        assert [m.data for m in reader.messages()] == [s.data for s in samples[:3]]
        assert reader.problems == []


def test_a_failing_disk_ends_in_error_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Writer, "write", disk_full)
    samples = recording(STORE, 8)
    writer = make_writer(tmp_path / "bag")
    for s in samples:
        writer.offer(s.topic, s.log_time_ns, s.data)
    stats = writer.close()  # does not raise
    assert "No space left on device" in writer.error
    assert stats.written == 0 and stats.dropped == len(samples)
    assert stats.dropped_per_topic == dict(Counter(s.topic for s in samples))
    assert writer.offer(samples[0].topic, 0, samples[0].data) is False
    with BagReader(tmp_path / "bag") as reader:  # still a valid (empty) bag
        assert reader.topics == TOPICS and list(reader.messages()) == []


def test_topics_and_metadata_errors_are_clear(tmp_path: Path) -> None:
    writer = make_writer(tmp_path / "bag")
    writer.add_topic("/joint_states", TOPICS["/joint_states"])  # again, same type: no-op
    with pytest.raises(BagWriteError, match="unknown message type 'sensor_msgs/Image'"):
        writer.add_topic("/other_camera", "sensor_msgs/Image")
    with pytest.raises(BagWriteError, match="was added as sensor_msgs/msg/JointState"):
        writer.add_topic("/joint_states", "std_msgs/msg/String")
    with pytest.raises(BagWriteError, match="bad offered_qos"):
        writer.add_topic("/status", "std_msgs/msg/String", offered_qos="- [unclosed")
    with pytest.raises(BagWriteError, match="topic /never/added was not added"):
        writer.offer("/never/added", 0, b"\x00\x01\x00\x00")
    for data, log_time in ((b"\x00\x01\x00\x00", -1), ("text", 0)):
        with pytest.raises(BagWriteError, match="expected serialized bytes and a log time"):
            writer.offer("/instruction", log_time, data)
    with pytest.raises(BagWriteError, match="non-string value"):
        writer.set_metadata("count", 3)
    writer.close()
    with pytest.raises(BagWriteError, match="is closed"):
        writer.add_topic("/late", "std_msgs/msg/String")
    with BagReader(tmp_path / "bag") as reader:
        assert reader.topics == TOPICS


def test_existing_path_and_bad_limits_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bag").mkdir()
    with pytest.raises(BagWriteError, match="exists already"):
        BagWriter(tmp_path / "bag")
    with pytest.raises(BagWriteError, match="max_queue_messages=0"):
        BagWriter(tmp_path / "other", max_queue_messages=0)
    assert not (tmp_path / "other").exists()


def test_offered_qos_reaches_metadata(tmp_path: Path) -> None:
    qos = "- {depth: 1, durability: transient_local}"
    with BagWriter(tmp_path / "bag") as writer:
        writer.add_topic("/robot_description", "std_msgs/msg/String", offered_qos=qos)
    with Reader(tmp_path / "bag") as reader:
        (connection,) = reader.connections
        (profile,) = connection.ext.offered_qos_profiles
        assert (profile.depth, profile.durability.name, profile.reliability.name) == (
            1,
            "TRANSIENT_LOCAL",
            "RELIABLE",
        )
