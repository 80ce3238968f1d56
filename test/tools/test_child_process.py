"""Child processes always end: SIGINT first, escalating for a child that ignores it."""

import signal
import sys
import time

from lightwam_ros.tools.launch.child_process import ChildProcess

IGNORES_SIGINT_AND_SIGTERM = (
    "import signal, sys, time\n"
    "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_output_arrives_line_by_line_and_sigint_ends_a_well_behaved_child():
    lines = []
    child = ChildProcess(
        [
            sys.executable,
            "-c",
            (
                "import signal, sys, time\n"
                "signal.signal(signal.SIGINT, lambda *_: sys.exit(3))\n"
                "print('one')\nprint('two', flush=True)\ntime.sleep(60)"
            ),
        ],
        lines.append,
    )
    child.start_reading()
    deadline = time.monotonic() + 10
    while len(lines) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    escalations = []
    assert child.stop(on_escalation=escalations.append) == 3
    assert lines == ["one", "two"] and escalations == []


def test_a_child_ignoring_sigint_and_sigterm_is_killed():
    lines = []
    child = ChildProcess([sys.executable, "-c", IGNORES_SIGINT_AND_SIGTERM], lines.append)
    child.start_reading()
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    escalations = []
    assert child.stop(timeout=0.2, on_escalation=escalations.append) == -signal.SIGKILL
    assert escalations == ["SIGTERM", "SIGKILL"]
