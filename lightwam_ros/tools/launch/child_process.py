"""A node (or any command) as a child process: merged output handed over line by line, and a
stop that always ends it - SIGINT first, as Ctrl-C or ``ros2 launch`` would, then SIGTERM, then
SIGKILL - so no bring-up, benchmark or test leaves a node running behind it."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence

STOP_TIMEOUT = 15.0  # s for a node to finish after SIGINT (an inference in progress ends first)
_ESCALATION_TIMEOUT = 5.0  # s after SIGTERM, then after SIGKILL
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, the child gets SIGINT when its parent dies, even by SIGKILL.  libc is resolved
    here, in the parent: the child only calls prctl between fork and exec."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


class ChildProcess:
    """``command`` started at once; its output goes to ``on_line`` (without the newline) from a
    reader thread that ``start_reading`` starts.  Reading is a separate step so that a caller
    can fork all its children before it starts any thread (``die_with_parent`` runs code
    between fork and exec, which is unsafe in a process that has threads).  ``new_session``
    keeps a terminal's Ctrl-C away from the child, for callers that stop their children
    themselves."""

    def __init__(
        self,
        command: Sequence[str],
        on_line: Callable[[str], None],
        *,
        env: Mapping[str, str] | None = None,
        new_session: bool = False,
        die_with_parent: bool = False,
    ) -> None:
        self.process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=None if env is None else dict(env),
            start_new_session=new_session,
            preexec_fn=_die_with_parent() if die_with_parent else None,
        )
        self._reader = threading.Thread(target=self._read, args=(on_line,), daemon=True)
        self._interrupted = False

    def start_reading(self) -> None:
        self._reader.start()

    def _read(self, on_line: Callable[[str], None]) -> None:
        assert self.process.stdout is not None, "the child is started with stdout=PIPE"
        for line in self.process.stdout:
            on_line(line.rstrip())

    def interrupt(self) -> None:
        """SIGINT, once: what Ctrl-C would send; a node then shuts down cleanly."""
        if not self._interrupted and self.process.poll() is None:
            self._interrupted = True
            self.process.send_signal(signal.SIGINT)

    def stop(
        self, timeout: float = STOP_TIMEOUT, on_escalation: Callable[[str], None] = lambda signal_name: None
    ) -> int:
        """Interrupt, then SIGTERM, then SIGKILL until the process has exited (``on_escalation``
        hears each escalation); the exit status, once the output is read to its end."""
        self.interrupt()
        steps = (
            (None, timeout),
            (signal.SIGTERM, _ESCALATION_TIMEOUT),
            (signal.SIGKILL, _ESCALATION_TIMEOUT),
        )
        for sig, wait in steps:
            if sig is not None and self.process.poll() is None:
                on_escalation(sig.name)
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        if self._reader.is_alive():
            self._reader.join(timeout=5.0)
        return self.process.wait()
