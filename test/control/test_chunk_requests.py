"""The executor asks for a chunk when its plan nears its end, once per answer, retrying."""

import math

import pytest

from lightwam_ros.control.chunk_requests import ChunkRequestTimer


def ns(seconds: float) -> int:
    return round(seconds * 1e9)


def test_asks_when_the_plan_ends_within_the_lead_time_and_once_per_accepted_chunk():
    timer = ChunkRequestTimer(lead_time=0.5, retry=1.0)
    assert not timer.due(ns(10.0), ns(11.0), 1)
    assert timer.due(ns(10.5), ns(11.0), 1)
    assert not timer.due(ns(10.6), ns(11.0), 1)  # asked, no answer yet
    assert timer.due(ns(10.7), ns(11.0), 2)  # an answer came, still short
    assert not timer.due(ns(10.8), ns(11.6), 3)  # the answer extended it
    assert timer.due(ns(11.1), ns(11.6), 3)


def test_asks_again_after_the_retry_time_when_no_chunk_arrives():
    timer = ChunkRequestTimer(lead_time=0.5, retry=1.0)
    assert timer.due(ns(0.0), None, 0)  # nothing planned yet: ask at once
    assert not timer.due(ns(0.99), None, 0)
    assert timer.due(ns(1.0), None, 0)
    assert not timer.due(ns(1.5), None, 0)


@pytest.mark.parametrize("lead_time, retry", [(0.0, 1.0), (0.5, -1.0), (math.nan, 1.0), (0.5, math.inf)])
def test_bad_settings_are_refused(lead_time, retry):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        ChunkRequestTimer(lead_time, retry)
