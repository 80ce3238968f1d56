"""The process entry point the nodes share: init, build, spin, and always shut down cleanly."""
from __future__ import annotations

import signal
import threading
from typing import Callable, Optional, TypeVar

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

NodeT = TypeVar("NodeT", bound=Node)

EXIT_INVALID_CONFIGURATION = 2
_POLL_SECONDS = 0.1


def run_node(create: Callable[[], NodeT], node_name: str, args: Optional[list[str]] = None,
             failed: Callable[[NodeT], bool] = lambda node: False) -> int:
    """Spin the node ``create`` builds until SIGINT/SIGTERM or until ``failed(node)``; return the
    exit status: 2 when the configuration is invalid, 1 when ``failed``, else 0.

    The signals only set a flag that the spin loop polls, so shutdown happens between callbacks,
    never inside one as a KeyboardInterrupt would (which leaves half-done futures behind), and
    ``ros2 launch``'s SIGTERM escalation ends the node as cleanly as Ctrl-C.  A
    SingleThreadedExecutor, because rclpy's MultiThreadedExecutor starves fast timers (see
    ``executor_node``).  ``failed`` lets, e.g., a policy whose model cannot be loaded end its
    process instead of idling.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        try:
            node = create()
        except (ValueError, ParameterException, NameValidationException) as error:
            rclpy.logging.get_logger(node_name).fatal(f"invalid configuration: {error}")
            return EXIT_INVALID_CONFIGURATION
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while not stop.is_set() and rclpy.ok() and not failed(node):
                executor.spin_once(timeout_sec=_POLL_SECONDS)
        finally:
            executor.shutdown()
            node.destroy_node()
        return 1 if failed(node) else 0
    finally:
        rclpy.try_shutdown()
