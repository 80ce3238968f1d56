"""Observation assembly from timestamped streams: matching, staleness, ordering, frozen inputs."""

import numpy as np
import pytest

from lightwam_ros.control.frame_history import (
    ObservationAssembler,
    StaleInputError,
    StampedRingBuffer,
    StreamConfig,
)


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8)


def test_as_of_picks_latest_at_or_before_t_plus_tolerance():
    assembler = ObservationAssembler(
        {
            "agentview": StreamConfig(max_age=0.2, tolerance=0.005),
            "joints": StreamConfig(max_age=0.05, capacity=64),
        }
    )
    for k in range(10):  # camera at 30 Hz, stamps 0, 1/30, ...
        assembler.add("agentview", k / 30, f"frame{k}")
    for k in range(60):  # joint state at 500 Hz
        assembler.add("joints", k * 0.002, np.full(7, k, dtype=float))

    t = 0.1 - 0.003  # frame 3 is stamped 0.1: 3 ms after t, inside the 5 ms tolerance
    obs = assembler.assemble(t)
    assert obs.value("agentview") == "frame3"
    assert obs.ages["agentview"] == pytest.approx(-0.003)
    # Joints have no tolerance: the latest sample at or before t (stamp 0.096, k = 48).
    assert obs.samples["joints"].stamp == pytest.approx(0.096)
    assert obs.value("joints")[0] == 48

    t = 0.1 - 0.008  # now frame 3 is 8 ms ahead: outside the tolerance, frame 2 is used
    assert assembler.assemble(t).value("agentview") == "frame2"
    assert assembler.assemble(t).oldest_age == pytest.approx(t - 2 / 30)


def test_nearest_matching_within_tolerance_either_side():
    assembler = ObservationAssembler({"wrist": StreamConfig(max_age=1.0, tolerance=0.01, match="nearest")})
    for stamp in (1.00, 1.05, 1.10):
        assembler.add("wrist", stamp, stamp)
    assert assembler.assemble(1.043).value("wrist") == 1.05  # after t, but nearer
    assert assembler.assemble(1.058).value("wrist") == 1.05  # before t
    with pytest.raises(StaleInputError) as info:
        assembler.assemble(1.075)  # 25 ms from both neighbours
    (problem,) = info.value.problems
    assert (problem.stream, problem.kind) == ("wrist", "unmatched")
    assert problem.excess == pytest.approx(0.015)


def test_stale_stream_is_named_with_its_excess_age():
    assembler = ObservationAssembler(
        {
            "agentview": StreamConfig(max_age=0.2),
            "wrist": StreamConfig(max_age=0.2),
            "joints": StreamConfig(max_age=0.05),
        }
    )
    for k in range(16):
        assembler.add("agentview", k * 0.1, image(k))
    for k in range(11):
        assembler.add("wrist", k * 0.1, image(100 + k))  # stops at 1.0
    assembler.add("joints", 1.49, np.zeros(7))

    with pytest.raises(StaleInputError) as info:
        assembler.assemble(1.5)
    (problem,) = info.value.problems
    assert problem.stream == "wrist" and problem.kind == "stale"
    assert problem.excess == pytest.approx(0.3)  # 0.5 s old with a 0.2 s limit
    message = str(info.value)
    assert "'wrist'" in message and "0.300 s too old" in message
    assert "agentview" not in message and "joints" not in message
    assert assembler.problems(1.5) == info.value.problems
    assembler.add("wrist", 1.45, image(200))  # the camera comes back
    assert assembler.problems(1.5) == ()


def test_problems_are_sorted_worst_first_and_missing_streams_reported():
    assembler = ObservationAssembler({name: StreamConfig(max_age=0.1) for name in ("a", "b", "c")})
    assembler.add("a", 0.0, 1)
    assembler.add("b", 0.5, 1)
    problems = assembler.problems(0.65)
    assert [(p.stream, p.kind) for p in problems] == [("c", "missing"), ("a", "stale"), ("b", "stale")]
    assert problems[1].excess == pytest.approx(0.55)
    assert problems[2].excess == pytest.approx(0.05)


def test_backwards_and_repeated_stamps_are_rejected_counted_and_dropped():
    assembler = ObservationAssembler({"joints": StreamConfig(max_age=1.0)})
    assert assembler.add("joints", 1.0, "a")
    assert not assembler.add("joints", 0.9, "late")
    assert not assembler.add("joints", 1.0, "repeat")
    assert assembler.add("joints", 1.1, "b")
    stats = assembler.stats("joints")
    assert (stats.received, stats.accepted, stats.rejected_backwards) == (4, 2, 2)
    assert "repeats" in stats.last_rejection and "1.000000" in stats.last_rejection
    assert assembler.frames_dropped == 2
    assert assembler.assemble(1.05).value("joints") == "a"  # the late sample never entered
    assert assembler.assemble(1.2).value("joints") == "b"


def test_a_stream_whose_stamps_go_back_beyond_max_age_restarts_instead_of_stalling():
    """A camera driver restart or a clock jump nobody announced: the camera's stamps restart 1000 s
    earlier while the joint stream keeps its own; the camera stream starts over at once."""
    assembler = ObservationAssembler(
        {"cam": StreamConfig(max_age=0.2), "joints": StreamConfig(max_age=0.2, capacity=64)}
    )
    for k in range(5):
        assembler.add("cam", 1000.0 + k * 0.04, f"old{k}")
    assert not assembler.add("cam", 1000.0, "within max_age")  # an ordinary late sample
    assert assembler.add("cam", 0.5, "new0") and assembler.add("cam", 0.54, "new1")
    stats = assembler.stats("cam")
    assert (stats.restarts, stats.accepted, stats.rejected_backwards) == (1, 7, 1)
    assert "restarted" in stats.last_restart and "999.660 s before" in stats.last_restart
    assert assembler.frames_dropped == 1  # a restart drops nothing that was sent after it
    for k in range(30):
        assembler.add("joints", 0.5 + k * 0.002, np.zeros(2))
    assert assembler.assemble(0.55).value("cam") == "new1"  # the old frames are gone
    assert assembler.stats("joints").restarts == 0


def test_stamp_gaps_count_as_dropped_frames():
    assembler = ObservationAssembler({"cam": StreamConfig(max_age=1.0, expected_period=0.1)})
    for stamp in (0.0, 0.1, 0.2, 0.5, 0.6, 0.61):  # 0.3 and 0.4 are missing
        assembler.add("cam", stamp, stamp)
    assert assembler.stats("cam").gap_frames == 2
    assert assembler.frames_dropped == 2


def test_frozen_camera_detected_and_recovers():
    assembler = ObservationAssembler({"cam": StreamConfig(max_age=0.2, frozen_after=1.0)})
    frozen = image(1)
    for k in range(16):  # fresh stamps, identical content for 1.5 s
        assembler.add("cam", k * 0.1, frozen.copy())
    assert assembler.assemble(0.95).value("cam") is not None  # 0.9 s unchanged: still fine
    with pytest.raises(StaleInputError) as info:
        assembler.assemble(1.55)
    (problem,) = info.value.problems
    assert (problem.stream, problem.kind) == ("cam", "frozen")
    assert problem.excess == pytest.approx(0.5)
    assembler.add("cam", 1.6, image(2))
    assert np.array_equal(assembler.assemble(1.65).value("cam"), image(2))


def test_ring_keeps_only_its_capacity():
    assembler = ObservationAssembler({"cam": StreamConfig(max_age=10.0, capacity=8)})
    for k in range(100):
        assembler.add("cam", float(k), k)
    assert assembler.assemble(95.5).value("cam") == 95
    with pytest.raises(StaleInputError) as info:
        assembler.assemble(50.0)  # evicted long ago
    assert info.value.problems[0].kind == "missing"

    ring = StampedRingBuffer(4)
    for k in range(7):
        ring.push(float(k), k, float(k))
    assert len(ring) == 4 and [ring.stamp(i) for i in range(4)] == [3.0, 4.0, 5.0, 6.0]
    assert [ring.index_at_or_before(t) for t in (2.9, 3.0, 4.5, 9.0)] == [-1, 0, 1, 3]


def test_bad_input_is_refused_without_side_effects():
    assembler = ObservationAssembler({"cam": StreamConfig(max_age=1.0, frozen_after=1.0)})
    with pytest.raises(ValueError, match="unknown stream 'depth'"):
        assembler.add("depth", 0.0, image(0))
    with pytest.raises(ValueError, match="finite"):
        assembler.add("cam", float("nan"), image(0))
    with pytest.raises(ValueError, match="numpy arrays or bytes"):
        assembler.add("cam", 0.0, "not an image")
    assert assembler.stats("cam").received == 0
    with pytest.raises(ValueError, match="max_age"):
        StreamConfig(max_age=0.0)
    with pytest.raises(ValueError, match="match"):
        StreamConfig(max_age=1.0, match="closest")


def anchored_streams() -> ObservationAssembler:
    assembler = ObservationAssembler(
        {"scene": StreamConfig(max_age=0.2), "joints": StreamConfig(max_age=0.05, capacity=64)}
    )
    for k in range(4):  # camera at 10 Hz: 0.0 .. 0.3
        assembler.add("scene", k / 10, f"frame{k}")
    for k in range(40):  # joints at 100 Hz: 0.0 .. 0.39
        assembler.add("joints", k / 100, k)
    return assembler


def test_anchored_assembly_takes_every_stream_as_of_the_anchor_frame():
    assembler = anchored_streams()
    obs = assembler.assemble_anchored(0.37, "scene")
    assert obs.value("scene") == "frame3"
    # The joint state of the frame's instant (k = 30), not the newest one (k = 37).
    assert obs.value("joints") == 30
    assert obs.ages["joints"] == pytest.approx(0.07)  # ages still count from t
    # The same frame gives the same observation whenever it is assembled.
    assert assembler.assemble_anchored(0.39, "scene").samples == obs.samples


def test_anchored_assembly_still_refuses_a_stale_anchor():
    assembler = anchored_streams()
    with pytest.raises(StaleInputError, match="'scene' is stale"):
        assembler.assemble_anchored(0.55, "scene")


def test_clear_forgets_samples_so_time_may_start_again():
    assembler = anchored_streams()
    assert not assembler.add("joints", 0.37, 99)  # before the newest, within max_age: refused
    assembler.clear()
    with pytest.raises(StaleInputError, match="no sample yet"):
        assembler.assemble(0.0)
    assert assembler.add("joints", 0.01, 99) and assembler.add("scene", 0.0, "again")
    assert assembler.assemble(0.02).value("joints") == 99
    assert assembler.stats("joints").rejected_backwards == 1  # statistics survive a clear


def test_anchored_assembly_waits_until_every_stream_has_reached_the_frame():
    assembler = ObservationAssembler(
        {"scene": StreamConfig(max_age=0.2), "joints": StreamConfig(max_age=0.05, capacity=64)}
    )
    for k in range(3):
        assembler.add("scene", k / 10, f"frame{k}")  # 0.0, 0.1, 0.2
    for k in range(20):
        assembler.add("joints", k / 100, k)  # up to 0.19: frame 2's joint state is in flight
    obs = assembler.assemble_anchored(0.2, "scene")
    assert obs.value("scene") == "frame1" and obs.value("joints") == 10
    assembler.add("joints", 0.2, 20)  # now the joints have reached frame 2
    assert assembler.assemble_anchored(0.2, "scene").value("scene") == "frame2"


def test_anchored_assembly_refuses_when_a_stream_lags_beyond_max_age():
    assembler = ObservationAssembler(
        {"scene": StreamConfig(max_age=0.15), "joints": StreamConfig(max_age=0.3)}
    )
    for k in range(5):
        assembler.add("scene", k / 10, f"frame{k}")
    assembler.add("joints", 0.15, 0)  # fresh enough, but it lags frame 2 and later
    with pytest.raises(StaleInputError, match="'joints' has reached"):
        assembler.assemble_anchored(0.4, "scene")
