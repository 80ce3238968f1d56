"""A node process whose work is saved never hangs in rclpy's teardown: the deadline ends it."""

from __future__ import annotations

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
