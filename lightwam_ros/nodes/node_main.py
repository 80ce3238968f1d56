"""The process entry point the nodes share: init, build, spin, and always shut down cleanly."""
from __future__ import annotations

from typing import Callable, Optional, TypeVar

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

NodeT = TypeVar("NodeT", bound=Node)

EXIT_INVALID_CONFIGURATION = 2


def run_node(create: Callable[[], NodeT], node_name: str, args: Optional[list[str]] = None,
             failed: Callable[[NodeT], bool] = lambda node: False) -> int:
    """Spin the node ``create`` builds until SIGINT or until ``failed(node)``; return the exit
    status: 2 when the configuration is invalid, 1 when ``failed``, else 0.

    A SingleThreadedExecutor, because rclpy's MultiThreadedExecutor starves fast timers (see
    ``executor_node``).  ``failed`` is polled every 0.2 s so that, e.g., a policy whose model
    cannot be loaded ends its process instead of idling.
    """
    rclpy.init(args=args)
    try:
        try:
            node = create()
        except (ValueError, ParameterException, NameValidationException) as error:
            rclpy.logging.get_logger(node_name).fatal(f"invalid configuration: {error}")
            return EXIT_INVALID_CONFIGURATION
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            while rclpy.ok() and not failed(node):
                executor.spin_once(timeout_sec=0.2)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown()
            node.destroy_node()
        return 1 if failed(node) else 0
    finally:
        rclpy.try_shutdown()
