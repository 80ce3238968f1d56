"""lightwam-bag-repair IN OUT: rewrite what a damaged bag still holds into a complete bag.

A recorder killed with kill -9 leaves an MCAP file without summary and footer and no
metadata.yaml; ``ros2 bag`` and rosbags refuse it.  ``BagReader`` recovers every message before
the damage; this tool writes them, with the bag's message definitions and custom data, to a new
MCAP bag that both read, and prints what was lost.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from lightwam_ros.bags.reader import BagDecodeError, BagError, BagProblem, BagReader
from lightwam_ros.bags.writer import ROSBAG2_VERSION

LOSS_KINDS = ("truncated", "unreadable")


@dataclass(frozen=True)
class RepairResult:
    written: dict[str, int]  # messages per topic in the new bag
    not_copied: dict[str, str]  # topic -> why its messages were left out
    problems: list[BagProblem]  # what the reader found in the damaged bag


def repair_bag(source: str | os.PathLike, target: str | os.PathLike) -> RepairResult:
    """Copy every readable message of ``source`` into the new MCAP bag ``target``.  Topics whose
    type has no definition are left out (a bag without it cannot be played).  Raises BagError
    (nothing to read), BagDecodeError (inconsistent definitions) or WriterError (target)."""
    target = Path(target)
    if target.exists():
        raise WriterError(f"{target} exists already; choose a new output path")
    with BagReader(source) as reader:
        typestore = reader.typestore
        not_copied = {
            topic: f"{reader.counts[topic]} messages of type {msgtype or '(none)'}, which has no definition"
            for topic, msgtype in reader.topics.items()
            if msgtype not in typestore.fielddefs
        }
        written = {topic: 0 for topic in reader.topics if topic not in not_copied}
        with Writer(target, version=ROSBAG2_VERSION, storage_plugin=StoragePlugin.MCAP) as bag:
            for key, value in reader.metadata.items():
                bag.set_custom_data(key, value)
            connections = {
                topic: bag.add_connection(topic, reader.topics[topic], typestore=typestore)
                for topic in written
            }
            for message in reader.messages(written):
                bag.write(connections[message.topic], message.log_time_ns, message.data)
                written[message.topic] += 1
        return RepairResult(written, not_copied, list(reader.problems))


def _report(source: str, target: str, result: RepairResult) -> None:
    losses = [p for p in result.problems if p.kind in LOSS_KINDS]
    for problem in losses:
        print(f"lost: {problem.message}")
    for topic, why in result.not_copied.items():
        print(f"not copied: topic {topic}: {why}")
    if not losses and not result.not_copied:
        print(f"nothing was lost: {source} was complete")
    total = sum(result.written.values())
    print(f"wrote {target}: {total} messages on {len(result.written)} topics")
    for topic, count in sorted(result.written.items()):
        print(f"  {topic}: {count}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightwam-bag-repair",
        description="Rewrite what a damaged rosbag2 bag (e.g. of a killed recorder) still holds "
        "into a complete MCAP bag, and print what was lost.",
    )
    parser.add_argument("source", help="damaged bag: a directory or an .mcap file")
    parser.add_argument("target", help="new bag directory (must not exist)")
    args = parser.parse_args(argv)
    try:
        result = repair_bag(args.source, args.target)
    except (BagError, BagDecodeError, WriterError, OSError) as error:
        print(f"lightwam-bag-repair: {error}", file=sys.stderr)
        return 1
    _report(args.source, args.target, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
