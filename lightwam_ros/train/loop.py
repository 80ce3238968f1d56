"""The trainer: episodes and a config in, run checkpoints and a package checkpoint out.

AdamW (betas 0.9 / 0.95, weight decay 1e-2 by default) with linear warm-up and a cosine, grad
norm clipped to 1.0, an optional EMA of the trained weights (what the export writes), bf16
autocast and per-block gradient checkpointing on CUDA only (a CPU run is float32, but for the
video targets' no-graph VAE pass: bf16 where the CPU has it natively, unless ``run.precision`` is
fp32).
Several processes (``torchrun``) each take an equal slice of the global batch; DDP averages the
gradients, and since every loss is a mean over samples the update equals one process's on the
whole batch.  Only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from lightwam_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.policy.canvas import canvas_layout, canvas_to_model_input
from lightwam_ros.policy.device import resolve_device
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.train.augment import augment, changes_images
from lightwam_ros.train.config import TrainConfig, TrainConfigError
from lightwam_ros.train.episodes import load_episodes
from lightwam_ros.train.latent_cache import CacheReport, LatentCache, module_digest
from lightwam_ros.train.model_setup import build_model, select_trainable, standardise_latents
from lightwam_ros.train.objective import Objective, checkpoint_blocks, sample_generators
from lightwam_ros.train.progress import Progress
from lightwam_ros.train.provenance import write_provenance
from lightwam_ros.train.run_state import checkpoint_dirs, load_run_state, save_run_state
from lightwam_ros.train.sampler import EpochStream
from lightwam_ros.train.samples import Batch, SampleSet
from lightwam_ros.train.schedule import make_scheduler
from lightwam_ros.train.stats import dataset_stats, write_stats
from lightwam_ros.train.validation import ValidationResult, evaluate, plot_validation

EXPORT_DIR = "export"
MODEL_FILE = "model.safetensors"
INSTRUCTIONS_FILE = "instructions.safetensors"
LATENT_STAT_CLIPS = 64
_AVERAGED = (
    "loss",
    "action_loss",
    "video_loss",
    "grad_norm",
)  # clips whose latents set a random encoder's normalisation


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print) -> None:
        self.cfg, self.log = cfg, log
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world = dist.get_world_size() if dist.is_initialized() else 1
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        self.device = resolve_device(cfg.run.device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.out_dir = Path(cfg.run.out_dir)
        self.spec = spec = load_embodiment(cfg.data.embodiment)
        self.instructions = InstructionCache.load(cfg.data.instructions)
        self.supervised_steps = self._supervised_steps()

        tasks = self.instructions.tasks()
        episodes, self.skipped = load_episodes(cfg.data.episodes, spec, tasks, cfg.data.strict)
        val_episodes, val_skipped = load_episodes(cfg.data.val_episodes, spec, tasks, cfg.data.strict)
        self.skipped += val_skipped
        for item in self.skipped:
            self._say(f"skipped {item.path}: {item.reason}")
        if not episodes:
            raise ValueError("no usable training episode (see the reasons above)")
        self.stats = dataset_stats(episodes)
        self.normalizer = Normalizer.from_stats(
            self.stats,
            spec.normalization.mode,
            spec.normalization.clamp,
            state_dim=spec.state_dim,
            action_dim=spec.action_dim,
            source="training data",
        )
        used = sorted({e.instruction for e in episodes + val_episodes})
        embeddings = {task: self.instructions.get(task)[0] for task in used}

        self.model = model = build_model(cfg.model, spec, cfg.run.seed)
        # Sizes only: the model learns whichever encoder made the cache it is trained with.
        self.instructions.check_compatible(
            self.instructions.encoder_id, model.cfg.dit.text_len, model.cfg.dit.text_dim
        )
        factor = model.vae.temporal_factor
        self.train_set = SampleSet(
            episodes, self.normalizer, embeddings, cfg.data.video_frames, cfg.data.frame_stride, factor
        )
        self.val_set = (
            SampleSet(
                val_episodes,
                self.normalizer,
                embeddings,
                cfg.data.video_frames,
                cfg.data.frame_stride,
                factor,
            )
            if val_episodes
            else None
        )
        frames = cfg.data.video_frames
        if cfg.objective.video_weight > 0 and ((frames - 1) % factor or frames < 1 + factor):
            raise TrainConfigError(
                f"data.video_frames must be 1 + {factor}k with k >= 1 for the video loss, got {frames}"
            )
        multiple = model.vae.spatial_factor * 2 * max(model.cfg.dit.patch_size[1:])
        canvas = (spec.canvas.height, spec.canvas.width)
        if cfg.objective.video_weight > 0 and any(n % multiple for n in canvas):
            raise TrainConfigError(
                f"the video loss pools latents 2x and patchifies them: the canvas must be a "
                f"multiple of {multiple} in both dimensions, {spec.name}'s is {canvas[0]}x"
                f"{canvas[1]} (use another canvas or objective.video_weight=0)"
            )
        if cfg.model.latent_norm == "data":
            picks = np.linspace(0, len(self.train_set) - 1, min(LATENT_STAT_CLIPS, len(self.train_set)))
            standardise_latents(
                model, [self.train_set.batch([int(k)], self._clip_mode()).loaded_clips() for k in picks]
            )
        self.trainable = select_trainable(model, cfg.model.trainable)
        model.to(self.device)
        self.objective = Objective(
            model, cfg.objective, self.supervised_steps, target_dtype=self._target_dtype()
        ).to(self.device)
        if self.device.type == "cuda" and cfg.model.grad_checkpointing:
            checkpoint_blocks(model)
        opt = cfg.optim
        self.optimizer = torch.optim.AdamW(
            self.trainable, lr=opt.lr, betas=(opt.betas[0], opt.betas[1]), weight_decay=opt.weight_decay
        )
        self.scheduler = make_scheduler(self.optimizer, opt.steps, opt.warmup_steps, opt.min_lr_ratio)
        self.ema = (
            {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
            if opt.ema_decay > 0
            else None
        )
        self.stream = EpochStream(len(self.train_set), opt.batch_size, cfg.run.seed, self.rank, self.world)
        self.vae_calls = 0
        self.cache_report: CacheReport | None = None
        self.latents = self._latent_cache()
        self.step = 0
        if cfg.run.resume and checkpoint_dirs(self.out_dir):
            newest = checkpoint_dirs(self.out_dir)[-1]
            self.step = load_run_state(newest, model, self.optimizer, self.scheduler, self.ema)
            self._say(f"resumed from {newest} at step {self.step}")
        self.wrapped: torch.nn.Module = self.objective
        if self.world > 1:
            # With one branch off, its parameters (the expert, or the late blocks and the video
            # head) get no gradient, which DDP must be told about.
            both = cfg.objective.action_weight > 0 and cfg.objective.video_weight > 0
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.objective,
                find_unused_parameters=not both,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )

    # ------------------------------------------------------------------------------ set-up
    def _say(self, text: str) -> None:
        if self.rank == 0:
            self.log(text)

    def _supervised_steps(self) -> int:
        chunk = self.spec.chunk
        steps = self.cfg.objective.supervised_steps or chunk.execute_steps
        if not chunk.execute_steps <= steps <= chunk.length:
            raise TrainConfigError(
                f"objective.supervised_steps={steps}: {self.spec.name} executes "
                f"{chunk.execute_steps} of {chunk.length} chunk steps, and a policy must be "
                f"supervised on every step it executes (and on no step past the chunk)"
            )
        return steps

    def _clip_mode(self) -> str:
        return "all" if self.cfg.objective.video_weight > 0 else "first"

    def _latent_cache(self) -> Tensor | None:
        cfg = self.cfg
        if not cfg.data.cache_dir:
            return None
        if cfg.model.trainable == "full" or changes_images(cfg.augment):
            raise TrainConfigError(
                "data.cache_dir serves runs whose images reach a frozen encoder "
                "unchanged: it needs model.trainable=lora and no image "
                "augmentation"
            )
        fields = {
            "embodiment": self.spec.name,
            "canvas": dataclasses.asdict(self.spec.canvas),
            "frames": cfg.data.video_frames if self._clip_mode() == "all" else 1,
            "stride": cfg.data.frame_stride,
            "vae": module_digest(self.model.vae),
            "latents_mean": list(self.model.cfg.vae.latents_mean),
            "latents_std": list(self.model.cfg.vae.latents_std),
            "episodes": [e.digest for e in self.train_set.episodes],
        }
        cache = LatentCache(Path(cfg.data.cache_dir), fields, len(self.train_set))

        def encode(keys: Sequence[int]) -> Tensor:
            batch = self.train_set.batch(list(keys), self._clip_mode())
            clips = batch.loaded_clips().to(self.device)
            return self.objective.encode(dataclasses.replace(batch, clips=clips))

        if self.rank == 0:
            self.cache_report = cache.build(encode, self.cfg.optim.batch_size)
            self.vae_calls += self.cache_report.vae_calls
            self._say(
                f"latent cache {cache.folder}: {self.cache_report.hits} shard(s) hit, "
                f"{self.cache_report.built} built"
            )
        if self.world > 1:
            dist.barrier()
        return cache.load()

    # ------------------------------------------------------------------------------ training
    def _autocast(self) -> contextlib.AbstractContextManager:
        precision = self.cfg.run.precision
        if self.device.type == "cuda" and precision in ("auto", "bf16"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _target_dtype(self) -> torch.dtype | None:
        """bf16 for the video targets' no-graph VAE pass on a CPU that computes it natively.

        On CUDA the whole step already runs under bf16 autocast (``_autocast``); a CPU without
        native bf16 kernels keeps float32, since the saving comes from those kernels.
        """
        if self.device.type != "cpu" or self.cfg.run.precision == "fp32":
            return None
        return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None

    def train_step(self) -> dict[str, float]:
        """One optimiser step on global batch ``self.step``; returns its losses (all ranks)."""
        step = self.step
        keys = self.stream.batch(step)
        slots = (self.stream.positions(step) - step * self.stream.global_batch).tolist()
        generators = sample_generators(self.cfg.run.seed, step, slots)
        batch = self.train_set.batch(keys, "none" if self.latents is not None else self._clip_mode())
        batch = _to(augment(batch, self.cfg.augment, generators), self.device)
        latents = None
        if self.latents is not None:
            latents = self.latents[keys].to(self.device)
        else:
            self.vae_calls += 1
        self.model.train()
        with self._autocast():
            parts = self.wrapped(batch, latents, generators)
        self.optimizer.zero_grad(set_to_none=True)
        parts.total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainable, self.cfg.optim.grad_clip)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            decay = self.cfg.optim.ema_decay
            with torch.no_grad():
                for name, param in self.model.named_parameters():
                    if name in self.ema:
                        self.ema[name].lerp_(param.detach(), 1 - decay)
        self.step += 1
        values = torch.stack([parts.total.detach().float(), parts.action.float(), parts.video.float()])
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        total, action, video = values.tolist()
        return {
            "loss": total,
            "action_loss": action,
            "video_loss": video,
            "lr": lr,
            "grad_norm": float(grad_norm),
        }

    @torch.no_grad()
    def predict_batch(self, batch: Batch) -> Tensor:
        """Normalised chunks [B, H, A] of the model as it is now, from each sample's frame t."""
        self.model.eval()
        clips = batch.loaded_clips()[:, :, :1].to(self.device)
        return (
            self.model.infer_action(
                clips[:, :, 0], batch.instruction.to(self.device), batch.proprio.to(self.device)
            )
            .float()
            .cpu()
        )

    @torch.no_grad()
    def predict(self, canvas: np.ndarray, state: np.ndarray, instruction: str) -> np.ndarray:
        """Normalised chunk [H, A] for one uint8 canvas, a raw state and a task (as the runner)."""
        self.model.eval()
        pixels = torch.from_numpy(canvas_to_model_input(canvas))[None].to(self.device)
        proprio = torch.from_numpy(self.normalizer.normalize_state(state))[None].to(self.device)
        embedding = self.instructions.get(instruction)[0][None].to(self.device)
        return self.model.infer_action(pixels, embedding, proprio)[0].float().cpu().numpy()

    def validate(self) -> ValidationResult | None:
        if self.val_set is None:
            return None
        every = max(1, len(self.val_set) // 256)
        result = evaluate(self.val_set, self.predict_batch, self.cfg.optim.batch_size, every)
        if self.rank == 0:
            plot_validation(
                result,
                self.spec.action.layout.dim_names,
                self.out_dir / f"validation_step{self.step:07d}.png",
                f"{self.spec.name} step {self.step}",
            )
        return result

    def save(self) -> Path | None:
        if self.rank != 0:
            return None
        return save_run_state(
            self.out_dir,
            self.step,
            self.model,
            self.optimizer,
            self.scheduler,
            self.ema,
            self.cfg.run.keep_last,
        )

    def export(self, folder: Path | None = None) -> Path:
        """Package checkpoint (EMA weights when kept), its dataset_stats.json and the instruction
        cache, loadable by every node and tool here; returns the checkpoint path."""
        folder = Path(folder or self.out_dir / EXPORT_DIR)
        model = LightWAM(self.model.cfg)
        state = {k: v.detach().cpu().float() for k, v in self.model.state_dict().items()}
        for name, value in (self.ema or {}).items():
            state[name] = value.detach().cpu().float()
        model.load_state_dict(state)
        meta = CheckpointMetadata(
            config=model.cfg,
            embodiment=self.spec.name,
            stats=self.stats,
            canvas=canvas_layout(self.spec),
            instruction_encoder=self.instructions.encoder_id,
            source=f"lightwam-train, {self.step} steps",
        )
        path = folder / MODEL_FILE
        save_checkpoint(path, model.eval(), meta, dtype=getattr(torch, self.cfg.run.export_dtype))
        write_stats(self.stats, folder)
        shutil.copyfile(self.cfg.data.instructions, folder / INSTRUCTIONS_FILE)
        write_provenance(folder, self.cfg, self.step, [e.path for e in self.train_set.episodes])
        return path

    def run(self) -> Path | None:
        """Train to ``optim.steps`` with logging, validation and checkpoints; export at the end.
        Returns the exported checkpoint (rank 0) or None."""
        cfg = self.cfg.run
        total = self.cfg.optim.steps
        if self.rank == 0:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_stats(self.stats, self.out_dir)
        progress = (
            Progress(self.out_dir, total, self.step, cfg.progress, cfg.tensorboard)
            if self.rank == 0
            else None
        )
        window_start, window_steps, sums = time.perf_counter(), 0, dict.fromkeys(_AVERAGED, 0.0)
        while self.step < total:
            row = self.train_step()
            window_steps += 1
            for key in _AVERAGED:
                sums[key] += row[key]
            last = self.step == total
            elapsed = time.perf_counter() - window_start
            validate = self.val_set is not None and (
                last or (cfg.val_every and self.step % cfg.val_every == 0)
            )
            if validate and (result := self.validate()) is not None:
                row["val_action_mae"] = result.mae
            if self.step % cfg.log_every == 0 or last or validate:
                # Losses averaged over the steps since the last row; throughput without validation.
                row.update(
                    {key: value / window_steps for key, value in sums.items()},
                    step=self.step,
                    epoch=self.stream.epoch(self.step),
                    samples_per_s=window_steps * self.stream.global_batch / elapsed,
                )
                if progress is not None:
                    progress.update(row, window_steps)
                window_start, window_steps = time.perf_counter(), 0
                sums = dict.fromkeys(_AVERAGED, 0.0)
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"loss is {row['loss']} at step {self.step}")
            if last or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                self.save()
        if progress is not None:
            progress.close()
        return self.export() if self.rank == 0 else None


def _to(batch: Batch, device: torch.device) -> Batch:
    moved: dict[str, Any] = {
        f.name: value.to(device)
        for f in dataclasses.fields(batch)
        if isinstance(value := getattr(batch, f.name), Tensor)
    }
    return dataclasses.replace(batch, **moved)
