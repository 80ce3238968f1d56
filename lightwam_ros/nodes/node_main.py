"""What the nodes share: a constructor that never leaves a half-built node behind, and the
process entry point (init, build, spin, always shut down cleanly)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import rclpy
from rclpy.clock import JumpHandle, JumpThreshold, TimeJump
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

# A backward step of the clock this large means time restarted (simulator reset, looping bag).
TIME_JUMP_BACK_THRESHOLD = Duration(nanoseconds=-1_000_000)


class ConfiguredNode(Node):
    """A node that declares and validates its parameters in ``_configure`` while it is built.

    A bad configuration raises from the constructor after the node's ROS handles are destroyed,
    so a caller that catches the error (bring-up, tests) keeps no half-configured node alive.
    """

    def __init__(
        self,
        node_name: str,
        *,
        context: Context | None = None,
        namespace: str | None = None,
        parameter_overrides: Sequence[Parameter] | None = None,
    ) -> None:
        super().__init__(
            node_name,
            context=context,
            namespace=namespace,
            parameter_overrides=list(parameter_overrides or []),
        )
        try:
            self._configure()
        except BaseException:
            self.destroy_node()
            raise

    def _configure(self) -> None:
        raise NotImplementedError

    def on_time_jump_back(self, callback: Callable[[str, float], None]) -> JumpHandle:
        """Call ``callback(reason, seconds back)`` (from the thread that moved the clock) when
        the node's clock jumps backwards: every stamp the node keeps then lies in the future.
        Keep the handle."""

        def jumped(jump: TimeJump) -> None:
            if jump.delta.nanoseconds < 0:
                back = -jump.delta.nanoseconds * 1e-9
                callback(f"time jumped back by {back:.3f} s", back)

        threshold = JumpThreshold(
            min_forward=None, min_backward=TIME_JUMP_BACK_THRESHOLD, on_clock_change=False
        )
        return self.get_clock().create_jump_callback(threshold, post_callback=jumped)


NodeT = TypeVar("NodeT", bound=Node)

EXIT_INVALID_CONFIGURATION = 2
_POLL_SECONDS = 0.1


def run_node(
    create: Callable[[], NodeT],
    node_name: str,
    args: list[str] | None = None,
    failed: Callable[[NodeT], bool] = lambda node: False,
) -> int:
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
