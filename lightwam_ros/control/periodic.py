"""A control loop on absolute deadlines, in its own thread.

A ROS timer re-arms from when its callback ran and shares its executor with every other
callback, so one slow callback (a chunk, a service) delays the tick and the delay is never made
up.  Here tick k is due at ``start + k * period`` on the monotonic clock whatever happened before:
a late tick is run at once (less than half a period late) or skipped (the next due time on the
grid is waited for), so the rate does not drift and lateness does not accumulate.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

# A woken thread waits for the GIL up to Python's switch interval (5 ms by default): longer than
# a 500 Hz period.  The loop lowers it to this fraction of its period for the whole process.
_SWITCH_FRACTION = 0.1


class PeriodicLoop:
    """Calls ``step()`` every ``period_ns`` on absolute deadlines until ``stop()``.

    ``step`` must catch its own errors (an exception ends the loop and is re-raised by ``stop``).
    """

    def __init__(self, period_ns: int, step: Callable[[], None], name: str) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        self.period_ns = int(period_ns)
        self._step = step
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self.skipped = 0  # due times passed over because a tick ran too late
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, priority: int = 0) -> str:
        """Start the thread, with SCHED_FIFO ``priority`` when > 0; returns why that priority
        could not be set ("" when it was, or was not asked for): the loop then runs anyway."""
        sys.setswitchinterval(min(sys.getswitchinterval(), _SWITCH_FRACTION * self.period_ns * 1e-9))
        self._thread.start()
        if priority <= 0:
            return ""
        try:  # Linux: a thread id schedules that thread alone
            thread_id = self._thread.native_id
            assert thread_id is not None, "the thread has started"
            os.sched_setscheduler(thread_id, os.SCHED_FIFO, os.sched_param(priority))
        except (AttributeError, OSError) as error:
            return f"SCHED_FIFO priority {priority} refused ({error})"
        return ""

    def stop(self, timeout: float = 2.0) -> None:
        """End the loop (after the running step) and wait for its thread."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        period = self.period_ns
        due = time.monotonic_ns() + period
        try:
            while not self._stop.is_set():
                delay = due - time.monotonic_ns()
                if delay > 0:
                    time.sleep(delay * 1e-9)
                    if self._stop.is_set():
                        return
                self._step()
                due += period
                late = time.monotonic_ns() - due
                if 2 * late > period:  # catching up would only bunch ticks: keep to the grid
                    missed = late // period + 1
                    self.skipped += missed
                    due += missed * period
        except BaseException as error:  # noqa: BLE001 - handed to stop()
            self._error = error
