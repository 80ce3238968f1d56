"""The offline report: figures from synthetic chunks whose errors are known analytically, partial
inputs that give a partial report (never an exception, never a NaN in the JSON), and a report
folder with viewable PNGs and escaped text."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lightwam_ros.tools.offline.offline_report import (
    OfflineInputs,
    PredictedChunk,
    ReferenceSeries,
    compute_figures,
    write_report,
)
from lightwam_ros.tools.offline.offline_report_plots import PLOT_FILES

NAMES = ["shoulder", "elbow", "gripper"]
GRIPPER = 2
DT, HORIZON, EXECUTE = 0.05, 8, 4
CHUNK_PERIOD = EXECUTE * DT  # a new chunk where the previous one's executed steps end
CHUNKS = 40
STEP_SLOPE = 0.01  # shoulder error grows by this per chunk step
ELBOW_OFFSET = -0.2
FLIPPED_STEPS = 2  # gripper predicted wrong on the first steps of every chunk
LIVE_OFFSET = np.array([0.05, 0.0, 0.0])


def recorded(times: np.ndarray) -> np.ndarray:
    """Linear joints (interpolation is exact) and a gripper switching between reference samples
    (at t = 1.005 s mod 2), so no chunk step falls on a switch."""
    times = np.asarray(times, dtype=np.float64)
    gripper = ((times % 2.0) < 1.005).astype(np.float64)
    return np.column_stack([0.3 * times, 1.0 - 0.2 * times, gripper])


def predicted(stamp: float, horizon: int = HORIZON) -> np.ndarray:
    steps = np.arange(horizon)
    actions = recorded(stamp + (steps + 1) * DT)  # step i's target is due at its interval's end
    actions[:, 0] += STEP_SLOPE * steps
    actions[:, 1] += ELBOW_OFFSET
    actions[:FLIPPED_STEPS, GRIPPER] = 1.0 - actions[:FLIPPED_STEPS, GRIPPER]
    return actions


def make_inputs(**changes) -> OfflineInputs:
    stamps = CHUNK_PERIOD * np.arange(CHUNKS)
    chunks = [
        PredictedChunk(
            stamp=float(t),
            actions=predicted(t),
            dt=DT,
            execute_steps=EXECUTE,
            compute_time=0.02,
            recorded_actions=predicted(t) + LIVE_OFFSET,
        )
        for t in stamps
    ]
    times = np.round(np.arange(0.0, 10.0 + 1e-9, 0.01), 6)
    fields = dict(
        bag="/bags/run_1",
        embodiment="test_arm",
        action_names=list(NAMES),
        gripper_dims=[GRIPPER],
        gripper_open_above=0.5,
        chunks=chunks,
        reference=ReferenceSeries("/commands", times, recorded(times)),
        live_latencies=np.arange(101) / 1000.0,
        observation_ages={"/camera": np.array([0.01, 0.02, 0.03]), "/joints": np.array([])},
        problems=[{"kind": "gap", "topic": "/camera", "message": "gap of 0.5 s at 3.0 s"}],
        bag_summary={"duration_s": 10.0, "/camera": {"count": 300, "rate_hz": 30.0}},
    )
    fields.update(changes)
    return OfflineInputs(**fields)


def strict_json(figures: dict) -> dict:
    """The figures survive a strict JSON round trip (no NaN/inf, only JSON types)."""
    return json.loads(json.dumps(figures, allow_nan=False))


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["dimension"]: row for row in rows}


def test_errors_vs_reference_equal_the_constructed_offsets():
    figures = strict_json(compute_figures(make_inputs()))
    errors = figures["vs_reference"]
    steps = np.arange(HORIZON)
    assert errors["chunks_compared"] == CHUNKS
    per_dim = by_name(errors["per_dimension"])
    assert per_dim["shoulder"]["mae"] == pytest.approx(STEP_SLOPE * steps.mean())
    assert per_dim["shoulder"]["rmse"] == pytest.approx(STEP_SLOPE * math.sqrt(np.mean(steps**2)))
    assert per_dim["shoulder"]["max"] == pytest.approx(STEP_SLOPE * (HORIZON - 1))
    for stat in ("mae", "rmse", "max"):
        assert per_dim["elbow"][stat] == pytest.approx(abs(ELBOW_OFFSET))
    assert per_dim["gripper"]["mae"] == pytest.approx(FLIPPED_STEPS / HORIZON)
    assert per_dim["shoulder"]["samples"] == CHUNKS * HORIZON
    executed = by_name(errors["per_dimension_executed"])
    assert executed["shoulder"]["mae"] == pytest.approx(STEP_SLOPE * np.arange(EXECUTE).mean())
    assert executed["gripper"]["mae"] == pytest.approx(FLIPPED_STEPS / EXECUTE)
    # Per step: the shoulder's error grows linearly, the heat-map holds it per dimension.
    heat = np.array(errors["per_step_dimension_mae"])
    assert heat.shape == (HORIZON, len(NAMES))
    np.testing.assert_allclose(heat[:, 0], STEP_SLOPE * steps, atol=1e-9)
    np.testing.assert_allclose(heat[:, 1], abs(ELBOW_OFFSET), atol=1e-9)
    np.testing.assert_allclose(heat[:, 2], (steps < FLIPPED_STEPS).astype(float), atol=1e-9)
    pooled = [row["mae"] for row in errors["per_step"]]
    np.testing.assert_allclose(pooled, heat.mean(axis=1), atol=1e-9)
    assert [row["step"] for row in errors["per_step"]] == list(range(HORIZON))


def test_errors_vs_live_chunks_equal_the_live_offset():
    errors = compute_figures(make_inputs())["vs_live"]
    for row in errors["per_dimension"]:
        assert row["mae"] == pytest.approx(LIVE_OFFSET[row["index"]], abs=1e-12)
        assert row["max"] == pytest.approx(LIVE_OFFSET[row["index"]], abs=1e-12)


def test_a_shorter_live_chunk_is_compared_over_its_own_steps():
    inputs = make_inputs()
    for chunk in inputs.chunks:
        chunk.recorded_actions = chunk.recorded_actions[:3]
    errors = compute_figures(inputs)["vs_live"]
    assert [row["samples"] for row in errors["per_step"]][:4] == [CHUNKS * len(NAMES)] * 3 + [0]
    assert errors["per_step"][3]["mae"] is None


def test_gripper_agreement_equals_the_share_not_flipped():
    (gripper,) = compute_figures(make_inputs())["gripper"]
    assert gripper["dimension"] == "gripper"
    assert gripper["open_above"] == 0.5 and gripper["threshold_source"] == "given"
    assert gripper["vs_reference"]["agreement"] == pytest.approx(1 - FLIPPED_STEPS / HORIZON)
    assert gripper["vs_reference"]["samples"] == CHUNKS * HORIZON
    assert gripper["vs_live"]["agreement"] == 1.0


def test_gripper_threshold_defaults_to_the_middle_of_the_recorded_range():
    inputs = make_inputs(gripper_open_above=None)
    inputs.reference.values[:, GRIPPER] = inputs.reference.values[:, GRIPPER] * 0.08  # 0..0.08
    for chunk in inputs.chunks:
        chunk.actions[:, GRIPPER] *= 0.08
    (gripper,) = compute_figures(inputs)["gripper"]
    assert gripper["open_above"] == pytest.approx(0.04)
    assert "reference" in gripper["threshold_source"]
    assert gripper["vs_reference"]["agreement"] == pytest.approx(1 - FLIPPED_STEPS / HORIZON)


def test_boundary_jumps_are_the_new_first_step_against_the_previous_step_at_its_stamp():
    jumps = compute_figures(make_inputs())["boundary_jumps"]
    # A new chunk starts at step EXECUTE of the previous one: the shoulder's step error drops
    # from STEP_SLOPE * EXECUTE to 0, the elbow's constant offset cancels, the gripper flips.
    expected = {"shoulder": STEP_SLOPE * EXECUTE, "elbow": 0.0, "gripper": 1.0}
    for source in ("offline", "live"):
        assert jumps[source]["boundaries"] == CHUNKS - 1
        assert jumps[source]["beyond_previous_horizon"] == 0
        for name, row in by_name(jumps[source]["per_dimension"]).items():
            for stat in ("p50", "p90", "max"):
                assert row[stat] == pytest.approx(expected[name], abs=1e-9), (source, name)


def test_jumps_distribution_and_a_stamp_past_the_previous_horizon():
    chunks = [
        PredictedChunk(stamp=t, actions=np.full((HORIZON, 1), value), dt=DT, execute_steps=EXECUTE)
        for t, value in ((0.0, 0.0), (0.1, 1.0), (0.2, 3.0), (5.0, 0.0))
    ]
    inputs = make_inputs(chunks=chunks, action_names=["x"], gripper_dims=[], reference=None)
    jumps = compute_figures(inputs)["boundary_jumps"]
    assert jumps["live"] is None
    offline = jumps["offline"]
    assert offline["boundaries"] == 2 and offline["beyond_previous_horizon"] == 1
    (row,) = offline["per_dimension"]
    assert (row["p50"], row["p90"], row["max"]) == pytest.approx((1.5, 1.9, 2.0))


def test_latency_and_observation_age_distributions():
    inputs = make_inputs(live_latencies=np.append(np.arange(101) / 1000.0, np.nan))
    inputs.chunks[0].compute_time = None
    figures = strict_json(compute_figures(inputs))
    live = figures["latency"]["live_inference"]
    assert live["count"] == 101 and live["unit"] == "s"
    assert (live["p50"], live["p90"], live["p99"], live["max"]) == pytest.approx((0.050, 0.090, 0.099, 0.100))
    offline = figures["latency"]["offline_compute"]
    assert offline["count"] == CHUNKS - 1 and offline["max"] == pytest.approx(0.02)
    ages = figures["observation_ages"]
    assert ages["/camera"]["p50"] == pytest.approx(0.02)
    assert ages["/camera"]["max"] == pytest.approx(0.03)
    assert ages["/joints"] is None
    assert figures["counts"]["observation_age_streams"] == 2


def test_nan_samples_are_left_out_of_the_statistics():
    inputs = make_inputs()
    inputs.reference.values[::7, 1] = np.nan  # bridged by interpolation: the elbow is linear
    inputs.chunks[3].actions[2, 0] = np.nan
    figures = strict_json(compute_figures(inputs))
    per_dim = by_name(figures["vs_reference"]["per_dimension"])
    assert per_dim["shoulder"]["samples"] == CHUNKS * HORIZON - 1
    assert per_dim["elbow"]["mae"] == pytest.approx(abs(ELBOW_OFFSET))
    assert figures["vs_reference"]["overall"]["max"] == pytest.approx(1.0)


def one_chunk(**changes) -> list[PredictedChunk]:
    return [
        PredictedChunk(**{**dict(stamp=1.0, actions=predicted(1.0), dt=DT, execute_steps=EXECUTE), **changes})
    ]


PARTIAL_INPUTS = {
    "no chunks": (dict(chunks=[]), "predicted chunks"),
    "no reference": (dict(reference=None), "reference series"),
    "no live chunks": (dict(chunks=one_chunk() + one_chunk(stamp=1.2)), "live chunks"),
    "single chunk": (dict(chunks=one_chunk()), "a second chunk"),
    "no latencies": (dict(live_latencies=np.array([])), "live inference latencies"),
    "no observation ages": (dict(observation_ages={}), "observation ages"),
    "no gripper": (dict(gripper_dims=[]), "gripper dimensions"),
    "reference elsewhere in time": (
        dict(reference=ReferenceSeries("/commands", np.array([50.0, 51.0]), recorded([0, 1]))),
        "overlap in time",
    ),
    "reference of the wrong shape": (
        dict(reference=ReferenceSeries("/commands", np.arange(3.0), np.zeros((3, 2)))),
        "usable reference",
    ),
    "all NaN": (
        dict(
            chunks=one_chunk(actions=np.full((HORIZON, 3), np.nan), compute_time=np.nan),
            live_latencies=np.full(4, np.nan),
            observation_ages={"/camera": np.full(3, np.nan)},
        ),
        "live inference",
    ),
    "everything empty": (
        dict(
            action_names=[],
            gripper_dims=[],
            chunks=[],
            reference=None,
            live_latencies=np.array([]),
            observation_ages={},
            problems=[],
            bag_summary={},
        ),
        "predicted chunks",
    ),
    "malformed chunks": (
        dict(
            chunks=one_chunk(actions=np.zeros((0, 3)))
            + one_chunk(actions=np.zeros((4, 2)))
            + one_chunk(dt=0.0)
            + one_chunk(stamp=float("nan"))
            + one_chunk(actions="not an array")
        ),
        "predicted chunks",
    ),
}


@pytest.mark.parametrize("name", PARTIAL_INPUTS)
def test_partial_inputs_give_partial_figures_that_say_what_is_missing(name):
    changes, missing = PARTIAL_INPUTS[name]
    figures = strict_json(compute_figures(make_inputs(**changes)))
    assert any(missing in line for line in figures["missing"]), figures["missing"]
    assert figures["problems"] == [] or figures["problems"][0]["kind"] == "gap"


def test_malformed_chunks_are_named_in_the_notes():
    changes, _ = PARTIAL_INPUTS["malformed chunks"]
    figures = compute_figures(make_inputs(**changes))
    assert figures["counts"]["chunks_given"] == 5 and figures["counts"]["chunks"] == 0
    assert len(figures["notes"]) == 5
    assert "(H, 3)" in figures["notes"][1]


def test_the_full_report_folder(tmp_path):
    names = ["shoulder $\\alpha_", "<b>elbow</b>", "gripper"]  # mathtext and HTML must not bite
    inputs = make_inputs(
        bag="/bags/<script>alert(1)</script>", action_names=names, action_units=["rad", "rad", ""]
    )
    inputs.problems.append(
        {"kind": "truncated", "topic": None, "message": "recovered 120 of ~130 messages | <last chunk lost>"}
    )
    out = write_report(inputs, tmp_path / "report")
    assert out == tmp_path / "report"
    figures = json.loads((out / "figures.json").read_text())
    assert figures["plots"] == PLOT_FILES
    assert figures["notes"] == []  # no plot failed
    for file in PLOT_FILES.values():
        with Image.open(out / file) as image:
            image.verify()
        with Image.open(out / file) as image:
            assert image.format == "PNG"
            assert 500 <= image.width <= 3000 and 300 <= image.height <= 2500, image.size
            colours = np.asarray(image.convert("L"))
            assert colours.std() > 10  # something is drawn, not a blank canvas
    page = (out / "report.html").read_text()
    for file in PLOT_FILES.values():
        assert f'src="{file}"' in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;elbow&lt;/b&gt;" in page
    assert "recovered 120 of ~130 messages | &lt;last chunk lost&gt;" in page
    markdown = (out / "report.md").read_text()
    assert "recovered 120 of ~130 messages \\| \\<last chunk lost\\>" in markdown
    assert "| gap | /camera | gap of 0.5 s at 3.0 s |" in markdown
    assert "Nothing: every figure could be computed." in markdown
    for file in PLOT_FILES.values():
        assert f"]({file})" in markdown


def test_an_empty_report_folder_says_what_is_missing_and_drops_stale_plots(tmp_path):
    stale = tmp_path / PLOT_FILES["latency"]
    stale.write_bytes(b"old")
    changes, _ = PARTIAL_INPUTS["everything empty"]
    out = write_report(make_inputs(**changes), tmp_path)
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["figures.json", "report.html", "report.md"]
    figures = json.loads((out / "figures.json").read_text())
    assert figures["plots"] == {} and figures["vs_reference"] is None
    markdown = (out / "report.md").read_text()
    assert "- predicted chunks: no errors" in markdown
    assert "None: the inputs hold nothing to draw." in markdown


def test_a_report_without_reference_or_live_chunks_still_draws_the_chunks(tmp_path):
    chunks = one_chunk(compute_time=0.03) + one_chunk(stamp=1.2, compute_time=0.03)
    inputs = make_inputs(reference=None, chunks=chunks, live_latencies=np.array([]))
    out = write_report(inputs, tmp_path)
    figures = json.loads((out / "figures.json").read_text())
    assert set(figures["plots"]) == {"timeline", "latency", "jumps"}
    assert figures["vs_reference"] is None and figures["vs_live"] is None
    page = (out / "report.html").read_text()
    assert "Not computed: no chunk overlaps the reference or a live chunk." in page


def test_the_report_needs_no_ros():
    code = (
        "import sys; import lightwam_ros.tools.offline.offline_report; "
        "assert not [m for m in sys.modules if m.startswith('rclpy')], 'rclpy imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
