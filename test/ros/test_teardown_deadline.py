"""A node process whose work is saved never hangs in rclpy's teardown: the deadline ends it.  A
stop that is slow or stuck prints where every thread is."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("rclpy")

_BLOCK = """
import time
from lightwam_ros.nodes.node_main import teardown_deadline
with teardown_deadline("probe", {status}, grace=0.3):
    time.sleep({sleep})
print("returned")
"""


def _run(status: int, sleep: float) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK.format(status=status, sleep=sleep)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done, time.monotonic() - start


def test_a_teardown_that_hangs_ends_the_process_with_the_given_status() -> None:
    done, seconds = _run(status=3, sleep=20)
    assert done.returncode == 3, done.stderr
    assert "returned" not in done.stdout
    assert "did not return within 0.3 s; exiting with status 3" in done.stderr
    assert seconds < 15


def test_a_teardown_that_returns_in_time_is_left_alone() -> None:
    done, _ = _run(status=3, sleep=0.0)
    assert done.returncode == 0, done.stderr
    assert "returned" in done.stdout
    assert "did not return" not in done.stderr


_SLOW_TO_STOP = """
import sys, time
from rclpy.node import Node
from lightwam_ros.nodes.node_main import run_node

class SlowToStop(Node):
    def __init__(self):
        super().__init__("probe")
        print("spinning", flush=True)

    def destroy_node(self):
        time.sleep({sleep})
        super().destroy_node()

sys.exit(run_node(SlowToStop, "probe", stuck_trace_after=0.3))
"""


def _stop(sleep: float) -> subprocess.CompletedProcess[str]:
    """Start a node process whose destruction takes ``sleep`` s, SIGINT it once it runs."""
    process = subprocess.Popen(
        [sys.executable, "-c", _SLOW_TO_STOP.format(sleep=sleep)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "spinning\n"
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_a_stop_still_running_after_the_delay_prints_where_each_thread_is() -> None:
    done = _stop(sleep=2.0)
    assert done.returncode == 0, done.stderr  # slow, not failed: it goes on stopping
    assert "Timeout (0:00:00.300000)!" in done.stderr
    assert "in destroy_node" in done.stderr  # the main thread's stack names where it waits


def test_a_prompt_stop_prints_nothing() -> None:
    done = _stop(sleep=0.0)
    assert done.returncode == 0, done.stderr
    assert "Timeout" not in done.stderr
