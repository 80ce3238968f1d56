"""Stream health: header stamps read from CDR bytes, gaps, stamps going backwards, missing
topics - on generated streams and on a generated bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bag_samples import CHUNK, IMAGE, JOINTS, NS_PER_S, START_NS, STRING, TOPICS, build_message, recording

from lightwam_ros.bags import (
    BagReader,
    BagWriter,
    StreamHealth,
    header_stamp_ns,
    missing_topics,
    project_typestore,
)

STORE = project_typestore()
STAMP = START_NS + 123_456_789


@pytest.mark.parametrize("little_endian", [True, False])
@pytest.mark.parametrize("msgtype", [IMAGE, JOINTS, CHUNK])
def test_header_stamp_is_read_from_cdr_bytes(msgtype: str, little_endian: bool) -> None:
    message = build_message(STORE, msgtype, 7, STAMP, np.random.default_rng(0))
    data = bytes(STORE.serialize_cdr(message, msgtype, little_endian=little_endian))
    assert header_stamp_ns(data, msgtype, STORE) == STAMP


def test_no_header_stamp_without_a_header() -> None:
    data = bytes(
        STORE.serialize_cdr(build_message(STORE, STRING, 1, STAMP, np.random.default_rng(0)), STRING)
    )
    assert header_stamp_ns(data, STRING, STORE) is None
    assert header_stamp_ns(data, "acme_msgs/msg/Mystery", STORE) is None
    assert header_stamp_ns(b"\x00\x01\x00\x00\x01", IMAGE, STORE) is None  # too short
    assert header_stamp_ns(b"\x00\x03" + bytes(20), IMAGE, STORE) is None  # not plain CDR


def stream(
    health: StreamHealth,
    topic: str,
    rate_hz: float,
    start_s: float,
    end_s: float,
    skip: tuple[float, float] = (0.0, 0.0),
) -> list[int]:
    """Messages at ``rate_hz`` from start_s to end_s (relative to START_NS), none inside
    ``skip``; header stamp = log time - 5 ms.  Returns the log times."""
    times = [
        START_NS + round(t * NS_PER_S)
        for t in np.arange(start_s, end_s, 1.0 / rate_hz)
        if not skip[0] < t < skip[1]
    ]
    for log_time in times:
        health.add(topic, log_time, log_time - 5_000_000)
    return times


def test_gaps_are_found_against_each_topics_own_rate() -> None:
    health = StreamHealth()
    stream(health, "/camera", 10.0, 0.0, 5.0, skip=(2.0, 3.05))  # a 1.1 s hole at +2 s
    stream(health, "/joint_states", 100.0, 0.0, 5.0)
    stream(health, "/status", 2.0, 0.0, 5.0)  # slow, but steady: no gap
    stream(health, "/chunks", 10.0, 3.0, 5.0)  # starts late: no gap
    problems = {(p.kind, p.topic): p.message for p in health.problems()}
    assert set(problems) == {("gap", "/camera")}
    assert "1 gap(s) longer than 0.300 s" in problems["gap", "/camera"]
    assert "the longest, 1.100 s, starts at +2.000 s" in problems["gap", "/camera"]
    summary = health.summary()
    assert summary["/camera"]["count"] == 40
    assert summary["/camera"]["max_gap_s"] == pytest.approx(1.1)
    assert summary["/joint_states"]["rate_hz"] == pytest.approx(100.0)
    assert summary["/joint_states"]["first_stamp_ns"] == START_NS - 5_000_000


def test_stamps_and_log_times_going_backwards() -> None:
    health = StreamHealth()
    times = stream(health, "/camera", 10.0, 0.0, 1.0)
    health.add("/camera", times[-1] + 100_000_000, times[3])  # a stamp from the past
    health.add("/camera", times[-1] + 200_000_000, times[-1] + 195_000_000)
    health.add("/camera", times[-1] + 300_000_000, times[-1] + 195_000_000)  # a repeat
    health.add("/instruction", START_NS + 500_000_000)
    health.add("/instruction", START_NS + 400_000_000)  # log time backwards, no stamp
    problems = {(p.kind, p.topic): p.message for p in health.problems()}
    assert set(problems) == {("out_of_order", "/camera"), ("out_of_order", "/instruction")}
    assert (
        "2 header stamp(s) not after the previous one, first at +1.000 s"
        in problems["out_of_order", "/camera"]
    )
    assert "log time went backwards 1 time(s), first at +0.400 s" in problems["out_of_order", "/instruction"]
    summary = health.summary()
    assert summary["/camera"]["out_of_order"] == 2
    assert summary["/instruction"]["log_time_backwards"] == 1
    assert summary["/instruction"]["first_stamp_ns"] is None


def test_missing_topics() -> None:
    (problem,) = missing_topics(["/joint_states", "/instruction"], ["/camera/image_raw", "/joint_states"])
    assert (problem.kind, problem.topic) == ("missing_topic", "/camera/image_raw")
    assert "it holds /instruction, /joint_states" in problem.message
    assert missing_topics(TOPICS, TOPICS) == []


def test_a_clean_generated_bag_is_healthy(tmp_path: Path) -> None:
    with BagWriter(tmp_path / "bag") as writer:
        for topic, msgtype in TOPICS.items():
            writer.add_topic(topic, msgtype)
        for s in recording(STORE, 200):
            writer.offer(s.topic, s.log_time_ns, s.data)
    health = StreamHealth()
    with BagReader(tmp_path / "bag") as reader:
        for message in reader.messages():
            health.add(
                message.topic,
                message.log_time_ns,
                header_stamp_ns(message.data, message.msgtype, reader.typestore),
            )
        assert health.problems() == []
        assert missing_topics(reader.topics, [*TOPICS, "/wrist/image_raw"])[0].topic == ("/wrist/image_raw")
    summary = health.summary()
    assert {topic: s["count"] for topic, s in summary.items()} == {t: 50 for t in TOPICS}
    assert summary["/camera/image_raw"]["rate_hz"] == pytest.approx(25.0)
    assert summary["/instruction"]["first_stamp_ns"] is None
    assert summary["/joint_states"]["first_stamp_ns"] == START_NS + 10_000_000 - 3_000_000
