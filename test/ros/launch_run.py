"""``launch/lightwam.launch.py`` run for real, as ``ros2 launch lightwam_ros lightwam.launch.py``
would run it: the file found by package name through the ament index, then
``ros2launch.api.launch_a_launch_file`` (what ``ros2 launch`` calls; ros2cli is not installed) in
a child process that a test stops with SIGINT, as Ctrl-C would.

``LaunchRun`` collects the launch's output, knows the processes launch started (its "process
started with pid" lines) and, on ``finish``, checks that SIGINT ended every one of them cleanly;
a process still alive after a failed test is killed by its pid.

Import it after ``pytest.importorskip("ros2launch.api")``.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ros_harness import wait_until

from lightwam_ros.ros.param_files import PACKAGE
from lightwam_ros.tools.launch.child_process import STOP_TIMEOUT, ChildProcess

LAUNCH_FILE = "lightwam.launch.py"
# launch only sees SIGINT through Python's handler: install it, whatever the parent ignores.
_DRIVER = f"""
import signal, sys
from ros2launch.api import get_share_file_path_from_package, launch_a_launch_file
signal.signal(signal.SIGINT, signal.default_int_handler)
path = get_share_file_path_from_package(package_name={PACKAGE!r}, file_name={LAUNCH_FILE!r})
print("launch file:", path, flush=True)
sys.exit(launch_a_launch_file(launch_file_path=path, launch_file_arguments=sys.argv[1:],
                              noninteractive=True))
"""
_STARTED = re.compile(r"\[INFO\] \[([\w.-]+)\]: process started with pid \[(\d+)\]")
_CLEAN = re.compile(r"process has finished cleanly \[pid (\d+)\]")


def launch_env(prefixes: Sequence[str | Path] = (), **extra: str) -> dict[str, str]:
    """This process's (isolated) environment with ``prefixes``, then its own ament path, then
    the venv in the ament path, and the venv's interpreter first on PATH (colcon's launchers
    start ``python3``)."""
    path = [str(prefix) for prefix in prefixes]
    path += [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    path = list(dict.fromkeys([*path, sys.prefix]))
    return dict(
        os.environ,
        AMENT_PREFIX_PATH=os.pathsep.join(path),
        RCUTILS_COLORIZED_OUTPUT="0",
        PYTHONUNBUFFERED="1",
        **extra,
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    )


class LaunchRun(ChildProcess):
    """One launch of the package's launch file with ``arguments`` (``name:=value``)."""

    def __init__(self, arguments: Sequence[str], env: Mapping[str, str]) -> None:
        self.arguments = list(arguments)
        self.lines: list[str] = []
        super().__init__([sys.executable, "-u", "-c", _DRIVER, *self.arguments], self.lines.append, env=env)
        self.start_reading()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def launch_file(self) -> Path:
        line = wait_until(
            lambda: next((x for x in self.lines if x.startswith("launch file: ")), None),
            30,
            f"the launch file's path; output:\n{self.output}",
        )
        return Path(line.split(": ", 1)[1])

    def started(self) -> dict[str, int]:
        """Executable name (without launch's ``-N`` suffix) -> pid, for every started process."""
        found = (_STARTED.search(line) for line in self.lines)
        return {match[1].rsplit("-", 1)[0]: int(match[2]) for match in found if match}

    def wait_for_started(self, names: set[str], timeout: float = 60.0) -> dict[str, int]:
        wait_until(
            lambda: names <= set(self.started()) or self.process.poll() is not None,
            timeout,
            f"launch to start {sorted(names)}",
        )
        assert names <= set(self.started()), f"launch ended early:\n{self.output[-4000:]}"
        return self.started()

    def finish(self, clean: bool = True) -> int:
        """SIGINT the launch; every process it started must be gone and, with ``clean``, have
        finished cleanly (a node interrupted while it starts may not).  The launch's status."""
        try:
            code = self.stop(timeout=2 * STOP_TIMEOUT)  # launch gives each node STOP_TIMEOUT
        finally:
            leftovers = [pid for pid in self.started().values() if _alive(pid)]
            for pid in leftovers:
                os.kill(pid, signal.SIGKILL)
            print(f"launch {' '.join(self.arguments)}:", *self.lines[-60:], sep="\n  ")
        assert not leftovers, f"processes {leftovers} outlived their launch"
        finished = {int(pid) for line in self.lines for pid in _CLEAN.findall(line)}
        unclean = {name: pid for name, pid in self.started().items() if pid not in finished}
        assert not (clean and unclean), f"not finished cleanly on SIGINT: {unclean}\n{self.output[-4000:]}"
        return code


def _alive(pid: int) -> bool:
    """The process exists and is no zombie (an exited child of launch awaiting its reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
