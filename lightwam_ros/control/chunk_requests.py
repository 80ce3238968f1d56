"""When the executor asks the policy for its next chunk (the policy's ``trigger:=request``).

Asking when the plan is about to run out, instead of predicting on a fixed timer, keeps a slow
policy (a CPU, a big model) from predicting chunks that are stale before they arrive, and a fast
one from wasting the GPU. ``lead_time`` should cover the policy's latency plus transport.
"""

from __future__ import annotations

import math

from lightwam_ros.policy.chunk import NS_PER_S


class ChunkRequestTimer:
    """Due once the plan ends within ``lead_time``; then not again until a chunk is accepted or
    ``retry`` seconds pass without one (the policy drops requests while it is busy, and a lost
    request must not stall the arm). With no plan at all it asks every ``retry`` seconds."""

    def __init__(self, lead_time: float, retry: float) -> None:
        for name, value in (("lead_time", lead_time), ("retry", retry)):
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value}")
        self.lead_time = lead_time
        self.retry = retry
        self._lead_ns = round(lead_time * NS_PER_S)
        self._retry_ns = round(retry * NS_PER_S)
        self._asked_at: int | None = None
        self._accepted_when_asked = -1

    def due(self, now_ns: int, plan_end_ns: int | None, chunks_accepted: int) -> bool:
        """Whether to send a request now (recorded as sent when True); times in ns, no plan
        is ``plan_end_ns=None``."""
        if plan_end_ns is not None and plan_end_ns - now_ns > self._lead_ns:
            return False
        if (
            self._asked_at is not None
            and chunks_accepted == self._accepted_when_asked
            and now_ns - self._asked_at < self._retry_ns
        ):
            return False
        self._asked_at, self._accepted_when_asked = now_ns, chunks_accepted
        return True
