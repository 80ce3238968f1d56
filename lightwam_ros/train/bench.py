"""lightwam-bench-train: training speed and peak memory of the real path against a naive one.

    lightwam-bench-train [--presets tiny small] [--embodiment aloha_sim] [--batch-size 8]
        [--steps 5] [--warmup 2] [--trainable lora] [--device auto] [--threads 1]
        [--json OUT.json]

Both paths train the same model on the same generated episodes in one invocation:
- real: the latent cache (built before timing; its one-off cost is reported), bf16 autocast and
  gradient checkpointing on a GPU;
- naive: the VAE encodes every clip in every step, float32, no cache, no checkpointing.
Each (preset, path) runs in its own process so that its peak memory is its own (CUDA allocator
peak on a GPU, the process's peak RSS on a CPU).  The cache needs a frozen encoder: with
``--trainable full`` both paths run the VAE and only precision and checkpointing differ.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.policy.embodiment import EmbodimentSpec, load_embodiment
from lightwam_ros.train.config import config_from_dict

BENCH_TASK = "benchmark the trainer"
EPISODE_FRAMES = 48


def write_episodes(spec: EmbodimentSpec, folder: Path, count: int, seed: int = 0) -> None:
    """Random episodes of ``spec`` (content is irrelevant to speed)."""
    rng = np.random.default_rng(seed)
    horizon, frames = spec.chunk.length, EPISODE_FRAMES
    for index in range(count):
        tensors: dict[str, np.ndarray] = {
            f"images.{c.role}": rng.integers(
                0, 256, (frames, *(c.source_size or (c.height, c.width)), 3), dtype=np.uint8
            )
            for c in spec.canvas.cameras
        }
        mask = (np.arange(frames)[:, None] + np.arange(horizon)[None, :]) < frames
        tensors.update(
            state=rng.uniform(-0.5, 0.5, (frames, spec.state_dim)).astype(np.float32),
            action_chunks=rng.uniform(-0.5, 0.5, (frames, horizon, spec.action_dim)).astype(np.float32),
            action_mask=mask,
            timestamps=np.arange(frames) / spec.policy_rate_hz,
        )
        save_file(
            tensors,
            str(folder / f"episode_{index:04d}.safetensors"),
            metadata={"embodiment": spec.name, "instruction": BENCH_TASK},
        )


def _instructions(path: Path, text_len: int, text_dim: int) -> None:
    cache = InstructionCache("bench-standin", text_len, text_dim)
    cache.add(BENCH_TASK, torch.randn(text_len, text_dim), torch.arange(text_len) < 8)
    cache.save(path)


def _measure(settings: dict, queue: multiprocessing.Queue) -> None:
    """Child process: build the trainer, warm up, time the steps, report."""
    from lightwam_ros.train.loop import Trainer

    try:
        config = config_from_dict(settings["config"])
        started = time.perf_counter()
        trainer = Trainer(config, log=lambda _text: None)
        setup = time.perf_counter() - started
        cuda = trainer.device.type == "cuda"
        for _ in range(settings["warmup"]):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        for _ in range(settings["steps"]):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        peak = (
            torch.cuda.max_memory_allocated()
            if cuda
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        )
        queue.put(
            {
                "samples_per_s": settings["steps"] * config.optim.batch_size / elapsed,
                "step_s": elapsed / settings["steps"],
                "peak_bytes": int(peak),
                "setup_s": setup,
                "vae_calls_in_steps": trainer.vae_calls
                - (trainer.cache_report.vae_calls if trainer.cache_report else 0),
                "device": str(trainer.device),
            }
        )
    except Exception as error:  # noqa: BLE001 - reported by the parent
        queue.put({"error": f"{type(error).__name__}: {error}"})


def run_pair(preset: str, spec_name: str, args: argparse.Namespace, work: Path) -> dict:
    spec = load_embodiment(spec_name)
    episodes = work / f"episodes_{spec.name}"
    if not episodes.is_dir():
        episodes.mkdir()
        write_episodes(spec, episodes, args.episodes)
    from lightwam_ros.model.config import make_config

    cfg = make_config(preset, spec.action_dim, spec.state_dim, spec.chunk.length)
    instructions = work / f"instructions_{preset}.safetensors"
    _instructions(instructions, cfg.dit.text_len, cfg.dit.text_dim)
    base = {
        "data": {"episodes": [str(episodes)], "embodiment": spec_name, "instructions": str(instructions)},
        "model": {"preset": preset, "trainable": args.trainable},
        "objective": {"video_weight": args.video_weight},
        "optim": {"steps": args.warmup + args.steps, "batch_size": args.batch_size},
        "run": {"device": args.device, "threads": args.threads, "progress": False, "tensorboard": False},
    }
    frozen = args.trainable == "lora"
    paths = {
        "real": {
            **base,
            "data": {**base["data"], "cache_dir": str(work / "cache") if frozen else ""},
            "model": {**base["model"], "grad_checkpointing": True},
            "run": {**base["run"], "precision": "auto", "out_dir": str(work / "real")},
        },
        "naive": {
            **base,
            "model": {**base["model"], "grad_checkpointing": False},
            "run": {**base["run"], "precision": "fp32", "out_dir": str(work / "naive")},
        },
    }
    context = multiprocessing.get_context("spawn")
    results = {}
    for name, config in paths.items():
        queue = context.Queue()
        process = context.Process(
            target=_measure, args=({"config": config, "warmup": args.warmup, "steps": args.steps}, queue)
        )
        process.start()
        results[name] = queue.get()
        process.join()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightwam-bench-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--embodiment", default="aloha_sim", help="shipped name or YAML path")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--trainable", choices=("lora", "full"), default="lora")
    parser.add_argument("--video-weight", type=float, default=1.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (0: torch's default; on a shared 2-core machine two "
        "threads ran a tiny step 9x slower than one)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    table = {}
    with tempfile.TemporaryDirectory(prefix="lightwam-bench-train-") as folder:
        for preset in args.presets:
            table[preset] = run_pair(preset, args.embodiment, args, Path(folder))
    print(
        f"{'preset':<12}{'path':<7}{'samples/s':>10}{'step s':>9}{'peak MiB':>10}{'setup s':>9}"
        f"{'VAE calls':>10}"
    )
    failed = False
    for preset, paths in table.items():
        for name, result in paths.items():
            if "error" in result:
                print(f"{preset:<12}{name:<7} {result['error']}")
                failed = True
                continue
            print(
                f"{preset:<12}{name:<7}{result['samples_per_s']:>10.2f}{result['step_s']:>9.3f}"
                f"{result['peak_bytes'] / 2**20:>10.0f}{result['setup_s']:>9.1f}"
                f"{result['vae_calls_in_steps']:>10d}"
            )
        if not failed and {"real", "naive"} <= set(paths):
            ratio = paths["real"]["samples_per_s"] / paths["naive"]["samples_per_s"]
            print(f"{preset:<12}speed-up {ratio:.2f}x")
    if args.json:
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": table}, indent=1)
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
