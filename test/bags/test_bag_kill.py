"""kill -9 of a recording process: everything older than about one flush period is recovered
byte for byte, the damage is reported, and lightwam-bag-repair makes a complete bag of it."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from bag_samples import PERIOD_NS, START_NS, sample
from rosbags.rosbag2 import Reader

from lightwam_ros.bags import BagReader, project_typestore
from lightwam_ros.tools.launch.child_process import ChildProcess
from lightwam_ros.tools.offline import bag_repair

STORE = project_typestore()
CHILD = Path(__file__).with_name("steady_writer.py")
FLUSH_PERIOD = 0.2  # s
INTERVAL = 0.01  # s between messages
KILL_AFTER = 150  # messages sent
SLACK = 0.5  # s for the writer thread's wake-up, write and fsync on a busy machine
START_TIMEOUT = 30.0  # s for the child to start and send KILL_AFTER messages


def record_and_kill(bag: Path) -> tuple[dict[int, int], int]:
    """Run the child until it has sent KILL_AFTER messages, then SIGKILL it.  Returns
    {index: monotonic send time} of what it reported and the monotonic kill time."""
    sent: dict[int, int] = {}
    output: list[str] = []
    reached = threading.Event()

    def on_line(line: str) -> None:
        output.append(line)
        word, *values = line.split()
        if word == "sent":
            sent[int(values[0])] = int(values[1])
            if int(values[0]) >= KILL_AFTER:
                reached.set()

    child = ChildProcess([sys.executable, str(CHILD), str(bag), str(FLUSH_PERIOD), str(INTERVAL)], on_line)
    child.start_reading()
    try:
        if not reached.wait(START_TIMEOUT):
            pytest.fail(
                "the recording child did not send enough messages; its output ends:\n"
                + "\n".join(output[-10:])
            )
        killed_at = time.monotonic_ns()
        child.process.send_signal(signal.SIGKILL)
    finally:
        status = child.stop()
    assert status == -signal.SIGKILL
    return sent, killed_at


def test_kill_9_keeps_all_but_the_last_flush_period(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bag = tmp_path / "bag"
    sent, killed_at = record_and_kill(bag)
    assert not (bag / "metadata.yaml").exists()  # rosbags alone cannot read this bag

    with BagReader(bag) as reader:
        messages = list(reader.messages())
        assert reader.recovered
        assert [p.kind for p in reader.problems] == ["truncated"]
        assert reader.metadata == {"recorded_by": "steady_writer"}
    indices = [(m.log_time_ns - START_NS) // PERIOD_NS for m in messages]
    assert indices == list(range(len(messages))), "recovered messages are not a gap-free prefix"
    for index, message in zip(indices, messages, strict=True):
        expected = sample(STORE, index)
        assert (message.topic, message.msgtype, message.data) == (
            expected.topic,
            expected.msgtype,
            expected.data,
        )

    deadline = killed_at - int((FLUSH_PERIOD + SLACK) * 1e9)
    old_enough = [index for index, sent_at in sent.items() if sent_at < deadline]
    assert len(old_enough) >= 40, "too few messages before the deadline to judge"
    assert len(messages) > max(old_enough), (
        f"recovered {len(messages)} messages; message {max(old_enough)} was sent more than "
        f"{FLUSH_PERIOD + SLACK} s before the kill"
    )

    repaired = tmp_path / "repaired"
    assert bag_repair.main([str(bag), str(repaired)]) == 0
    report = capsys.readouterr().out
    assert "lost: bag.mcap: the file" in report
    assert f"wrote {repaired}: {len(messages)} messages on 4 topics" in report
    with Reader(repaired) as rosbags_reader:
        assert [(c.topic, t, bytes(d)) for c, t, d in rosbags_reader.messages()] == [
            (m.topic, m.log_time_ns, m.data) for m in messages
        ]
    with BagReader(repaired) as reader:
        assert reader.problems == [] and not reader.recovered
        assert reader.metadata == {"recorded_by": "steady_writer"}
