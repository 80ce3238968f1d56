"""lightwam-bringup: the policy and the chunk executor (and optionally the loopback robot), up and
running without launch_ros, with the same parameter files as launch/lightwam.launch.py.

    lightwam-bringup --loopback-robot --duration 20          # tiny random model, stand-in robot
    lightwam-bringup --embodiment libero_franka --checkpoint M --instructions I

What runs comes from ``bringup_plan.build_plan`` (shared with the launch file).  Two ways to run:

- ``--processes separate`` (default): one ``python -m`` process per node with ``--ros-args
  --params-file ... -p ...``, as ``ros2 launch`` would start them; their output is forwarded with
  a ``[node]`` prefix; SIGINT/SIGTERM stop them all with SIGINT (escalating after a timeout).
- ``--processes one``: every node in this process, each spun by its own SingleThreadedExecutor
  on its own thread (rclpy's MultiThreadedExecutor starves fast timers, see executor_node).
  Quicker to start; the nodes then share one interpreter lock.

The policy and the executor are managed (lifecycle) nodes: started here they configure and
activate themselves (their ``autostart`` parameter, true unless overridden), where the launch
file drives the same transitions through their lifecycle services.

``--record BAG`` also starts ``lightwam-record`` on the topics the nodes really use, and the
policy only once the recorder records its cameras and joint states (``recording_gate``);
``--replay BAG`` runs the nodes on simulated time with ``lightwam-replay`` playing the bag as
their inputs and ``/clock`` (the run ends when the bag does).  Both run in processes of their own
in either mode: their work must not share an interpreter lock with the control loop.

With ``--loopback-robot`` an observer node measures what flows (chunks, commands, the robot's
motion, the nodes' states) and prints a summary at the end; with ``--duration`` the run is a
check: it lasts that long from the first chunk (the start-up, model loading included, is bounded
by ``--startup-timeout``), and the exit status is 1 unless chunks arrived and commands were sent
(none in shadow mode).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from lightwam_ros.ros.node_registry import NODE_KINDS, POLICY, REPLAY
from lightwam_ros.ros.param_files import DEFAULT_EMBODIMENT, ParamFileError, embodiments
from lightwam_ros.sim.base import SimError
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.launch.bringup_observer import BringupObserver, format_summary, problems
from lightwam_ros.tools.launch.bringup_plan import (
    BringupOptions,
    BringupPlan,
    NodePlan,
    ParamOverride,
    PlanError,
    build_plan,
    model_for_sim,
    resolve_model,
)
from lightwam_ros.tools.launch.child_process import STOP_TIMEOUT, ChildProcess
from lightwam_ros.tools.launch.recording_gate import wait_until_recorded
from lightwam_ros.tools.launch.ros_env import isolated_ros_env

_print_lock = threading.Lock()


def say(text: str) -> None:
    with _print_lock:
        print(f"[bringup] {text}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lightwam-bringup",
        description="Start the Light-WAM policy and chunk executor "
        "(and a loopback robot) with the shipped parameter files, without ros2 launch.",
    )
    parser.add_argument(
        "--embodiment",
        choices=embodiments(),
        help=f"default: the simulator's with --sim, else {DEFAULT_EMBODIMENT}",
    )
    parser.add_argument("--checkpoint", help="Light-WAM checkpoint (.safetensors)")
    parser.add_argument("--instructions", help="instruction cache of the checkpoint")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="use a random-weight tiny package (arbitrary motions; the default "
        "without --checkpoint when only the loopback robot or shadow mode "
        "could move)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where tiny packages are built and kept (default ~/.cache/lightwam_ros)"
    )
    parser.add_argument("--shadow", action="store_true", help="predict and plan, command nothing")
    parser.add_argument(
        "--use-sim-time", action="store_true", help="every node follows /clock (something must publish it)"
    )
    parser.add_argument(
        "--processes",
        choices=("separate", "one"),
        default="separate",
        help="one process per node (default) or all nodes in this process",
    )
    parser.add_argument(
        "--loopback-robot", action="store_true", help="also start the stand-in robot and the observer"
    )
    parser.add_argument(
        "--sim",
        metavar="SIMULATOR[:TASK]",
        help="a simulator is the robot: aloha[:transfer_cube|insertion] or "
        "libero[:SUITE/INDEX], with the observer; every other node uses "
        "its simulated time",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="seconds to run, then stop (0: until Ctrl-C); with the loopback "
        "robot counted from the first chunk",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="with --duration and the loopback robot: seconds until the first "
        "chunk, model loading included (default 120)",
    )
    parser.add_argument(
        "--params",
        nargs="+",
        action="extend",
        default=[],
        metavar="[NODE:]NAME:=VALUE",
        help="parameter overrides; NODE is policy, executor or robot, without it "
        "every started node that declares NAME gets it",
    )
    parser.add_argument(
        "--policy-threads",
        type=int,
        help="CPU threads of the policy's torch (default: all cores but one, left to the control loop)",
    )
    parser.add_argument(
        "--isolated",
        action="store_true",
        help="loopback-only discovery and a random ROS_DOMAIN_ID (demos, tests)",
    )
    parser.add_argument(
        "--record",
        metavar="BAG",
        help="also record the run's inputs and outputs into this new bag directory (lightwam-record)",
    )
    parser.add_argument(
        "--replay",
        metavar="BAG",
        help="the bag provides the inputs and /clock (lightwam-replay); every "
        "node uses simulated time; the run ends with the bag",
    )
    parser.add_argument("--summary-json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    if args.duration < 0 or args.startup_timeout <= 0:
        parser.error("--duration must be >= 0 and --startup-timeout > 0")
    if args.embodiment is None:
        try:
            args.embodiment = SimTask.parse(args.sim).embodiment if args.sim else DEFAULT_EMBODIMENT
        except SimError as error:
            parser.error(f"--sim: {error}")
    return args


def make_plan(args: argparse.Namespace) -> BringupPlan:
    options = BringupOptions(
        embodiment=args.embodiment,
        shadow=args.shadow,
        use_sim_time=args.use_sim_time,
        loopback_robot=args.loopback_robot,
        policy_threads=args.policy_threads,
        params=tuple(ParamOverride.parse(text) for text in args.params),
        record=args.record,
        replay_bag=args.replay,
        sim=args.sim,
    )
    model = resolve_model(
        args.embodiment,
        args.checkpoint,
        args.instructions,
        tiny=args.tiny,
        safe_target=args.loopback_robot or args.shadow or bool(args.sim),
        cache_dir=args.workdir,
    )
    model = model_for_sim(model, options)
    if model.tiny:
        say(
            f"random-weight tiny package {model.checkpoint.parent} (arbitrary motions: never "
            "connect it to hardware)"
        )
    return build_plan(options, model)


# --------------------------------------------------------------------------------------------
# Running the nodes
# --------------------------------------------------------------------------------------------


_N = TypeVar("_N", bound=Node)


class NodeThreads:
    """rclpy nodes of one context, each spun by its own SingleThreadedExecutor and thread."""

    def __init__(self, args: Sequence[str] = ()) -> None:
        self.context = Context()
        # The bring-up handles SIGINT itself, to stop the nodes in order.
        rclpy.init(
            args=["lightwam-bringup", *args],
            context=self.context,
            signal_handler_options=SignalHandlerOptions.NO,
        )
        self.nodes: list[Node] = []
        self._executors: list[SingleThreadedExecutor] = []
        self._threads: list[threading.Thread] = []
        self._running = True
        self.failure: str | None = None

    def add(self, node: _N) -> _N:
        executor = SingleThreadedExecutor(context=self.context)
        executor.add_node(node)
        thread = threading.Thread(
            target=self._spin, args=(executor, node.get_name()), name=f"spin_{node.get_name()}", daemon=True
        )
        self.nodes.append(node)
        self._executors.append(executor)
        self._threads.append(thread)
        thread.start()
        return node

    def _spin(self, executor: SingleThreadedExecutor, name: str) -> None:
        try:
            while self._running and self.context.ok():
                executor.spin_once(timeout_sec=0.1)
        except Exception as error:  # noqa: BLE001 - reported by the main loop
            if self._running:
                self.failure = f"{name} stopped spinning: {error!r}"

    def close(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=5.0)
        for executor in self._executors:
            executor.shutdown()
        for node in reversed(self.nodes):
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _node_factory(role: str) -> Callable[..., Any]:
    """The registered create_* function of a node kind, imported only now (the policy node
    imports torch, which only the in-process mode needs up front)."""
    kind = NODE_KINDS[role]
    return getattr(importlib.import_module(kind.module), kind.factory)


def _parameters(overrides: dict[str, Any]) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in overrides.items()]


class InProcessNodes:
    """``--processes one``: the plan's nodes (and the observer) in this process, spun by
    ``threads``; the parameter files are passed as global ``--params-file`` arguments (each
    file's section names its node).  The recorder and the bag player still get processes of
    their own (``children``)."""

    def __init__(self, plan: BringupPlan) -> None:
        self.plan = plan
        self.in_process = [node for node in plan.nodes if node.params_file is not None]
        for node in self.in_process:  # one process: every node's environment applies to all
            os.environ.update(node.env)
        if "OMP_NUM_THREADS" in os.environ and "torch" in sys.modules:
            import torch  # already started (it built the tiny package): it read the variable

            torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        files = [arg for node in self.in_process for arg in ("--params-file", str(node.params_file))]
        self.threads = NodeThreads(["--ros-args", *files])
        self.children = NodeChildren()
        self.exit_codes = self.children.exit_codes

    def start(self) -> None:
        start_nodes(self.plan, self._start, self.failure)

    def _start(self, node: NodePlan) -> None:
        if node.params_file is None:
            self.children.start(node)
            return
        self.threads.add(
            _node_factory(node.role)(
                node.node_name,
                context=self.threads.context,
                parameter_overrides=_parameters(node.overrides),
            )
        )
        say(f"started {node.role} in this process")

    def failure(self) -> str | None:
        for node in self.threads.nodes:
            fatal_error = getattr(node, "fatal_error", None)
            if fatal_error:
                return f"{node.get_name()}: {fatal_error}"
        return self.children.failure() or self.threads.failure

    def finished(self) -> bool:
        return self.children.finished()

    def stop(self) -> None:
        self.children.stop()
        self.threads.close()


class NodeChild(ChildProcess):
    """One node in its own process and session (a terminal's Ctrl-C reaches only the bring-up,
    which then stops every node exactly once, in order); its output is forwarded with a
    ``[role]`` prefix."""

    def __init__(self, node: NodePlan) -> None:
        self.role = node.role
        super().__init__(node.command(), self._forward, env={**os.environ, **node.env}, new_session=True)
        self.start_reading()

    def _forward(self, line: str) -> None:
        with _print_lock:
            print(f"[{self.role}] {line}", flush=True)

    def stop(self, timeout: float = STOP_TIMEOUT, on_escalation: Callable[[str], None] | None = None) -> int:
        return super().stop(
            timeout,
            on_escalation or (lambda name: say(f"{self.role} did not stop after SIGINT: sending {name}")),
        )


def wait_for(
    condition: Callable[[], object], timeout: float, what: str, failure: Callable[[], str | None]
) -> None:
    """Poll ``condition`` until it holds; RuntimeError when ``failure()`` reports a dead node
    first, or after ``timeout`` seconds (naming ``what`` was awaited)."""
    deadline = time.monotonic() + timeout
    while not condition():
        problem = failure()
        if problem:
            raise RuntimeError(problem)
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def start_nodes(
    plan: BringupPlan, start: Callable[[NodePlan], None], failure: Callable[[], str | None]
) -> None:
    """Start the plan's nodes in order; with a recording gate, the policy last, once the recorder
    records its cameras and joint states (no chunk is then recorded without its inputs)."""
    gated = [node for node in plan.nodes if plan.recording_gate and node.role == POLICY]
    for node in plan.nodes:
        if node not in gated:
            start(node)
    for node in gated:
        say(f"starting the policy once the recorder records {list(plan.recording_gate)}")
        wait_until_recorded(plan.recording_gate, failure=failure)
        start(node)


class NodeChildren:
    """Nodes of the plan, each in its own process, stopped together."""

    def __init__(self) -> None:
        self.children: list[NodeChild] = []
        self.exit_codes: dict[str, int] = {}

    def start(self, node: NodePlan) -> None:
        child = NodeChild(node)
        self.children.append(child)
        say(f"started {node.role} (pid {child.process.pid}): {node.module}")

    def failure(self) -> str | None:
        for child in self.children:
            code = child.process.poll()
            if code is not None and not (child.role == REPLAY and code == 0):
                return f"{child.role} exited early with status {code}"
        return None

    def finished(self) -> bool:
        """The bag player has played its bag to the end: the run is over."""
        return any(child.role == REPLAY and child.process.poll() == 0 for child in self.children)

    def stop(self) -> None:
        for child in self.children:  # all at once: a slow node does not delay the others
            child.interrupt()
        for child in self.children:
            self.exit_codes[child.role] = child.stop()
            say(f"{child.role} (pid {child.process.pid}) exited with status {self.exit_codes[child.role]}")


class SeparateProcesses:
    """``--processes separate``: one child process per node of the plan; ``threads`` spins this
    process's own node, the observer, when the plan has one."""

    def __init__(self, plan: BringupPlan) -> None:
        self.plan = plan
        self.children = NodeChildren()
        self.exit_codes = self.children.exit_codes
        self.threads = NodeThreads() if plan.observed is not None else None

    def start(self) -> None:
        start_nodes(self.plan, self.children.start, self.failure)

    def failure(self) -> str | None:
        return self.children.failure()

    def finished(self) -> bool:
        return self.children.finished()

    def stop(self) -> None:
        self.children.stop()
        if self.threads is not None:
            self.threads.close()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, _frame: Any) -> None:
        say(f"{signal.Signals(signum).name}: stopping")
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _describe(plan: BringupPlan) -> None:
    for node in plan.nodes:
        overrides = ", ".join(f"{k}={v}" for k, v in node.overrides.items())
        env = " ".join(f"{k}={v}" for k, v in node.env.items())
        words = [f"{node.role}: {node.node_name}", *node.arguments]
        if node.params_file is not None:
            words.append(f"with {node.params_file}")
        say(" ".join(words) + (f" + {overrides}" if overrides else "") + (f" (env {env})" if env else ""))
    if plan.use_sim_time:
        say("use_sim_time: every node waits for /clock (a bag player or a simulator)")


def _wait_for_the_end(
    nodes: InProcessNodes | SeparateProcesses,
    observer: BringupObserver | None,
    args: argparse.Namespace,
    stop: threading.Event,
) -> str | None:
    """Until a signal, a node's failure, or the duration; the failure, if any.  With an observer
    the duration counts from the first chunk, when the loop is closed: loading, warm-up and the
    first inference take from seconds to minutes, and must end within the start-up timeout."""
    started = time.monotonic()
    active_since = started if observer is None else None
    while not stop.wait(0.2):
        failure = nodes.failure()
        if failure:
            return failure
        if nodes.finished():
            say("the bag has been played to its end: stopping")
            return None
        now = time.monotonic()
        if active_since is None and observer is not None and observer.chunks.count:
            active_since = now
            say(
                f"first chunk after {now - started:.1f} s"
                + (f": running for {args.duration:g} s more" if args.duration else "")
            )
        if not args.duration:
            continue
        if active_since is None and now - started > args.startup_timeout:
            return f"no chunk within {args.startup_timeout:g} s (--startup-timeout)"
        if active_since is not None and now - active_since >= args.duration:
            return None
    return None


def _run(
    plan: BringupPlan, args: argparse.Namespace, stop: threading.Event
) -> tuple[str | None, dict[str, Any] | None, dict[str, int]]:
    """Run until the duration, a signal or a failure; (failure, observer summary, exit codes)."""
    nodes = InProcessNodes(plan) if args.processes == "one" else SeparateProcesses(plan)
    observer: BringupObserver | None = None
    try:
        nodes.start()
        if plan.observed is not None:
            threads = nodes.threads
            assert threads is not None, "a plan with an observer gets node threads"
            observer = threads.add(
                BringupObserver(plan.observed, context=threads.context, use_sim_time=plan.use_sim_time)
            )
        failure = _wait_for_the_end(nodes, observer, args, stop)
    except Exception as error:  # noqa: BLE001 - e.g. invalid parameters of an in-process node
        failure = f"cannot start: {error}"
    finally:
        summary = observer.summary() if observer is not None else None
        nodes.stop()
    return failure, summary, nodes.exit_codes


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.isolated:
        os.environ.update(isolated_ros_env())
        say(f"isolated: ROS_DOMAIN_ID={os.environ['ROS_DOMAIN_ID']}, discovery on loopback only")
    try:
        plan = make_plan(args)
    except (PlanError, ParamFileError) as error:
        print(f"lightwam-bringup: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # while the tiny package was being built
        return 130
    _describe(plan)
    stop = threading.Event()
    _install_stop_handlers(stop)
    failure, summary, exit_codes = _run(plan, args, stop)

    report: dict[str, Any] = {
        "embodiment": args.embodiment,
        "processes": args.processes,
        "shadow": plan.shadow,
        "exit_codes": exit_codes,
        "failure": failure,
        "summary": summary,
        "problems": [],
    }
    if summary is not None:
        say("summary\n" + format_summary(summary))
        if args.duration:
            report["problems"] = problems(summary, plan.shadow)
    bad_exits = {role: code for role, code in exit_codes.items() if code != 0}
    if bad_exits:
        report["problems"].append(f"nodes exited with errors: {bad_exits}")
    if failure:
        report["problems"].insert(0, failure)
    if args.summary_json is not None:
        args.summary_json.write_text(json.dumps(report, indent=2) + "\n")
    for problem in report["problems"]:
        say(f"FAILED: {problem}")
    return 1 if report["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
