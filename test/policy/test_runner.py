"""PolicyRunner on the tiny preset (CPU, float32): end to end, warm-up, input and output
validation, optimised vs reference agreement, and loading a make_tiny package from files."""

from __future__ import annotations

import functools
import threading

import numpy as np
import pytest
import torch
import yaml

from lightwam_ros.model.checkpoint import CheckpointError, load_checkpoint
from lightwam_ros.model.config import make_config
from lightwam_ros.model.lora import LoRA
from lightwam_ros.policy import canvas
from lightwam_ros.policy.embodiment import SHIPPED_DIR, camera_sizes, load_embodiment
from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.policy.postprocess import postprocess_chunk
from lightwam_ros.policy.runner import PolicyConfigError, PolicyInputError, PolicyOutputError, PolicyRunner
from lightwam_ros.tools.assets.make_tiny import (
    demo_tasks,
    make_tiny_package,
    plausible_stats,
    random_model,
    standin_cache,
)
from lightwam_ros.tools.bench.bench import REDUCED_PRECISION_TOLERANCE

EMBODIMENTS = ("libero_franka", "robotwin_aloha")
ACTION_DIMS = {"libero_franka": 7, "robotwin_aloha": 14}


@functools.cache
def stats_for(name: str) -> dict:
    return plausible_stats(load_embodiment(name))


def parts(name: str, seed: int = 0):
    """Spec, seeded random tiny model, statistics-based normaliser and stand-in cache."""
    spec = load_embodiment(name)
    cfg = make_config("tiny", spec.action_dim, spec.state_dim, spec.chunk.length)
    normalizer = Normalizer.from_stats(stats_for(name), spec.normalization.mode, spec.normalization.clamp)
    cache = standin_cache(demo_tasks(spec), cfg.dit.text_len, cfg.dit.text_dim)
    return spec, random_model(cfg, seed), normalizer, cache


def make_runner(name: str, warm: bool = True, poison=None, **kwargs) -> PolicyRunner:
    spec, model, normalizer, cache = parts(name)
    if poison is not None:
        poison(model)
    kwargs.setdefault("warmup", 1)
    kwargs.setdefault("device", "cpu")
    runner = PolicyRunner(model, spec, normalizer, cache, **kwargs)
    if warm:
        runner.warmup()
    return runner


def state_range(name: str) -> tuple[np.ndarray, np.ndarray]:
    stats = stats_for(name)["state"]["default"]
    return np.array(stats["global_q01"]), np.array(stats["global_q99"])


def observation(runner: PolicyRunner, seed: int = 0):
    """Camera images at their source sizes and a state inside the statistics' range."""
    rng = np.random.default_rng(seed)
    images = {
        cam.role: rng.integers(0, 256, (*cam.source_size, 3), dtype=np.uint8)
        for cam in runner.spec.canvas.cameras
    }
    return images, rng.uniform(*state_range(runner.spec.name))


def count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture(scope="module")
def runners():
    return {name: make_runner(name) for name in EMBODIMENTS}


# ------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", EMBODIMENTS)
def test_end_to_end_chunk(runners, name):
    runner = runners[name]
    images, state = observation(runner)
    out = runner.predict(images, state, runner.tasks[0], stamp_ns=1_764_900_000_123_456_789)
    dim = ACTION_DIMS[name]
    chunk = out.chunk
    assert chunk.actions.shape == out.normalized.shape == (32, dim)
    assert out.normalized.dtype == np.float32
    np.testing.assert_array_equal(chunk.actions, chunk.actions.astype(np.float32))
    assert chunk.stamp_ns == 1_764_900_000_123_456_789
    assert chunk.dt == 1.0 / runner.spec.policy_rate_hz
    assert chunk.execute_steps == runner.spec.chunk.execute_steps
    assert chunk.action_names == runner.spec.action.layout.dim_names
    assert (chunk.embodiment, chunk.action_mode) == (name, runner.spec.action.mode)
    assert chunk.instruction == runner.tasks[0]
    expected = postprocess_chunk(runner.normalizer.denormalize_action(out.normalized), runner.spec)
    np.testing.assert_allclose(chunk.actions, expected, rtol=1e-6, atol=1e-6)
    if name == "libero_franka":
        assert set(np.unique(chunk.actions[:, 6])) <= {-1.0, 0.0, 1.0}
    timing = out.timing
    stages = (timing.preprocess, timing.vae, timing.backbone, timing.expert, timing.postprocess)
    assert all(value > 0 for value in stages)
    assert timing.model == pytest.approx(timing.vae + timing.backbone + timing.expert)
    assert timing.preprocess + timing.model + timing.postprocess <= timing.total
    assert out.peak_memory_bytes == 0  # not measured on a CPU


def test_different_observations_give_different_chunks(runners):
    runner = runners["robotwin_aloha"]
    first = runner.predict(*observation(runner, seed=1), runner.tasks[0]).normalized
    other_task = runner.predict(*observation(runner, seed=1), runner.tasks[1]).normalized
    other_image = runner.predict(*observation(runner, seed=2), runner.tasks[0]).normalized
    assert np.max(np.abs(first - other_task)) > 1e-4
    assert np.max(np.abs(first - other_image)) > 1e-4


def test_warmup_runs_passes_that_stay_out_of_the_statistics():
    runner = make_runner("libero_franka", warm=False, warmup=2)
    expert_calls = count_calls(runner.model.expert)
    images, state = observation(runner)
    assert not runner.ready
    with pytest.raises(RuntimeError, match="warmup"):
        runner.predict(images, state, runner.tasks[0])
    cancelled = threading.Event()
    cancelled.set()
    assert runner.warmup(cancel=cancelled) is False
    assert not runner.ready and expert_calls[0] == 0
    assert runner.warmup(cancel=threading.Event()) is True
    assert runner.ready and expert_calls[0] == 2
    assert runner.latency_stats() is None
    for _ in range(2):
        runner.predict(images, state, runner.tasks[0])
    stats = runner.latency_stats()
    assert stats.count == 2 and expert_calls[0] == 4
    assert 0 < stats.p50 <= stats.p90 <= stats.max
    runner.reset_stats()
    assert runner.latency_stats() is None


@pytest.mark.parametrize("sizes", [None, {"head": (60, 80), "left_wrist": (48, 64)}])
def test_warmup_prepares_the_resize_tables_of_the_frames_that_arrive(sizes):
    """Warm-up renders frames of the embodiment's sizes, or of a deployment's override: the first
    real frame of those sizes then builds no resize table."""
    canvas._axis_taps.cache_clear()
    runner = make_runner("aloha_sim", warm=False)
    runner.warmup(source_sizes=sizes)
    warmed = canvas._axis_taps.cache_info()
    assert warmed.misses > 0
    expected = {**camera_sizes(runner.spec), **(sizes or {})}
    rng = np.random.default_rng(0)
    images = {role: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for role, size in expected.items()}
    runner.predict(images, rng.uniform(*state_range("aloha_sim")), runner.tasks[0])
    assert canvas._axis_taps.cache_info().misses == warmed.misses
    other = {role: np.zeros((size[0] + 2, size[1] + 2, 3), np.uint8) for role, size in expected.items()}
    runner.predict(other, rng.uniform(*state_range("aloha_sim")), runner.tasks[0])
    assert canvas._axis_taps.cache_info().misses > warmed.misses  # what warm-up would miss


def test_instruction_embedding_is_uploaded_once_per_task():
    spec, model, normalizer, cache = parts("libero_franka")
    reads = []
    original_get = cache.get
    cache.get = lambda task: reads.append(task) or original_get(task)
    runner = PolicyRunner(model, spec, normalizer, cache, device="cpu", warmup=1)
    runner.warmup()
    images, state = observation(runner)
    for _ in range(2):
        runner.predict(images, state, runner.tasks[1])
    assert reads == [runner.tasks[0], runner.tasks[1]]  # warm-up task, then the new one once


# ------------------------------------------------------------------------- input validation
def _drop_wrist(images, state, task):
    return {"agentview": images["agentview"]}, state, task


def _float_image(images, state, task):
    return {**images, "wrist": images["wrist"].astype(np.float32)}, state, task


def _gray_image(images, state, task):
    return {**images, "wrist": images["wrist"][..., 0]}, state, task


def _nan_state(images, state, task):
    return images, np.where(np.arange(state.size) == 2, np.nan, state), task


def _short_state(images, state, task):
    return images, state[:-1], task


def _text_state(images, state, task):
    return images, np.array(["a"] * state.size), task


def _unknown_task(images, state, task):
    return images, state, "dance the robot dance"


def _images_as_list(images, state, task):
    return list(images.values()), state, task


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (_drop_wrist, "no image for camera role 'wrist'"),
        (_float_image, "expected dtype uint8"),
        (_gray_image, "HxWx3"),
        (_nan_state, r"non-finite values in \['eef_z'\]"),
        (_short_state, r"state must have shape \(8,\)"),
        (_text_state, "real numbers"),
        (_unknown_task, "not in the instruction cache"),
        (_images_as_list, "mapping of camera role"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(runners, corrupt, message):
    runner = runners["libero_franka"]
    images, state = observation(runner)
    expert_calls = count_calls(runner.model.expert)
    runs_before = runner.latency_stats().count
    with pytest.raises(PolicyInputError, match=message):
        runner.predict(*corrupt(images, state, runner.tasks[0]))
    assert expert_calls[0] == 0 and runner.latency_stats().count == runs_before


# ------------------------------------------------------------------------ output validation
def _nan_output_bias(model):
    model.expert.output[2].bias.data[3] = float("nan")


def _huge_output_bias(model):
    model.expert.output[2].bias.data.fill_(50.0)


def test_non_finite_chunk_is_refused_with_the_output_attached():
    runner = make_runner("libero_franka", poison=_nan_output_bias, warmup=0)
    with pytest.raises(PolicyOutputError, match=r"step 0, dimension 3 \('drx'\) is nan") as caught:
        runner.predict(*observation(runner), runner.tasks[0])
    actions = caught.value.actions
    assert np.isnan(actions[:, 3]).all() and np.isfinite(np.delete(actions, 3, 1)).all()
    assert caught.value.timing.total > 0
    assert runner.latency_stats().count == 1  # the pass ran; its latency counts


def test_a_chunk_past_the_joint_limits_is_returned_for_the_executor_to_judge():
    """Limits are the executor's: the policy refuses only meaningless chunks."""
    runner = make_runner("robotwin_aloha", poison=_huge_output_bias, warmup=0)
    chunk = runner.predict(*observation(runner), runner.tasks[0]).chunk
    upper = np.array([runner.spec.joint_limit(name)[1] for name in runner.spec.arm("left").joints])
    left = [runner.spec.action.layout.dim_names.index(name) for name in runner.spec.arm("left").joints]
    assert np.any(chunk.actions[:, left] > upper)


# ----------------------------------------------------------------- optimised vs reference
@pytest.mark.parametrize("name", EMBODIMENTS)
def test_optimized_and_reference_paths_agree_in_float32(runners, name):
    optimized = runners[name]
    reference = make_runner(name, optimized=False, warmup=0)
    assert reference.model.cfg == optimized.model.cfg
    last_block_calls = count_calls(reference.model.dit.blocks[29])
    images, state = observation(optimized, seed=3)
    fast = optimized.predict(images, state, optimized.tasks[0])
    slow = reference.predict(images, state, reference.tasks[0])
    assert last_block_calls[0] == 1  # the reference runs every block
    assert len(optimized.model.dit.blocks) == 25  # early exit after block 24
    assert not any(isinstance(m, LoRA) for m in optimized.model.modules())  # merged and freed
    assert all(not m.merged for m in reference.model.modules() if isinstance(m, LoRA))
    np.testing.assert_allclose(fast.normalized, slow.normalized, rtol=0, atol=1e-5)


def test_lora_matters_so_the_agreement_check_means_something():
    spec, model, normalizer, cache = parts("libero_franka")
    for lora in (m for m in model.modules() if isinstance(m, LoRA)):
        lora.up_proj.weight.data.zero_()
    without_lora = PolicyRunner(model, spec, normalizer, cache, device="cpu", warmup=0)
    without_lora.warmup()
    with_lora = make_runner("libero_franka", warmup=0)
    images, state = observation(with_lora, seed=3)
    a = with_lora.predict(images, state, with_lora.tasks[0]).normalized
    b = without_lora.predict(images, state, without_lora.tasks[0]).normalized
    assert np.max(np.abs(a - b)) > 1e-3


# ------------------------------------------------------------------------ configuration
def test_model_that_does_not_fit_the_embodiment_is_refused():
    spec = load_embodiment("robotwin_aloha")
    _, libero_model, normalizer, cache = parts("libero_franka")
    with pytest.raises(PolicyConfigError, match="action dimension: model 7, embodiment 14"):
        PolicyRunner(libero_model, spec, normalizer, cache, device="cpu")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cuda_graphs": True}, "needs a CUDA device"),
        ({"compile": "fastest"}, "compile must be"),
        ({"optimized": False, "compile": True}, "runs eagerly"),
        ({"warmup": -1}, "non-negative"),
    ],
)
def test_invalid_runner_options_are_refused(kwargs, message):
    spec, model, normalizer, cache = parts("libero_franka")
    with pytest.raises(PolicyConfigError, match=message):
        PolicyRunner(model, spec, normalizer, cache, device="cpu", **kwargs)


# -------------------------------------------------------------------------------- from files
def test_from_files_round_trip_matches_the_in_memory_runner(tmp_path, runners):
    package = make_tiny_package("libero_franka", tmp_path, seed=0)
    loaded = PolicyRunner.from_files(package.checkpoint, package.instructions, warmup=1)
    assert loaded.ready and loaded.device.type == "cpu" and loaded.dtype == torch.float32
    assert loaded.tasks == sorted(package.tasks)
    images, state = observation(loaded, seed=4)
    from_disk = loaded.predict(images, state, package.tasks[0])
    in_memory = runners["libero_franka"].predict(images, state, package.tasks[0])
    np.testing.assert_allclose(from_disk.normalized, in_memory.normalized, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(from_disk.chunk.actions[:, 6], in_memory.chunk.actions[:, 6])

    with pytest.raises(CheckpointError, match="for embodiment 'libero_franka', expected 'robotwin_aloha'"):
        PolicyRunner.from_files(
            package.checkpoint, package.instructions, embodiment="robotwin_aloha", warmup=0
        )


def test_a_model_runs_only_on_the_canvas_it_was_trained_on(tmp_path):
    """The checkpoint records its canvas: an embodiment file of the same name that now builds
    another canvas (a moved cell, a resized canvas) is refused before anything runs."""
    package = make_tiny_package("aloha_sim", tmp_path / "pkg")
    assert load_checkpoint(package.checkpoint).meta.canvas == canvas.canvas_layout(
        load_embodiment("aloha_sim")
    )
    data = yaml.safe_load((SHIPPED_DIR / "aloha_sim.yaml").read_text())
    data["cameras"][1]["center_crop"] = False
    moved = tmp_path / "aloha_sim.yaml"
    moved.write_text(yaml.safe_dump(data))
    with pytest.raises(PolicyConfigError, match=r"trained on canvas .* now builds"):
        PolicyRunner.from_files(package.checkpoint, package.instructions, embodiment=moved, warmup=0)
    assert (
        PolicyRunner.from_files(package.checkpoint, package.instructions, warmup=0).spec.name == "aloha_sim"
    )


# ------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_path_agrees_with_the_reference_in_bf16():
    graphed = make_runner("robotwin_aloha", device="cuda", cuda_graphs=True)
    reference = make_runner("robotwin_aloha", optimized=False, device="cuda")
    assert graphed.dtype == reference.dtype == torch.bfloat16
    images, state = observation(graphed, seed=5)
    fast = graphed.predict(images, state, graphed.tasks[0])
    slow = reference.predict(images, state, reference.tasks[0])
    assert fast.timing.vae is None and fast.timing.model > 0  # one graph, no per-stage split
    assert fast.peak_memory_bytes > 0 and slow.peak_memory_bytes > 0
    np.testing.assert_allclose(fast.normalized, slow.normalized, rtol=0, atol=REDUCED_PRECISION_TOLERANCE)
