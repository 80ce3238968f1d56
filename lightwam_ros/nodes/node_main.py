"""What the nodes share: a constructor that never leaves a half-built node behind, the managed
(lifecycle) node shell of the policy and the executor, and the process entry point (init, build,
configure and activate a managed node, spin, always shut down cleanly)."""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import JumpHandle, JumpThreshold, TimeJump
from rclpy.context import Context
from rclpy.duration import Duration
from rclpy.exceptions import NameValidationException, ParameterException, ParameterUninitializedException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from lightwam_ros.ros.parameter_checks import NodeSource
from lightwam_ros.ros.parameter_schema import AUTOSTART

# A backward step of the clock this large means time restarted (simulator reset, looping bag).
TIME_JUMP_BACK_THRESHOLD = Duration(nanoseconds=-1_000_000)


class TimeJumps:
    """Mixin of a node that restarts what it keeps when its clock jumps backwards."""

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
        assert isinstance(self, Node), "a mixin of nodes"
        return self.get_clock().create_jump_callback(threshold, post_callback=jumped)


class ConfiguredNode(TimeJumps, Node):
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


class StartError(RuntimeError):
    """A valid configuration with which a node could not start (a model that does not load)."""


# Errors of a configuration itself (exit status 2), as opposed to a StartError (1).
INVALID_CONFIGURATION = (ValueError, ParameterException, NameValidationException)
_SUCCESS, _FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
_ERROR_LIMIT = 400  # characters of a failed configure's reason in its log line


class _Built:
    """What one configure created on a node (ROS entities, parameter gates, clock callbacks),
    to be destroyed by cleanup: what the node had before configure stays."""

    def __init__(self, node: Node) -> None:
        self._before = {id(entity) for _, entity in self._entities(node)}
        self.gates: list[Callable[[list[Parameter]], Any]] = []
        self.jump_handles: list[JumpHandle] = []

    @staticmethod
    def _entities(node: Node) -> list[tuple[Callable[[Any], Any], Any]]:
        return [
            *((node.destroy_timer, timer) for timer in node.timers),
            *((node.destroy_subscription, subscription) for subscription in node.subscriptions),
            *((node.destroy_service, service) for service in node.services),
            *((node.destroy_client, client) for client in node.clients),
            *((node.destroy_publisher, publisher) for publisher in node.publishers),
        ]

    def destroy(self, node: Node) -> None:
        for handle in self.jump_handles:
            handle.unregister()
        for gate in self.gates:
            node.remove_on_set_parameters_callback(gate)
        for destroy, entity in self._entities(node):
            if id(entity) not in self._before:
                destroy(entity)


class ManagedNode(TimeJumps, LifecycleNode):
    """A lifecycle (managed) node with the standard transitions.

    - configure (``_configure``): read and check the parameters, build everything, load and warm
      up; a failure returns FAILURE, logs its reason in one bounded line (``configure_error``
      keeps it) and leaves the node ``unconfigured``, its parameters changeable, so the user can
      fix them and configure again;
    - activate / deactivate (``_activate``, ``_deactivate``): start and stop the node's output;
    - cleanup and shutdown: stop the node's threads and drop what it loaded (``_teardown``),
      then destroy every ROS entity, parameter gate and clock callback that configure created.

    Parameters are declared by configure (a later configure finds them declared and reads their
    current values, which ``ros2 param set`` may have changed while unconfigured).  The
    ``autostart`` parameter, read when the node is built, says whether ``start_managed``
    configures and activates it at once (a node run on its own) or leaves that to a lifecycle
    manager (the launch file, ``ros2 lifecycle set``).
    """

    def __init__(
        self,
        node_name: str,
        *,
        context: Context | None = None,
        namespace: str | None = None,
        parameter_overrides: Sequence[Parameter] | None = None,
    ) -> None:
        self._built: _Built | None = None  # set while configured (destroy_node reads it)
        self._building: _Built | None = None  # set while configure runs
        self.configure_error: BaseException | None = None  # why the last configure failed
        # Set by a signal: a configure in progress gives up at its next chance (e.g. warm-up).
        self.interrupted = threading.Event()
        super().__init__(
            node_name,
            context=context,
            namespace=namespace,
            parameter_overrides=list(parameter_overrides or []),
        )
        try:  # a bool: rclpy refuses a value of another type (InvalidParameterTypeException)
            self.autostart: bool = NodeSource(self).value(AUTOSTART.name, AUTOSTART, AUTOSTART.default)
        except BaseException:
            self.destroy_node()
            raise

    @property
    def fatal_error(self) -> str | None:
        """Why the node is not configured: the last configure's error, None after a success."""
        return None if self.configure_error is None else describe_failure(self.configure_error)

    # ---------------------------------------------------------------- what a node defines

    def _configure(self) -> None:
        raise NotImplementedError

    def _activate(self) -> None:
        raise NotImplementedError

    def _deactivate(self) -> None:
        raise NotImplementedError

    def _teardown(self) -> None:
        """Stop the threads configure started and drop what it loaded (before the ROS entities
        configure created are destroyed)."""

    # ---------------------------------------------------------------- bookkeeping

    def declare_parameter(
        self,
        name: str,
        value: Any = None,
        descriptor: ParameterDescriptor | None = None,
        ignore_override: bool = False,
    ) -> Parameter[Any]:
        """Declare ``name``; one already declared (by an earlier configure) keeps its value."""
        if not self.has_parameter(name):
            return super().declare_parameter(name, value, descriptor, ignore_override)
        try:
            return self.get_parameter(name)
        except ParameterUninitializedException:  # declared with a type, no value: still unset
            return Parameter(name)

    def add_on_set_parameters_callback(self, callback: Callable[[list[Parameter]], Any]) -> None:
        if self._building is not None:  # configure's gate: cleanup removes it
            self._building.gates.append(callback)
        super().add_on_set_parameters_callback(callback)

    def on_time_jump_back(self, callback: Callable[[str, float], None]) -> JumpHandle:
        handle = super().on_time_jump_back(callback)
        if self._building is not None:
            self._building.jump_handles.append(handle)
        return handle

    def _release(self, built: _Built) -> None:
        self._teardown()
        built.destroy(self)

    # ---------------------------------------------------------------- transitions

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._building = built = _Built(self)
        try:
            self._configure()
        except Exception as error:  # noqa: BLE001 - reported, the node stays unconfigured
            self.configure_error = error
            self._release(built)
            if self.interrupted.is_set():
                self.get_logger().info("configure interrupted: stopping")
            else:
                self.get_logger().error(
                    f"configure failed: {describe_failure(error)}; the node stays unconfigured "
                    "(fix the parameters, then configure again)"
                )
            return _FAILURE
        finally:
            self._building = None
        self.configure_error, self._built = None, built
        return _SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._activate()
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unconfigure()
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if state.label == "active":
            self._deactivate()
        self._unconfigure()
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._unconfigure()
        return _SUCCESS  # back to unconfigured

    def _unconfigure(self) -> None:
        built, self._built = self._built, None
        if built is not None:
            self._release(built)

    def destroy_node(self) -> None:
        """Stop what configure started first: no thread may use a destroyed handle.  Then the
        lifecycle state machine, which rclpy leaves alive: it holds the rcl node, which would
        stay in the graph (its change_state service answering nothing) for as long as anything
        references this object - a failed start's traceback, for one."""
        self._unconfigure()
        super().destroy_node()
        self._state_machine.destroy_when_not_in_use()


def describe_failure(error: BaseException) -> str:
    """One bounded line: an invalid configuration says so, a StartError speaks for itself."""
    text = str(error) or repr(error)
    if isinstance(error, INVALID_CONFIGURATION):
        text = f"invalid configuration: {text}"
    elif not isinstance(error, StartError):
        text = f"{type(error).__name__}: {text}"
    return textwrap.shorten(text, _ERROR_LIMIT, placeholder=f" ... ({len(text)} chars)")


def start_managed(node: ManagedNode) -> None:
    """Configure, then activate ``node``; raise why it failed (``configure_error``)."""
    if node.trigger_configure() != _SUCCESS:
        raise node.configure_error or StartError(f"{node.get_name()}: configure failed")
    if node.trigger_activate() != _SUCCESS:
        raise StartError(f"{node.get_name()}: activate failed")


ManagedT = TypeVar("ManagedT", bound=ManagedNode)


def autostarted(node: ManagedT) -> ManagedT:
    """``node`` configured and active when its ``autostart`` says so (for in-process use: a
    failure destroys the node and raises why)."""
    if node.autostart:
        try:
            start_managed(node)
        except BaseException:
            node.destroy_node()
            raise
    return node


NodeT = TypeVar("NodeT", bound=Node)

EXIT_INVALID_CONFIGURATION = 2
_POLL_SECONDS = 0.1
# s that rclpy's own teardown (node destruction, shutdown) may take once a node's work is saved;
# it normally takes well under a second.
TEARDOWN_GRACE = 5.0
# s after the first SIGINT/SIGTERM before a process that is still stopping prints every thread's
# stack to stderr (a later signal prints them at once): a stop that hangs - seen once in CI, an
# executor killed after the bring-up's SIGINT and SIGTERM timeouts - then shows where.  Under
# the bring-up's 15 s SIGINT timeout; a normal stop takes well under a second.
STUCK_STOP_TRACE = 10.0


@contextlib.contextmanager
def teardown_deadline(node_name: str, status: int, grace: float = TEARDOWN_GRACE) -> Iterator[None]:
    """End the process with ``status`` if the block has not returned within ``grace`` seconds.

    For rclpy's teardown once a node's own work is done and saved (the recorder's bag closed,
    the spin loop left): a teardown stuck in rclpy (seen once in CI, after the recorder closed its
    bag) must not keep the process, and so ``ros2 launch`` or the bring-up, waiting until it is
    killed.  A block that returns in time cancels the deadline.
    """

    def give_up() -> None:
        rclpy.logging.get_logger(node_name).warning(
            f"rclpy's teardown did not return within {grace:g} s; exiting with status {status}"
        )
        os._exit(status)

    timer = threading.Timer(grace, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


class _Autostart(threading.Thread):
    """``start_managed`` on its own thread, while the process's thread spins the node: its
    subscriptions keep their inputs fresh during a long configure (a model load)."""

    def __init__(self, node: ManagedNode) -> None:
        super().__init__(name=f"{node.get_name()}_autostart", daemon=True)
        self.node = node
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            start_managed(self.node)
        except Exception as error:  # noqa: BLE001 - on_configure logged why; run_node exits
            self.error = error


def run_node(
    create: Callable[[], NodeT],
    node_name: str,
    args: list[str] | None = None,
    failed: Callable[[NodeT], bool] = lambda node: False,
    stuck_trace_after: float = STUCK_STOP_TRACE,
) -> int:
    """Spin the node ``create`` builds until SIGINT/SIGTERM or until ``failed(node)``; return the
    exit status: 2 when the configuration is invalid, 1 when ``failed`` or a managed node could
    not start, else 0.

    A managed node (``ManagedNode``) whose ``autostart`` is true is configured and activated
    at once (``_Autostart``), and its process ends when that fails; with ``autostart`` false it
    waits for lifecycle transitions, and a failed configure leaves it running, unconfigured.

    The signals only set a flag that the spin loop polls, so shutdown happens between callbacks,
    never inside one as a KeyboardInterrupt would (which leaves half-done futures behind), and
    ``ros2 launch``'s SIGTERM escalation ends the node as cleanly as Ctrl-C; a configure in
    progress is interrupted at its next chance (``ManagedNode.interrupted``).  A process still
    stopping ``stuck_trace_after`` seconds after the first signal, or signalled again, prints
    every thread's stack (``faulthandler``) and goes on stopping.  A
    SingleThreadedExecutor, because rclpy's MultiThreadedExecutor starves fast timers (see
    ``executor_node``).  ``failed`` lets, e.g., a simulator bridge whose simulator died end its
    process instead of idling.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    built: list[Node] = []

    def on_signal(*_: Any) -> None:
        if stop.is_set():
            faulthandler.dump_traceback(all_threads=True)  # asked again: where it is stuck
        else:
            faulthandler.dump_traceback_later(stuck_trace_after, exit=False)
        stop.set()
        for node in built:
            if isinstance(node, ManagedNode):
                node.interrupted.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    status = 1  # what an exception leaves
    try:
        try:
            node = create()
        except INVALID_CONFIGURATION as error:
            rclpy.logging.get_logger(node_name).fatal(f"invalid configuration: {error}")
            status = EXIT_INVALID_CONFIGURATION
            return status
        built.append(node)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        starting = _Autostart(node) if isinstance(node, ManagedNode) and node.autostart else None
        try:
            while not stop.is_set() and rclpy.ok() and not failed(node):
                if starting is not None and starting.error is not None:
                    break
                executor.spin_once(timeout_sec=_POLL_SECONDS)
        finally:
            if starting is not None:
                starting.join()  # an interrupted configure ends at its next chance
            executor.shutdown()
            node.destroy_node()
        refused = None if starting is None or stop.is_set() else starting.error
        if refused is not None:
            status = EXIT_INVALID_CONFIGURATION if isinstance(refused, INVALID_CONFIGURATION) else 1
        else:
            status = 1 if failed(node) else 0
        return status
    finally:
        with teardown_deadline(node_name, status):
            rclpy.try_shutdown()
