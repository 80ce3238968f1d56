"""Hold the policy's start until the recorder records what the policy reads.

The recorder subscribes to a topic once it sees the topic's publisher (it learns each message
type from the graph), so a policy started beside it may predict from images and joint states
that were published before the recorder listened: the recording then holds chunks whose inputs
it lacks (the offline check and a replay cannot rebuild them).  With a recording, the bring-up
and the launch file start every other node first and the policy once the recorder subscribes to
the policy's cameras and joint states (``BringupPlan.recording_gate``).

    python -m lightwam_ros.tools.launch.recording_gate /camera/top/image_raw /joint_states

exits 0 once the recorder subscribes to every topic, 1 (naming the missing ones) after the
timeout; the launch file starts the policy when it has exited 0.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from lightwam_ros.ros.node_registry import NODE_KINDS
from lightwam_ros.ros.node_registry import RECORDER as RECORDER_ROLE

RECORDER = "/" + NODE_KINDS[RECORDER_ROLE].node_name  # as the bring-up and the launch file start it
GATE_NAME = "lightwam-recording-gate"  # its process's name in a launch
POLL_PERIOD = 0.05  # s between looks at the graph
DEFAULT_TIMEOUT = 60.0  # s: a simulator's start-up and the recorder's discovery period, with margin


class RecordingGateError(RuntimeError):
    """The recorder did not subscribe to every gated topic in time; the message names them."""


def unrecorded(node: Node, recorder: str, topics: Sequence[str]) -> list[str]:
    """Those of ``topics`` (absolute names) that ``recorder`` (its fully qualified node name)
    does not subscribe to, as ``node`` sees the graph now."""

    def subscribers(topic: str) -> set[str]:
        return {
            f"{info.node_namespace.rstrip('/')}/{info.node_name}"
            for info in node.get_subscriptions_info_by_topic(topic)
        }

    return [topic for topic in topics if recorder not in subscribers(topic)]


def wait_until_recorded(
    topics: Sequence[str],
    recorder: str = RECORDER,
    timeout: float = DEFAULT_TIMEOUT,
    failure: Callable[[], str | None] = lambda: None,
    node: Node | None = None,
) -> None:
    """Return once ``recorder`` (fully qualified node name) subscribes to every one of
    ``topics``; RecordingGateError after ``timeout`` seconds, or as soon as ``failure()`` reports
    a problem (e.g. a node died).  ``node`` looks at the graph: a caller's own (it need not be
    spun), else a node of its own on a context of its own."""
    if node is None:
        with _graph_node() as own:
            wait_until_recorded(topics, recorder, timeout, failure, own)
        return
    deadline = time.monotonic() + timeout
    while missing := unrecorded(node, recorder, topics):
        problem = failure()
        if problem:
            raise RecordingGateError(problem)
        if time.monotonic() > deadline:
            raise RecordingGateError(
                f"the recorder {recorder} does not record {missing} after {timeout:g} s: "
                "do they have publishers?  The policy is not started, so that no chunk "
                "is recorded without its inputs"
            )
        time.sleep(POLL_PERIOD)


@contextmanager
def _graph_node() -> Iterator[Node]:
    context = Context()
    rclpy.init(args=[], context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("lightwam_recording_gate", context=context, start_parameter_services=False)
        try:
            yield node
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def gate_command(topics: Sequence[str], recorder: str = RECORDER, python: str = sys.executable) -> list[str]:
    """The command line of a gate process (the launch file's) for ``wait_until_recorded``."""
    return [python, "-u", "-m", __name__, "--recorder", recorder, *topics]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recorder", default=RECORDER, help="its fully qualified node name (%(default)s)")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default %(default)s)"
    )
    parser.add_argument("topics", nargs="+", help="absolute topic names the recorder must subscribe to")
    args = parser.parse_args(argv)
    try:
        wait_until_recorded(args.topics, args.recorder, args.timeout)
    except RecordingGateError as error:
        print(f"recording gate: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(f"recording gate: {args.recorder} records {args.topics}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
