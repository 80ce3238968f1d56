"""lightwam-bench: latency and peak memory of the optimised and the reference inference paths.

For each embodiment the two paths of ``PolicyRunner`` get the same seeded random weights
(``make_tiny.random_model``, LoRA and adapters non-zero), the same stand-in instruction and the
same camera images and states.  Latency is measured from camera images in to the denormalised
chunk out (batch 1), after ``--warmup`` excluded passes.  Peak memory is the CUDA
allocator's peak during a prediction (weights included); on a CPU it is not measured (reported as
null, with the weight bytes alongside).

Agreement: the largest absolute difference between the paths' normalised chunks must stay within

- ``FP32_TOLERANCE`` (1e-4) in float32: the paths then differ only by the rounding of the LoRA
  merge and of the attention/matmul kernels (observed: ~1e-7);
- ``REDUCED_PRECISION_TOLERANCE`` (0.05) in bf16/fp16: bfloat16 keeps 8 significant bits
  (relative rounding 2^-9 per operation); merging LoRA rounds every merged weight once more, and
  those errors pass through 25 residual blocks and the expert.  Normalised actions span about
  [-1, 1] (LIBERO's min/max scaling), so 0.05 is 2.5 % of the range, well below the differences
  that change a behaviour yet above the accumulated rounding noise (tiny preset in bf16 on a CPU,
  seeds 0-3: 0.003-0.008; the report JSON records the observed value of every run).

The post-processed chunk difference is reported too; a binarised gripper (LIBERO) can flip sign
near its threshold, so only the normalised chunks decide.  Exit status: 0 when every embodiment
agrees, 1 when one does not, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightwam_ros.model.config import PRESETS, make_config
from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.policy.device import resolve_device, resolve_dtype
from lightwam_ros.policy.embodiment import EmbodimentSpec, load_embodiment
from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.policy.runner import COMPILE_MODES, PolicyOutputError, PolicyRunner, StageTiming
from lightwam_ros.tools.assets.make_tiny import demo_tasks, plausible_stats, random_model, standin_cache

FULL_PRESET = "wan2.1-1.3b"
DEFAULT_EMBODIMENTS = ("libero_franka", "robotwin_aloha")
FP32_TOLERANCE = 1e-4
REDUCED_PRECISION_TOLERANCE = 0.05
COMPARE_OBSERVATIONS = 2  # distinct observations on which the two paths are compared
PATHS = ("optimized", "reference")
STAGES = ("preprocess", "vae", "backbone", "expert", "model", "postprocess", "total")


def tolerance_for(dtype: torch.dtype) -> float:
    return FP32_TOLERANCE if dtype == torch.float32 else REDUCED_PRECISION_TOLERANCE


def observations(
    spec: EmbodimentSpec, stats: dict, count: int, seed: int
) -> list[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Random camera images (at each camera's source size) and states between the statistics'
    1st and 99th percentiles."""
    rng = np.random.default_rng(seed)
    state_stats = stats["state"]["default"]
    low, high = np.array(state_stats["global_q01"]), np.array(state_stats["global_q99"])
    result = []
    for _ in range(count):
        images = {
            camera.role: rng.integers(
                0, 256, (*(camera.source_size or (camera.height, camera.width)), 3), np.uint8
            )
            for camera in spec.canvas.cameras
        }
        result.append((images, rng.uniform(low, high)))
    return result


@dataclass(frozen=True)
class _Prediction:
    timing: StageTiming
    peak_memory_bytes: int
    normalized: np.ndarray
    actions: np.ndarray
    ok: bool  # finite: a chunk (limits are the executor's, not judged here)


def _predict(runner: PolicyRunner, observation: tuple[dict, np.ndarray], task: str) -> _Prediction:
    """A random model may predict non-finite values; the timing still counts."""
    images, state = observation
    try:
        out = runner.predict(images, state, task)
    except PolicyOutputError as error:
        return _Prediction(error.timing, error.peak_memory_bytes, error.normalized, error.actions, False)
    return _Prediction(out.timing, out.peak_memory_bytes, out.normalized, out.chunk.actions, True)


def _weight_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _measure(
    runner: PolicyRunner, obs: list, task: str, iters: int
) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    runner.warmup()
    outputs = [_predict(runner, obs[i % len(obs)], task) for i in range(iters)]
    stats = runner.latency_stats()
    if stats is None:
        raise ValueError(f"no latency measured in {iters} iterations")
    stage_p50 = {}
    for stage in STAGES:
        values = [getattr(out.timing, stage) for out in outputs]
        stage_p50[stage] = None if values[0] is None else float(np.median(values))
    peak = max(out.peak_memory_bytes for out in outputs)
    compared = [_predict(runner, observation, task) for observation in obs[:COMPARE_OBSERVATIONS]]
    record = {
        "latency_s": {
            "p50": stats.p50,
            "p90": stats.p90,
            "max": stats.max,
            "mean": stats.mean,
            "count": stats.count,
        },
        "stages_p50_s": stage_p50,
        "peak_memory_bytes": peak if runner.device.type == "cuda" else None,
        "weight_bytes": _weight_bytes(runner.model),
        "valid_chunks": sum(out.ok for out in outputs + compared),
        "chunks": len(outputs) + len(compared),
    }
    return record, [out.normalized for out in compared], [out.actions for out in compared]


@dataclass
class BenchInputs:
    """One embodiment's seeded random model, statistics, instruction and observations."""

    spec: EmbodimentSpec
    model: LightWAM
    normalizer: Normalizer
    cache: InstructionCache
    task: str
    obs: list[tuple[dict[str, np.ndarray], np.ndarray]]

    @classmethod
    def make(cls, embodiment: str, preset: str, seed: int) -> BenchInputs:
        spec = load_embodiment(embodiment)
        cfg = make_config(
            preset, action_dim=spec.action_dim, proprio_dim=spec.state_dim, horizon=spec.chunk.length
        )
        stats = plausible_stats(spec, seed)
        normalizer = Normalizer.from_stats(
            stats,
            spec.normalization.mode,
            spec.normalization.clamp,
            state_dim=spec.state_dim,
            action_dim=spec.action_dim,
        )
        task = demo_tasks(spec)[0]
        return cls(
            spec,
            random_model(cfg, seed),
            normalizer,
            standin_cache([task], cfg.dit.text_len, cfg.dit.text_dim),
            task,
            observations(spec, stats, COMPARE_OBSERVATIONS, seed),
        )

    def runner(self, model: LightWAM, device: torch.device, dtype: torch.dtype, **options) -> PolicyRunner:
        return PolicyRunner(
            model, self.spec, self.normalizer, self.cache, device=device, dtype=dtype, **options
        )


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def bench_embodiment(
    embodiment: str, preset: str, device: torch.device, dtype: torch.dtype, args: argparse.Namespace
) -> dict:
    inputs = BenchInputs.make(embodiment, preset, args.seed)
    spec, task, obs = inputs.spec, inputs.task, inputs.obs
    models = {"optimized": inputs.model}
    models["reference"] = copy.deepcopy(models["optimized"])  # same weights, before any merge
    paths, normalized, chunks = {}, {}, {}
    for path in PATHS:
        runner = inputs.runner(
            models.pop(path),
            device,
            dtype,
            optimized=path == "optimized",
            compile=args.compile if path == "optimized" else False,
            cuda_graphs=args.cuda_graphs and path == "optimized",
            warmup=args.warmup,
        )
        paths[path], normalized[path], chunks[path] = _measure(runner, obs, task, args.iters)
        del runner
        _release(device)
    diff = max(
        float(np.max(np.abs(a - b)))
        for a, b in zip(normalized["optimized"], normalized["reference"], strict=True)
    )
    chunk_diff = max(
        float(np.max(np.abs(a - b))) for a, b in zip(chunks["optimized"], chunks["reference"], strict=True)
    )
    tolerance = tolerance_for(dtype)
    return {
        "embodiment": spec.name,
        "canvas": [spec.canvas.height, spec.canvas.width],
        "tokens": spec.token_count,
        "paths": paths,
        "max_abs_diff_normalized": diff,
        "max_abs_diff_chunk": chunk_diff,
        "tolerance": tolerance,
        "agree": diff <= tolerance,
        "speedup_p50": paths["reference"]["latency_s"]["p50"] / paths["optimized"]["latency_s"]["p50"],
    }


def precision_parity(
    embodiment: str, preset: str, device: torch.device, dtype: torch.dtype, seed: int
) -> dict:
    """The optimised path in ``dtype`` (what a robot runs) against the float32 reference path (the
    exact math) on the same random weights and observations: the largest normalised difference."""
    inputs = BenchInputs.make(embodiment, preset, seed)
    normalized = {}
    for name, model, run_dtype, optimized in (
        ("reduced", copy.deepcopy(inputs.model), dtype, True),
        ("float32", inputs.model, torch.float32, False),
    ):
        runner = inputs.runner(model, device, run_dtype, optimized=optimized, warmup=1)
        runner.warmup()
        normalized[name] = [_predict(runner, o, inputs.task).normalized for o in inputs.obs]
        del runner, model
        _release(device)
    diff = max(
        float(np.max(np.abs(a.astype(np.float64) - b)))
        for a, b in zip(normalized["reduced"], normalized["float32"], strict=True)
    )
    tolerance = tolerance_for(dtype)
    return {
        "embodiment": embodiment,
        "dtype": str(dtype).removeprefix("torch."),
        "max_abs_diff_normalized": diff,
        "tolerance": tolerance,
        "agree": diff <= tolerance,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def _print_table(report: dict) -> None:
    print(
        f"Light-WAM bench: preset {report['preset']} on {report['device_name']} "
        f"({report['dtype']}), torch {report['torch']}, {report['iters']} iterations after "
        f"{report['warmup']} warm-up"
    )
    header = (
        f"{'embodiment':<16}{'canvas':>9} {'path':<10}{'p50 ms':>9}{'p90 ms':>9}"
        f"{'max ms':>9}{'vae':>8}{'dit':>8}{'expert':>8}{'peak MiB':>10}"
    )
    print(header)
    print("-" * len(header))
    for result in report["results"]:
        canvas = "x".join(str(v) for v in result["canvas"])
        for i, path in enumerate(PATHS):
            record = result["paths"][path]
            lat, stages = record["latency_s"], record["stages_p50_s"]
            cells = [_ms(stages[name]) for name in ("vae", "backbone", "expert")]
            peak = record["peak_memory_bytes"]
            print(
                f"{result['embodiment'] if i == 0 else '':<16}{canvas if i == 0 else '':>9} "
                f"{path:<10}{lat['p50'] * 1e3:>9.2f}{lat['p90'] * 1e3:>9.2f}{lat['max'] * 1e3:>9.2f}"
                f"{cells[0]:>8}{cells[1]:>8}{cells[2]:>8}"
                f"{'n/a' if peak is None else f'{peak / 2**20:.0f}':>10}"
            )
        verdict = "OK" if result["agree"] else "DISAGREE"
        print(
            f"{'':<26}max |optimized - reference| = {result['max_abs_diff_normalized']:.3g} "
            f"(normalised; tolerance {result['tolerance']:g}) {verdict}; "
            f"speed-up x{result['speedup_p50']:.2f}"
        )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightwam-bench",
        description="Latency and peak memory of the optimised vs the reference Light-WAM path "
        "(random weights), with an agreement check between the two.",
    )
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help=f"model size (default: {FULL_PRESET} on a GPU, tiny on a CPU)",
    )
    parser.add_argument("--embodiments", nargs="+", default=list(DEFAULT_EMBODIMENTS))
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--dtype", default=None, help="default: bf16 on a GPU, fp32 on a CPU")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per path")
    parser.add_argument("--warmup", type=int, default=3, help="excluded warm-up iterations")
    parser.add_argument(
        "--compile", choices=COMPILE_MODES, default=None, help="torch.compile mode for the optimised path"
    )
    parser.add_argument(
        "--cuda-graphs", action="store_true", help="capture the optimised pass as one CUDA graph"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--parity",
        action="store_true",
        help="instead of timing: the optimised path in --dtype (default bf16) against "
        "the float32 reference path, per embodiment",
    )
    parser.add_argument(
        "--allow-full-on-cpu",
        action="store_true",
        help=f"permit the {FULL_PRESET} preset on a CPU (minutes per pass)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")
    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.dtype or ("bfloat16" if args.parity else None), device)
    except ValueError as error:
        parser.error(str(error))
    preset = args.preset or (FULL_PRESET if device.type == "cuda" else "tiny")
    if preset == FULL_PRESET and device.type == "cpu" and not args.allow_full_on_cpu:
        parser.error(
            f"the {FULL_PRESET} preset on a CPU takes minutes per pass; "
            f"pass --allow-full-on-cpu to run it anyway"
        )
    if args.parity:
        results = [precision_parity(name, preset, device, dtype, args.seed) for name in args.embodiments]
    else:
        results = [bench_embodiment(name, preset, device, dtype, args) for name in args.embodiments]
    report = {
        "mode": "parity" if args.parity else "latency",
        "torch": torch.__version__,
        "device": str(device),
        "device_name": _device_name(device),
        "dtype": str(dtype).removeprefix("torch."),
        "preset": preset,
        "iters": args.iters,
        "warmup": args.warmup,
        "compile": args.compile,
        "cuda_graphs": args.cuda_graphs,
        "seed": args.seed,
        "cpu_threads": torch.get_num_threads(),
        "agree": all(result["agree"] for result in results),
        "results": results,
    }
    if args.parity:
        for result in results:
            print(
                f"{result['embodiment']:<16} {preset} {result['dtype']} optimised vs float32 "
                f"reference: max |diff| {result['max_abs_diff_normalized']:.3g} (tolerance "
                f"{result['tolerance']:g}) {'OK' if result['agree'] else 'DISAGREE'}"
            )
    else:
        _print_table(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report written to {args.json}")
    return 0 if report["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
