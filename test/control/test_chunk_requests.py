"""The executor asks for a chunk when its plan nears its end, once per answer, retrying."""
import math

import pytest

from lightwam_ros.control.chunk_requests import ChunkRequestTimer


def test_asks_when_the_plan_ends_within_the_lead_time_and_once_per_accepted_chunk():
    timer = ChunkRequestTimer(lead_time=0.5, retry=1.0)
    assert not timer.due(now=10.0, plan_end=11.0, chunks_accepted=1)
    assert timer.due(now=10.5, plan_end=11.0, chunks_accepted=1)
    assert not timer.due(now=10.6, plan_end=11.0, chunks_accepted=1)  # asked, no answer yet
    assert timer.due(now=10.7, plan_end=11.0, chunks_accepted=2)  # an answer came, still short
    assert not timer.due(now=10.8, plan_end=11.6, chunks_accepted=3)  # the answer extended it
    assert timer.due(now=11.1, plan_end=11.6, chunks_accepted=3)


def test_asks_again_after_the_retry_time_when_no_chunk_arrives():
    timer = ChunkRequestTimer(lead_time=0.5, retry=1.0)
    assert timer.due(0.0, -math.inf, 0)  # nothing planned yet: ask at once
    assert not timer.due(0.99, -math.inf, 0)
    assert timer.due(1.0, -math.inf, 0)
    assert not timer.due(1.5, -math.inf, 0)


@pytest.mark.parametrize("lead_time, retry", [(0.0, 1.0), (0.5, -1.0), (math.nan, 1.0),
                                              (0.5, math.inf)])
def test_bad_settings_are_refused(lead_time, retry):
    with pytest.raises(ValueError, match="must be a finite number > 0"):
        ChunkRequestTimer(lead_time, retry)
