"""lightwam-replay: a bag's messages published again at their recorded timing, with /clock, so
the nodes run unchanged (``use_sim_time``) against a recording.

    lightwam-replay run1 --rate 0.5 --wait-for-subscribers 1
    lightwam-replay run1 --topics /camera/head/image_raw /joint_states --loop --no-clock

Each message goes out as the serialized bytes the bag holds, at its recorded log-time spacing
divided by ``--rate`` (timed with a monotonic clock; sleeps wait on an Event, so Ctrl-C is
instant).  ``/clock`` carries the bag time: at ``--clock-rate`` and just before each message.
By default the topics ``lightwam-record`` marked as inputs are played; in a bag from elsewhere,
everything but what this package's nodes publish (their messages, /diagnostics, the executor's
commands) and /rosout, /clock.  Publishers are reliable (a best-effort subscriber matches them
too) and transient-local for topics recorded from transient-local publishers and for the
instruction; with ``--start-offset`` their last message before the offset still goes out at the
start.  ``--loop`` plays the bag again and again, the bag time jumping back.  A bag that
cannot be read gives a message and exit status 2; a damaged one is played as far as it is
readable, its problems printed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions
from rclpy.utilities import remove_ros_args
from rosbags.interfaces import QosDurability
from rosbags.rosbag2 import Reader
from rosgraph_msgs.msg import Clock

from lightwam_ros.bags.metadata import METADATA_INSTRUCTION_TOPIC, recorded_topic_roles
from lightwam_ros.bags.reader import BagError, BagMessage, BagProblem, BagReader
from lightwam_ros.ros import qos
from lightwam_ros.ros.message_types import message_class
from lightwam_ros.ros.node_registry import NODE_KINDS, REPLAY
from lightwam_ros.ros.param_files import ParamFileError
from lightwam_ros.ros.run_topics import DIAGNOSTICS_TOPIC, absolute_topic, package_output_topics
from lightwam_ros.ros.stamps import nanoseconds_to_stamp

NODE_NAME = NODE_KINDS[REPLAY].node_name
CLOCK_TOPIC = "/clock"
EXIT_BAD_BAG = 2
_NEVER_REPLAYED = {CLOCK_TOPIC, "/rosout", "/parameter_events", DIAGNOSTICS_TOPIC}
_PACKAGE_TYPES = "lightwam_ros/msg/"
_DEPTH = 100
_WAIT_REPORT_PERIOD = 5.0  # s between "still waiting for subscribers" lines
# Fast DDS acknowledges on its writers' heartbeat (every 3 s by default), often after the data
# has arrived: the player waits this long at most for the acknowledgements at the end.
_LINGER = 1.0  # s


class ReplayError(ValueError):
    """The bag or the choice of topics cannot be replayed; the message says why."""


def say(text: str) -> None:
    print(f"[lightwam-replay] {text}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lightwam-replay",
        description="Publish a bag's messages at their recorded timing "
        "and /clock with the bag time (nodes run with use_sim_time). ROS arguments "
        "(--ros-args ...) pass through.",
    )
    parser.add_argument("bag", type=Path, help="bag directory (or one .mcap file)")
    parser.add_argument(
        "--rate", type=float, default=1.0, help="playback speed factor (default 1: recorded timing)"
    )
    parser.add_argument(
        "--start-offset", type=float, default=0.0, metavar="S", help="skip the first S seconds of the bag"
    )
    parser.add_argument(
        "--loop", action="store_true", help="start again at the end (the bag time jumps back)"
    )
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--topics", nargs="+", metavar="T", help="replay these topics (default: the recording's inputs)"
    )
    chosen.add_argument("--all-topics", action="store_true", help="replay every topic of the bag but /clock")
    parser.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    parser.add_argument(
        "--clock-rate",
        type=float,
        default=100.0,
        metavar="HZ",
        help="/clock messages per second of playback, besides one before each message (default 100)",
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--wait-for-subscribers",
        type=int,
        default=0,
        metavar="N",
        help="start once every replayed topic and /clock has N subscribers",
    )
    start.add_argument("--delay", type=float, default=0.0, metavar="S", help="start after S seconds")
    args = parser.parse_args(argv)
    if not (args.rate > 0 and args.clock_rate > 0):
        parser.error("--rate and --clock-rate must be > 0")
    if args.start_offset < 0 or args.delay < 0 or args.wait_for_subscribers < 0:
        parser.error("--start-offset, --delay and --wait-for-subscribers must be >= 0")
    return args


# --------------------------------------------------------------------------------------------
# What to replay
# --------------------------------------------------------------------------------------------


def select_topics(
    reader: BagReader, topics: Sequence[str] | None = None, all_topics: bool = False
) -> dict[str, str]:
    """The topics to replay and their types: ``topics``, else every topic (``all_topics``),
    else the recording's inputs, else (a foreign bag) all that this package does not publish."""
    if topics:
        wanted = [absolute_topic(topic) for topic in topics]
        missing = [topic for topic in wanted if topic not in reader.topics]
        if missing:
            raise ReplayError(f"not in the bag: {missing}; its topics: {sorted(reader.topics)}")
        return {topic: reader.topics[topic] for topic in wanted}
    if all_topics:
        selected = {t: kind for t, kind in reader.topics.items() if t != CLOCK_TOPIC}
    else:
        roles = _recorded_roles(reader.metadata)
        if roles is not None:
            selected = {t: kind for t, kind in reader.topics.items() if roles.get(t) == "input"}
        else:
            outputs = package_output_topics() | _NEVER_REPLAYED
            selected = {
                t: kind
                for t, kind in reader.topics.items()
                if t not in outputs and not kind.startswith(_PACKAGE_TYPES)
            }
    if not selected:
        raise ReplayError(
            f"no topic to replay by default among {sorted(reader.topics)}: name "
            "them with --topics, or use --all-topics"
        )
    return selected


def _recorded_roles(metadata: Mapping[str, str]) -> dict[str, str] | None:
    """lightwam-record's topic roles, or None for a bag recorded otherwise."""
    try:
        return recorded_topic_roles(metadata)
    except ValueError as error:
        raise ReplayError(f"{error}; choose topics with --topics or --all-topics") from None


def latched_topics(reader: BagReader) -> set[str]:
    """Topics to publish transient-local: recorded from publishers that all were, and the
    instruction (the policy may subscribe after it went out).

    BagReader does not tell the recorded QoS; rosbags' Reader does, for a bag it can open (a
    damaged one is played volatile)."""
    instruction = reader.metadata.get(METADATA_INSTRUCTION_TOPIC)
    latched = {instruction} if instruction else set()
    try:
        with Reader(reader.path) as bag:
            connections = list(bag.connections)
    except Exception:  # noqa: BLE001 - rosbags raises assorted errors on damaged bags
        return latched
    for connection in connections:
        profiles = getattr(connection.ext, "offered_qos_profiles", None)
        if profiles and all(p.durability == QosDurability.TRANSIENT_LOCAL for p in profiles):
            latched.add(connection.topic)
    return latched


# --------------------------------------------------------------------------------------------
# Playing
# --------------------------------------------------------------------------------------------


class BagPlayer:
    """Publishes a bag's messages at their recorded spacing divided by ``rate``, and the bag
    time on /clock (``clock`` None: not), until the bag ends or ``stop`` is set.  Of the
    ``latched`` topics, the last message before the start offset goes out at the start: the
    instruction still reaches the policy when the early part is skipped."""

    def __init__(
        self,
        reader: BagReader,
        publishers: Mapping[str, Publisher],
        clock: Publisher | None,
        *,
        rate: float,
        start_offset: float,
        clock_rate: float,
        stop: threading.Event,
        latched: Collection[str] = (),
    ) -> None:
        self.reader = reader
        self.publishers = publishers
        self.latched = set(latched)
        self.clock = clock
        self.rate = rate
        if reader.start_ns is None:
            raise ReplayError(f"{reader.path}: the bag holds no messages")
        self.start_ns = reader.start_ns + int(start_offset * 1e9)
        self.clock_period = 1.0 / clock_rate
        self.stop = stop
        self.published: Counter[str] = Counter()
        self.clock_messages = 0
        self._last_clock_ns: int | None = None
        self._t0 = self._next_tick = 0.0

    def play(self) -> bool:
        """One pass over the bag from the start offset; False when stopped before its end."""
        self._t0 = self._next_tick = time.monotonic()
        self._last_clock_ns = None  # a new pass: the bag time may go back
        held: dict[str, BagMessage] = {}
        for message in self.reader.messages(list(self.publishers)):
            if message.log_time_ns < self.start_ns:
                if message.topic in self.latched:
                    held[message.topic] = message
                continue
            if held:
                self._publish_clock(self.start_ns)
                for kept in held.values():
                    self._publish(kept)
                held.clear()
            due = self._t0 + (message.log_time_ns - self.start_ns) * 1e-9 / self.rate
            if not self._wait_until(due):
                return False
            self._publish_clock(message.log_time_ns)
            self._publish(message)
        return not self.stop.is_set()

    def _publish(self, message: BagMessage) -> None:
        self.publishers[message.topic].publish(message.data)
        self.published[message.topic] += 1

    def _wait_until(self, due: float) -> bool:
        """Sleep until ``due`` (monotonic s), publishing /clock ticks meanwhile; False when
        stopped."""
        while self.clock is not None and self._next_tick < due:
            if self.stop.wait(max(0.0, self._next_tick - time.monotonic())):
                return False
            self._publish_clock(self.start_ns + int((self._next_tick - self._t0) * self.rate * 1e9))
            # Behind (a slow publish): skip the missed ticks rather than burst them.
            self._next_tick = max(self._next_tick + self.clock_period, time.monotonic())
        return not self.stop.wait(max(0.0, due - time.monotonic()))

    def _publish_clock(self, bag_time_ns: int) -> None:
        if self.clock is None or (self._last_clock_ns is not None and bag_time_ns <= self._last_clock_ns):
            return
        self.clock.publish(Clock(clock=nanoseconds_to_stamp(bag_time_ns)))
        self._last_clock_ns = bag_time_ns
        self.clock_messages += 1


def wait_for_subscribers(
    publishers: Mapping[str, Publisher],
    count: int,
    stop: threading.Event,
    report: Callable[[str], None] = say,
) -> bool:
    """Until every publisher has ``count`` subscribers; False when stopped first."""
    reported = time.monotonic()
    while True:
        waiting = sorted(t for t, pub in publishers.items() if pub.get_subscription_count() < count)
        if not waiting:
            return True
        if time.monotonic() - reported >= _WAIT_REPORT_PERIOD:
            reported = time.monotonic()
            report(f"waiting for {count} subscriber(s) on {waiting}")
        if stop.wait(0.05):
            return False


def _publishers(node: Node, selection: Mapping[str, str], latched: set[str]) -> dict[str, Publisher]:
    publishers: dict[str, Publisher] = {}
    for topic, msgtype in selection.items():
        try:
            cls = message_class(msgtype)
        except ValueError as error:
            say(f"skipping {topic}: {error}")
            continue
        publishers[topic] = node.create_publisher(cls, topic, qos.profile(_DEPTH, latched=topic in latched))
    if not publishers:
        raise ReplayError("none of the selected topics has a message type installed here")
    return publishers


def _linger(publishers: Sequence[Publisher]) -> None:
    """Let the last messages reach reliable subscribers before this process ends: one that
    exits right after publishing loses them."""
    deadline = time.monotonic() + _LINGER
    for publisher in publishers:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not publisher.wait_for_all_acked(Duration(seconds=remaining)):
            return


def _report_problems(problems: Sequence[BagProblem]) -> None:
    for problem in problems:
        where = f" ({problem.topic})" if problem.topic else ""
        say(f"bag problem, {problem.kind}{where}: {problem.message}")


def _play(
    reader: BagReader, selection: Mapping[str, str], args: argparse.Namespace, ros_args: Sequence[str]
) -> int:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    rclpy.init(args=list(ros_args), signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = Node(NODE_NAME)
        latched = latched_topics(reader)
        publishers = _publishers(node, selection, latched)
        clock = None if args.no_clock else node.create_publisher(Clock, CLOCK_TOPIC, qos.profile(_DEPTH))
        player = BagPlayer(
            reader,
            publishers,
            clock,
            rate=args.rate,
            start_offset=args.start_offset,
            clock_rate=args.clock_rate,
            stop=stop,
            latched=latched,
        )
        say(
            f"{args.bag}: replaying {sorted(publishers)} at rate {args.rate:g}"
            + (f" from {args.start_offset:g} s" if args.start_offset else "")
            + ("" if clock else ", no /clock")
        )
        # /clock too: a subscriber that joins after the first tick misses the bag's start.
        waited_for = {**publishers, **({CLOCK_TOPIC: clock} if clock else {})}
        ready = wait_for_subscribers(waited_for, args.wait_for_subscribers, stop) and not stop.wait(
            args.delay
        )
        started, passes, known_problems = time.monotonic(), 0, len(reader.problems)
        while ready:
            passes += 1
            finished = player.play()
            _report_problems(reader.problems[known_problems:])
            known_problems = len(reader.problems)
            # A pass over messages of one instant would loop at full speed: pause a clock tick.
            if not (finished and args.loop) or stop.wait(player.clock_period):
                break
            say(f"loop {passes + 1}: the bag time jumps back to {player.start_ns * 1e-9:.3f} s")
        if not stop.is_set():
            _linger([*publishers.values(), *([clock] if clock else [])])
        _summary(player, time.monotonic() - started, passes, stopped=stop.is_set())
    except ReplayError as error:
        print(f"lightwam-replay: {error}", file=sys.stderr)
        return EXIT_BAD_BAG
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _summary(player: BagPlayer, elapsed: float, passes: int, stopped: bool) -> None:
    total = sum(player.published.values())
    say(
        ("stopped" if stopped else "done")
        + f": {total} messages in {elapsed:.1f} s"
        + (f" over {passes} passes" if passes > 1 else "")
    )
    for topic in sorted(player.publishers):
        say(f"  {topic}: {player.published[topic]}")
    if player.clock is not None:
        say(f"  {CLOCK_TOPIC}: {player.clock_messages}")


def main(argv: Sequence[str] | None = None) -> int:
    """Replay a bag; exit status 2 when it cannot be read or nothing in it can be replayed."""
    full = list(sys.argv if argv is None else ["lightwam-replay", *argv])
    args = parse_args(remove_ros_args(full)[1:])
    try:
        reader = BagReader(args.bag)
    except BagError as error:
        print(f"lightwam-replay: {error}", file=sys.stderr)
        return EXIT_BAD_BAG
    with reader:
        _report_problems(reader.problems)
        try:
            selection = select_topics(reader, args.topics, args.all_topics)
            if reader.start_ns is None or reader.end_ns is None:
                raise ReplayError(f"{args.bag} holds no messages")
            duration = (reader.end_ns - reader.start_ns) * 1e-9
            if args.start_offset > duration:
                raise ReplayError(
                    f"--start-offset {args.start_offset:g} s is past the bag's end ({duration:.3f} s long)"
                )
        except (ReplayError, ParamFileError) as error:
            print(f"lightwam-replay: {error}", file=sys.stderr)
            return EXIT_BAD_BAG
        return _play(reader, selection, args, full)


if __name__ == "__main__":
    sys.exit(main())
