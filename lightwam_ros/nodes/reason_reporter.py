"""Rate-limited logging of bad inputs: a sensor that goes bad at 500 Hz must not flood the log,
yet the first problem after good input is always logged at once."""

from __future__ import annotations

import math
import threading
import time


class ReasonReporter:
    """Rate-limits repeated complaints about one input without hiding a new problem.

    The first problem after a good input is reported at once; while the input stays bad, at most
    one report per ``interval`` seconds, with the count of those left out.  Thread-safe.  The
    caller logs the returned text (rclpy ties a severity to each logging call site).
    """

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._lock = threading.Lock()
        self._last = -math.inf
        self._suppressed = 0

    def bad(self, message: str) -> str | None:
        """The text to log now, or None while reports are being left out."""
        with self._lock:
            now = time.monotonic()
            if now - self._last < self._interval:
                self._suppressed += 1
                return None
            suffix = f" ({self._suppressed} similar reports left out)" if self._suppressed else ""
            self._last, self._suppressed = now, 0
        return message + suffix

    def good(self) -> None:
        with self._lock:
            self._last, self._suppressed = -math.inf, 0
