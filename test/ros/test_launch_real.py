"""The launch file under the real launch_ros, on the pip route and on the colcon route.

``launch_ros`` and ``ros2launch`` are not on PyPI: scripts/setup.sh installs them from
``../shared/ros2-launch`` when that folder exists, and these tests skip (saying so) where it did
not.  Each launch is found by package name and run for real (``launch_run.LaunchRun``); this
process watches the topics with the bring-up observer and ends the launch with SIGINT, after
which every process launch started must have finished cleanly.

To keep CI short, one launch answers several questions: the loopback-robot run also records a
bag, and the replay run plays that bag back in shadow mode.  The colcon test builds the package
in a temporary workspace against the venv's ament packages (colcon from PyPI, about 10 s) and
launches it from that install space.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
_SHARED_LAUNCH = Path(__file__).resolve().parents[3] / "shared" / "ros2-launch"
_NO_LAUNCH = "launch_ros/ros2launch not installed: scripts/setup.sh installs them from " + (
    f"{_SHARED_LAUNCH} (present: re-run scripts/setup.sh)"
    if _SHARED_LAUNCH.is_dir()
    else f"../shared/ros2-launch, which is absent here ({_SHARED_LAUNCH})"
)
pytest.importorskip("launch_ros.actions", reason=_NO_LAUNCH)
pytest.importorskip("ros2launch.api", reason=_NO_LAUNCH)

from ament_index_python.packages import PackageNotFoundError, get_package_prefix  # noqa: E402
from launch import LaunchContext  # noqa: E402
from launch.substitutions.substitution_failure import SubstitutionFailure  # noqa: E402
from launch_ros.substitutions import ExecutableInPackage  # noqa: E402
from launch_run import LAUNCH_FILE, LaunchRun, launch_env  # noqa: E402
from ros_harness import fresh_ros_context, spin_in_background, wait_until  # noqa: E402

from lightwam_ros.bags.reader import BagReader  # noqa: E402
from lightwam_ros.ros.node_registry import NODE_KINDS  # noqa: E402
from lightwam_ros.ros.node_schemas import NODE_SCHEMAS  # noqa: E402
from lightwam_ros.ros.param_files import PACKAGE, read_params  # noqa: E402
from lightwam_ros.ros.run_topics import absolute_topic  # noqa: E402
from lightwam_ros.tools.launch.bringup_observer import BringupObserver  # noqa: E402
from lightwam_ros.tools.launch.bringup_plan import LAUNCH_ARGUMENTS, BringupPlan, plan_from_launch_arguments  # noqa: E402
from lightwam_ros.tools.launch.recording_gate import GATE_NAME  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 150.0  # s from launch to flowing chunks on a busy 2-core machine
RATE_WINDOW = 1.0  # s over which the command rate is measured
# s of recording after the policy is ready: the replay run's policy may start this much slower
BAG_AFTER_READY = 4.0
# executable -> node name, for the nodes of a loopback launch
NODES = {NODE_KINDS[role].executable: NODE_KINDS[role].node_name for role in ("policy", "executor", "robot")}


@pytest.fixture(scope="module", autouse=True)
def own_domain():
    """These launches and their observers get a ROS domain of their own: a node another test of
    this process left in the suite's domain must not answer the launch's lifecycle requests."""
    suite = os.environ["ROS_DOMAIN_ID"]
    os.environ["ROS_DOMAIN_ID"] = str(int(suite) % 100 + 1)
    yield
    os.environ["ROS_DOMAIN_ID"] = suite


ros_context = pytest.fixture(fresh_ros_context)
module_ros_context = pytest.fixture(fresh_ros_context, scope="module")


def _plan(arguments: list[str]) -> BringupPlan:
    """The plan the launch file makes of ``arguments`` (this also builds the tiny package once,
    before any launch needs it)."""
    values = {argument.name: argument.default for argument in LAUNCH_ARGUMENTS}
    values.update(argument.split(":=", 1) for argument in arguments)
    return plan_from_launch_arguments(values)


def _executables(plan: BringupPlan) -> set[str]:
    """What the launch starts: the plan's nodes, and with a recording the gate the policy awaits."""
    return {node.executable for node in plan.nodes} | ({GATE_NAME} if plan.recording_gate else set())


def _parameters(plan: BringupPlan, role: str) -> dict:
    """A node's effective parameters: the defaults, its file's, then the plan's overrides."""
    node = plan.node(role)
    return NODE_SCHEMAS[role].effective({**read_params(node.params_file, node.node_name), **node.overrides})


class Watched:
    """A launch and, in this process, the bring-up observer of its topics."""

    def __init__(self, context, arguments: list[str], plan: BringupPlan, topics=None) -> None:
        self.observer = BringupObserver(
            topics or plan.observed, context=context, use_sim_time=plan.use_sim_time
        )
        self._spin = spin_in_background(context, [self.observer])
        self.launch = LaunchRun(arguments, launch_env())

    def wait_for_chunks(self, count: int) -> None:
        wait_until(
            lambda: self.observer.chunks.count >= count or self.launch.process.poll() is not None,
            RUN_TIMEOUT,
            f"{count} chunks",
        )
        assert self.observer.chunks.count >= count, self.launch.output[-4000:]

    def close(self) -> int:
        try:
            return self.launch.finish()
        finally:
            executor, thread = self._spin
            executor.shutdown()
            thread.join(timeout=5)
            self.observer.destroy_node()


# ------------------------------------------------------------------ pip route


def test_the_pip_layout_resolves_the_package_by_name(monkeypatch):
    """What scripts/setup.sh lays out in the venv: the launch file and every console script."""
    monkeypatch.setenv("AMENT_PREFIX_PATH", sys.prefix)
    from ros2launch.api import get_share_file_path_from_package

    found = Path(get_share_file_path_from_package(package_name=PACKAGE, file_name=LAUNCH_FILE))
    assert found.is_relative_to(Path(sys.prefix) / "share" / PACKAGE)
    assert found.resolve() == (ROOT / "launch" / LAUNCH_FILE).resolve(), (
        "the venv's launch file must be the checkout's (editable install)"
    )
    share = Path(sys.prefix) / "share" / PACKAGE / "config"
    for path in (ROOT / "config").rglob("*.*"):
        assert (share / path.relative_to(ROOT / "config")).resolve() == path.resolve(), (
            f"{path} is not linked in {share}: re-run scripts/setup.sh after adding a file"
        )
    names = [
        line.split("=")[0].strip()
        for line in (ROOT / "resource" / "executables.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = LaunchContext()
    for name in names:
        try:
            path = Path(ExecutableInPackage(name, PACKAGE).perform(context))
        except SubstitutionFailure as error:
            pytest.fail(
                f"{error}: scripts/setup.sh lays out every executable of "
                "resource/executables.txt (re-run it after adding one)"
            )
        assert path.parent == Path(sys.prefix) / "lib" / PACKAGE and os.access(path, os.X_OK)


@pytest.fixture(scope="module")
def loopback_run(tmp_path_factory, module_ros_context):
    """The loopback robot, recording: chunks flow, commands at rate, SIGINT ends every process.
    Returns (launch, observer summary, command rate, bag, plan)."""
    bag = tmp_path_factory.mktemp("launch_record") / "run"
    arguments = ["loopback_robot:=true", f"record:={bag}"]
    plan = _plan(arguments)
    watched = Watched(module_ros_context, arguments, plan)
    try:
        watched.wait_for_chunks(2)
        before, start = watched.observer.commands.count, time.monotonic()
        time.sleep(RATE_WINDOW)
        rate = (watched.observer.commands.count - before) / (time.monotonic() - start)
        print(f"commands at {rate:.0f}/s while chunks flow")
        watched.wait_for_chunks(4)
        time.sleep(max(0.0, start + BAG_AFTER_READY - time.monotonic()))
        summary = watched.observer.summary()
    finally:
        code = watched.close()
    assert code == 0
    return watched.launch, summary, rate, bag, plan


def test_loopback_launch_flows_at_rate_and_stops_on_sigint(loopback_run):
    launch, summary, rate, _, plan = loopback_run
    assert set(launch.started()) == _executables(plan) == {*NODES, "lightwam-record", GATE_NAME}
    assert summary["chunks"]["count"] >= 4
    control_rate = float(_parameters(plan, "executor")["control_rate"])
    assert rate >= 0.5 * control_rate, f"{rate:.0f} commands/s, the executor runs at {control_rate}"
    assert summary["robot"]["joint_states"] > 0


def test_the_launch_records_inputs_and_outputs(loopback_run):
    _, _, _, bag, plan = loopback_run
    with BagReader(bag) as reader:
        counts = reader.counts
    recorder = plan.node("recorder").overrides
    for topic in [*recorder["input_topics"], plan.observed.chunk_topic]:
        assert counts.get(absolute_topic(topic), 0) > 0, (topic, counts)


def test_replay_of_a_recording_in_shadow_mode_predicts_and_never_commands(loopback_run, ros_context):
    _, _, _, bag, loopback_plan = loopback_run
    arguments = ["replay:=true", f"bag:={bag}", "shadow:=true"]
    plan = _plan(arguments)
    assert plan.use_sim_time and plan.shadow and plan.observed is None  # nothing to follow
    topics = dataclasses.replace(
        loopback_plan.observed, chunk_topic=_parameters(plan, "policy")["shadow_chunk_topic"]
    )
    watched = Watched(ros_context, arguments, plan, topics)
    try:
        watched.wait_for_chunks(1)
    finally:
        code = watched.close()
    assert code == 0
    assert set(watched.launch.started()) == _executables(plan)
    assert "lightwam-replay" in _executables(plan)
    assert watched.observer.commands.count == 0, "shadow mode commanded the arm"
    assert "[lightwam-replay]" in watched.launch.output


def test_sim_launch_closes_the_loop_through_the_simulator(ros_context):
    pytest.importorskip("gym_aloha", reason="the ALOHA simulator (requirements/sim.txt) is not installed")
    arguments = ["embodiment:=aloha_sim", "sim:=aloha"]
    plan = _plan(arguments)
    watched = Watched(ros_context, arguments, plan)
    try:
        watched.wait_for_chunks(2)
        wait_until(lambda: watched.observer.commands.count > 0, 10, "commands")
    finally:
        code = watched.close()
    assert code == 0
    assert set(watched.launch.started()) == _executables(plan)
    assert "lightwam-sim-bridge" in _executables(plan)


def test_rviz_without_rviz2_fails_before_starting_anything(monkeypatch):
    env = launch_env()
    monkeypatch.setenv("AMENT_PREFIX_PATH", env["AMENT_PREFIX_PATH"])
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        pass
    else:
        pytest.skip("rviz2 is installed here")
    launch = LaunchRun(["loopback_robot:=true", "rviz:=true"], env)
    try:
        code = launch.process.wait(timeout=60)
    finally:
        launch.finish()
    assert code != 0
    assert launch.started() == {}, "nodes were started before the launch failed"
    assert "rviz2" in launch.output and "rviz:=false" in launch.output, launch.output[-2000:]


# ------------------------------------------------------------------ colcon route


def test_colcon_build_installs_a_launchable_package(tmp_path, ros_context):
    """The README's colcon route against the venv's ament packages: build, then launch by
    package name from the install space (its own executables and Python sources)."""
    colcon = Path(sys.executable).with_name("colcon")
    if not colcon.is_file():
        pytest.skip(
            "colcon is not installed (requirements/test.txt pins colcon-core, colcon-ros, colcon-cmake)"
        )
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / PACKAGE).symlink_to(ROOT)
    env = dict(
        os.environ,
        AMENT_PREFIX_PATH=sys.prefix,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    started = time.monotonic()
    build = subprocess.run(
        [
            str(colcon),
            "build",
            "--packages-select",
            PACKAGE,
            "--cmake-args",
            "-G",
            "Ninja",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DBUILD_TESTING=OFF",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(f"colcon build: {time.monotonic() - started:.1f} s")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    install = tmp_path / "install" / PACKAGE
    site = next((install / "lib").glob("python3*/site-packages"))
    launch = LaunchRun(["loopback_robot:=true"], launch_env([install], PYTHONPATH=str(site)))
    try:
        assert launch.launch_file() == install / "share" / PACKAGE / "launch" / LAUNCH_FILE
        pids = launch.wait_for_started(set(NODES))
        for pid in pids.values():  # the install space's own launchers
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert any(Path(os.fsdecode(part)).parent == install / "lib" / PACKAGE for part in command), (
                command
            )
        # Each node imported its sources and came up (its own log lines, through launch).
        wait_until(
            lambda: all(
                any(f"[{name}-" in line and f"[{node}]: " in line for line in launch.lines)
                for name, node in NODES.items()
            ),
            RUN_TIMEOUT,
            "a log line from each node",
        )
    finally:
        launch.finish(clean=False)  # the nodes may still be starting
