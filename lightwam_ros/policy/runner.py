"""PolicyRunner: camera images + robot state + instruction -> an executable action ``Chunk``.

One runner serves one embodiment and owns its model (it moves, casts and, on the optimised path,
merges the model's LoRA in place).  Two model paths share all pre- and post-processing:

- optimised (default): LoRA merged into the base weights once (before the cast to bf16), the
  merged LoRA factors and the blocks after the last tapped one freed, bf16 weights on a GPU, the
  DiT stopped after the last tapped block, static input buffers, inference mode, optional
  ``torch.compile`` per stage and optional CUDA-graph capture of the whole VAE + DiT + expert
  pass; attention is PyTorch SDPA (flash kernels for bf16 on the GPU);
- reference (``optimized=False``): the plain eager model with unmerged LoRA running all DiT blocks
  and the video head, the way the released code runs it; it is the yardstick for the optimised one.

``warmup()`` runs the first passes (compilation, graph capture, allocator growth) before the
runner reports ``ready``; their timings never enter the latency statistics, so a scheduler fed from
them does not mistake compile time for the typical delay.

Timing: preprocessing and postprocessing are host wall-clock; the model stages are CUDA-event
spans on a GPU (perf_counter on a CPU); ``total`` is host wall-clock from images in to the
chunk out.  ``peak_memory_bytes`` is the CUDA allocator's peak during the call (the
weights included); on a CPU it is 0 (not measured: torch's CPU allocations are not tracked).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from lightwam_ros.model.checkpoint import load_checkpoint
from lightwam_ros.model.instructions import InstructionCache
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.lora import LoRA, set_lora_merged
from lightwam_ros.policy.canvas import build_canvas, canvas_layout, canvas_to_model_input
from lightwam_ros.policy.chunk import Chunk, ChunkError, embodiment_chunk
from lightwam_ros.policy.device import StageClock, resolve_device, resolve_dtype
from lightwam_ros.policy.embodiment import EmbodimentSpec, camera_sizes, load_embodiment
from lightwam_ros.policy.normalization import Normalizer
from lightwam_ros.policy.postprocess import postprocess_chunk

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DEFAULT_COMPILE_MODE = "max-autotune-no-cudagraphs"
STATS_WINDOW = 1000  # latency samples kept for the statistics


class PolicyInputError(ValueError):
    """An observation or instruction the policy cannot use; nothing was run."""


class PolicyOutputError(ValueError):
    """The prediction means nothing (non-finite values); the model's output is attached.

    Only meaning is judged here: joint limits, caps and clipping are the executor's safety
    filter's, so a finite chunk past a limit is returned, not refused."""

    def __init__(
        self,
        message: str,
        actions: np.ndarray,
        normalized: np.ndarray,
        timing: StageTiming,
        peak_memory_bytes: int,
    ) -> None:
        super().__init__(message)
        self.actions = actions
        self.normalized = normalized
        self.timing = timing
        self.peak_memory_bytes = peak_memory_bytes


class PolicyConfigError(ValueError):
    """Model, embodiment, statistics and instruction cache do not fit together."""


class InstructionSource(Protocol):
    """What the runner needs from an instruction cache (``model.instructions.InstructionCache``):
    ``get`` returns (embedding [text_len, text_dim] with padded positions zeroed, mask)."""

    encoder_id: str
    text_len: int
    text_dim: int

    def __contains__(self, task: object) -> bool: ...

    def get(self, task: str) -> tuple[Tensor, Tensor]: ...

    def tasks(self) -> list[str]: ...


@dataclass(frozen=True)
class StageTiming:
    """Seconds per stage.  vae/backbone/expert are None when a CUDA graph runs them as one."""

    preprocess: float
    vae: float | None
    backbone: float | None
    expert: float | None
    model: float
    postprocess: float
    total: float

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass(frozen=True)
class PolicyOutput:
    chunk: Chunk  # denormalised and post-processed actions (float32 values), observation-stamped
    normalized: np.ndarray  # [H, A] float32, the model's raw output
    timing: StageTiming
    peak_memory_bytes: int


@dataclass(frozen=True)
class LatencyStats:
    """Total-latency statistics (s) of the predictions since the last reset, warm-up excluded."""

    count: int
    mean: float
    p50: float
    p90: float
    max: float


# --------------------------------------------------------------------------------------------
# Model passes: both take device tensors already in place and return [1, H, A]
# --------------------------------------------------------------------------------------------


class _ReferencePass:
    """The released way: eager, unmerged LoRA, every DiT block and the video head evaluated.

    The expert reads the adapted token states; forward hooks on the adapters collect them while
    the full DiT forward runs, so the reference relies on nothing but the model's public forward.
    """

    def __init__(self, model: LightWAM) -> None:
        self._model = model
        self._tapped: list[Tensor] = []
        for layer in model.cfg.adapter.layers:
            model.dit.wam_adapters[str(layer)].register_forward_hook(self._keep_tapped)

    def _keep_tapped(self, _module: nn.Module, _inputs: tuple, output: Tensor) -> None:
        self._tapped.append(output)

    def prepare(self) -> None:
        """Nothing to compile or capture."""

    def __call__(self, canvas: Tensor, instruction: Tensor, proprio: Tensor, clock: StageClock) -> Tensor:
        model = self._model
        clock.start()
        latents = model.encode_canvas(canvas)
        clock.mark("vae")
        self._tapped.clear()
        t = torch.zeros(latents.shape[0], device=latents.device)
        model.dit(latents, t, model.build_context(instruction, proprio))  # video output unused
        clock.mark("backbone")
        actions = model.expert(list(self._tapped))
        clock.mark("expert")
        self._tapped.clear()
        return actions


class _OptimizedPass:
    """Early-exit stages, optionally compiled, optionally replayed as one CUDA graph."""

    def __init__(self, model: LightWAM, compile_mode: str | None, cuda_graphs: bool) -> None:
        self._model = model
        self._taps = tuple(model.cfg.adapter.layers)
        self._cuda_graphs = cuda_graphs
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_inputs: tuple[Tensor, Tensor, Tensor] | None = None
        self._graph_output: Tensor | None = None
        self._stages: tuple[Callable[..., Any], ...] = (model.encode_canvas, self._backbone, model.expert)
        if compile_mode is not None:
            self._stages = tuple(
                torch.compile(stage, mode=compile_mode, dynamic=False) for stage in self._stages
            )

    def _backbone(self, latents: Tensor, instruction: Tensor, proprio: Tensor) -> list[Tensor]:
        model = self._model
        t = torch.zeros(latents.shape[0], device=latents.device)
        return model.dit.tapped_states(latents, t, model.build_context(instruction, proprio), taps=self._taps)

    def _run_stages(
        self, canvas: Tensor, instruction: Tensor, proprio: Tensor, clock: StageClock | None
    ) -> Tensor:
        vae, backbone, expert = self._stages
        latents = vae(canvas)
        if clock is not None:
            clock.mark("vae")
        tapped = backbone(latents, instruction, proprio)
        if clock is not None:
            clock.mark("backbone")
        actions = expert(tapped)
        if clock is not None:
            clock.mark("expert")
        return actions

    def bind(self, canvas: Tensor, instruction: Tensor, proprio: Tensor) -> None:
        """The static buffers a captured graph reads (the runner refills them every call)."""
        self._graph_inputs = (canvas, instruction, proprio)

    def prepare(self) -> None:
        """With CUDA graphs: run the first passes (compilation, cuBLAS set-up) on a side stream,
        then capture the whole pass.  Without, compilation happens in the first warm-up pass."""
        if not self._cuda_graphs or self._graph is not None:  # captured once, replayed after
            return
        inputs = self._graph_inputs
        if inputs is None:
            raise RuntimeError("bind() the static input buffers before prepare()")
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._run_stages(*inputs, clock=None)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._graph_output = self._run_stages(*inputs, clock=None)
        self._graph = graph

    def __call__(self, canvas: Tensor, instruction: Tensor, proprio: Tensor, clock: StageClock) -> Tensor:
        clock.start()
        if self._graph is None:
            return self._run_stages(canvas, instruction, proprio, clock)
        self._graph.replay()
        clock.mark("model")
        assert self._graph_output is not None, "captured with the graph"
        return self._graph_output


# --------------------------------------------------------------------------------------------
# Runner
# --------------------------------------------------------------------------------------------


class PolicyRunner:
    """Runs Light-WAM for one embodiment; see the module docstring for the two model paths."""

    def __init__(
        self,
        model: LightWAM,
        spec: EmbodimentSpec,
        normalizer: Normalizer,
        instructions: InstructionSource,
        *,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        optimized: bool = True,
        compile: bool | str = False,
        cuda_graphs: bool = False,
        warmup: int = 3,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.spec = spec
        self.optimized = optimized
        self.warmup_iterations = _non_negative_int("warmup", warmup)
        self._frame_id = _action_frame(spec)
        compile_mode = _compile_mode(compile)
        _check_fit(model, spec, normalizer, instructions)
        if not optimized and (compile_mode or cuda_graphs):
            raise PolicyConfigError(
                "the reference path (optimized=False) runs eagerly: "
                "compile and cuda_graphs need optimized=True"
            )
        if cuda_graphs and self.device.type != "cuda":
            raise PolicyConfigError(f"cuda_graphs=True needs a CUDA device, got {self.device}")
        if cuda_graphs and compile_mode in ("default", "reduce-overhead", "max-autotune"):
            raise PolicyConfigError(
                f"compile mode {compile_mode!r} manages CUDA graphs itself; with cuda_graphs=True "
                f"use 'max-autotune-no-cudagraphs' (or cuda_graphs=False)"
            )

        self.model = _prepare_model(model, self.device, self.dtype, optimized)
        self.normalizer = normalizer
        self._instructions = instructions
        self._instruction_tensors: dict[str, Tensor] = {}
        canvas_shape = (1, 3, spec.canvas.height, spec.canvas.width)
        self._canvas = torch.zeros(canvas_shape, device=self.device, dtype=self.dtype)
        self._proprio = torch.zeros((1, spec.state_dim), device=self.device, dtype=self.dtype)
        text_shape = (1, model.cfg.dit.text_len, model.cfg.dit.text_dim)
        self._instruction = torch.zeros(text_shape, device=self.device, dtype=self.dtype)
        self._pass: _OptimizedPass | _ReferencePass
        if optimized:
            optimized_pass = _OptimizedPass(self.model, compile_mode, cuda_graphs)
            optimized_pass.bind(self._canvas, self._instruction, self._proprio)
            self._pass = optimized_pass
        else:
            self._pass = _ReferencePass(self.model)
        self._clock = StageClock(self.device)
        self._latencies: collections.deque[float] = collections.deque(maxlen=STATS_WINDOW)
        self._lock = threading.Lock()
        self._ready = False

    @classmethod
    def from_files(
        cls,
        checkpoint: str | Path,
        instruction_cache: str | Path,
        embodiment: str | Path | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype | None = None,
        compile: bool | str = False,
        cuda_graphs: bool = False,
        warmup: int = 3,
        *,
        optimized: bool = True,
    ) -> PolicyRunner:
        """Load a package checkpoint and instruction cache, check them, warm up, return ready.

        ``embodiment`` (a shipped name or a YAML path) defaults to the one recorded in the
        checkpoint; a different embodiment is refused (``CheckpointError``).
        """
        spec = load_embodiment(embodiment) if embodiment is not None else None
        # CheckpointError (a ValueError) refuses another embodiment before any weight is read.
        loaded = load_checkpoint(
            checkpoint, device="cpu", expect_embodiment=None if spec is None else spec.name
        )
        meta = loaded.meta
        spec = spec or load_embodiment(meta.embodiment)
        if meta.canvas is not None and meta.canvas != canvas_layout(spec):
            raise PolicyConfigError(
                f"{checkpoint}: the model was trained on canvas {meta.canvas}, but embodiment "
                f"{spec.name} ({spec.source}) now builds {canvas_layout(spec)}: run it with the "
                f"embodiment file it was trained with"
            )
        cache = InstructionCache.load(instruction_cache)
        dit = loaded.model.cfg.dit
        try:
            cache.check_compatible(meta.instruction_encoder, dit.text_len, dit.text_dim)
        except ValueError as error:
            raise PolicyConfigError(f"{instruction_cache}: {error}") from None
        try:
            normalizer = Normalizer.from_stats(
                meta.stats,
                spec.normalization.mode,
                spec.normalization.clamp,
                state_dim=spec.state_dim,
                action_dim=spec.action_dim,
                source=f"{checkpoint} stats",
            )
        except ValueError as error:
            raise PolicyConfigError(str(error)) from None
        runner = cls(
            loaded.model,
            spec,
            normalizer,
            cache,
            device=device,
            dtype=dtype,
            optimized=optimized,
            compile=compile,
            cuda_graphs=cuda_graphs,
            warmup=warmup,
        )
        runner.warmup()
        return runner

    # ---------------------------------------------------------------------------------- public
    @property
    def ready(self) -> bool:
        """True once ``warmup()`` has run: latencies from now on are representative."""
        return self._ready

    @property
    def tasks(self) -> list[str]:
        return list(self._instructions.tasks())

    def warmup(
        self, cancel: threading.Event | None = None, source_sizes: Mapping[str, tuple[int, int]] | None = None
    ) -> bool:
        """Compile/capture and run ``warmup_iterations`` passes on a neutral observation.

        The neutral images have the sizes that will arrive, so the passes build the canvas's
        resize tables the first real frame needs: ``source_sizes`` by camera role (a deployment's
        override), else ``camera_sizes(spec)``.  Returns True when ready; False, leaving the runner
        not ready, when ``cancel`` was set between two passes (a full model's warm-up on a CPU
        takes minutes: Ctrl-C must not wait).
        """
        tasks = self.tasks
        if not tasks:
            raise PolicyConfigError("the instruction cache holds no tasks")
        sizes = {**camera_sizes(self.spec), **(source_sizes or {})}
        images = {role: np.zeros((*size, 3), dtype=np.uint8) for role, size in sizes.items()}
        state = np.zeros(self.spec.state_dim)
        with self._lock, self._on_device(), torch.inference_mode():
            self._load_inputs(images, state, tasks[0])
            self._pass.prepare()
            for _ in range(self.warmup_iterations):
                if cancel is not None and cancel.is_set():
                    return False
                self._infer(images, state, tasks[0])
            self._latencies.clear()
            self._ready = True
        return True

    def predict(
        self, images: Mapping[str, np.ndarray], state: np.ndarray, instruction: str, stamp_ns: int = 0
    ) -> PolicyOutput:
        """One action chunk for uint8 HxWx3 RGB ``images`` keyed by camera role, the raw robot
        ``state`` (the embodiment's state layout) and a task present in the instruction cache,
        stamped ``stamp_ns`` (the observation's stamp).

        Raises PolicyInputError for unusable inputs (nothing runs) and PolicyOutputError (with
        the model's output attached) when the prediction holds non-finite values.
        """
        if not self._ready:
            raise RuntimeError("PolicyRunner is not warmed up: call warmup() before predict()")
        with self._lock, self._on_device(), torch.inference_mode():
            actions, normalized, timing, peak = self._infer(images, state, instruction)
            self._latencies.append(timing.total)
        try:
            chunk = embodiment_chunk(
                self.spec, actions, stamp_ns, instruction=instruction, frame_id=self._frame_id
            )
        except ChunkError as error:
            raise PolicyOutputError(
                f"invalid action chunk: {error}", actions, normalized, timing, peak
            ) from None
        return PolicyOutput(chunk=chunk, normalized=normalized, timing=timing, peak_memory_bytes=peak)

    def latency_stats(self) -> LatencyStats | None:
        """Statistics of the total latency since warm-up (or the last reset); None when empty."""
        samples = np.fromiter(self._latencies, dtype=np.float64)
        if samples.size == 0:
            return None
        return LatencyStats(
            count=int(samples.size),
            mean=float(samples.mean()),
            p50=float(np.percentile(samples, 50)),
            p90=float(np.percentile(samples, 90)),
            max=float(samples.max()),
        )

    def reset_stats(self) -> None:
        self._latencies.clear()

    # -------------------------------------------------------------------------------- internals
    def _on_device(self) -> contextlib.AbstractContextManager:
        """Streams, events and graphs belong to the current CUDA device: make it ours."""
        return torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()

    def _infer(
        self, images: Mapping[str, np.ndarray], state: np.ndarray, instruction: str
    ) -> tuple[np.ndarray, np.ndarray, StageTiming, int]:
        """(post-processed float32 actions, normalised output, timing, peak memory)."""
        cuda = self.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        start = time.perf_counter()
        self._load_inputs(images, state, instruction)
        preprocess = time.perf_counter() - start

        actions = self._pass(self._canvas, self._instruction, self._proprio, self._clock)
        stages = self._clock.durations()  # synchronises on a GPU

        post_start = time.perf_counter()
        normalized = actions[0].float().cpu().numpy()
        chunk = postprocess_chunk(self.normalizer.denormalize_action(normalized), self.spec)
        end = time.perf_counter()
        timing = StageTiming(
            preprocess=preprocess,
            vae=stages.get("vae"),
            backbone=stages.get("backbone"),
            expert=stages.get("expert"),
            model=sum(stages.values()),
            postprocess=end - post_start,
            total=end - start,
        )
        peak = int(torch.cuda.max_memory_allocated(self.device)) if cuda else 0
        return chunk.astype(np.float32), normalized, timing, peak

    def _load_inputs(self, images: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> None:
        """Validate everything first, then fill the static input buffers."""
        embedding = self._instruction_tensor(instruction)
        proprio = self.normalizer.normalize_state(self._check_state(state))
        if not isinstance(images, Mapping):
            raise PolicyInputError(
                f"images must be a mapping of camera role -> HxWx3 uint8 array, got {type(images).__name__}"
            )
        try:
            canvas = canvas_to_model_input(build_canvas(images, self.spec))
        except ValueError as error:
            raise PolicyInputError(str(error)) from None
        self._canvas[0].copy_(torch.from_numpy(canvas))
        self._proprio[0].copy_(torch.from_numpy(proprio))
        self._instruction.copy_(embedding)

    def _check_state(self, state: np.ndarray) -> np.ndarray:
        array = np.asarray(state)
        if array.dtype == bool or not (
            np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
        ):
            raise PolicyInputError(f"state must hold real numbers, got dtype {array.dtype}")
        expected = self.spec.state_dim
        if array.shape != (expected,):
            raise PolicyInputError(
                f"{self.spec.name}: state must have shape ({expected},) "
                f"[{', '.join(self.spec.state.dim_names)}], got {array.shape}"
            )
        if not np.all(np.isfinite(array)):
            bad = [self.spec.state.dim_names[i] for i in np.nonzero(~np.isfinite(array))[0]]
            raise PolicyInputError(f"state has non-finite values in {bad}")
        return array.astype(np.float64)

    def _instruction_tensor(self, instruction: str) -> Tensor:
        """The task's embedding on the device, uploaded once per task (padded tokens zeroed)."""
        if not isinstance(instruction, str) or not instruction:
            raise PolicyInputError(f"instruction must be a non-empty string, got {instruction!r}")
        if instruction in self._instruction_tensors:
            return self._instruction_tensors[instruction]
        if instruction not in self._instructions:
            known = self.tasks
            shown = ", ".join(repr(task) for task in known[:5]) + (" ..." if len(known) > 5 else "")
            raise PolicyInputError(
                f"instruction {instruction!r} is not in the instruction cache "
                f"({len(known)} tasks: {shown}); embed it first"
            )
        embedding, _mask = self._instructions.get(instruction)
        tensor = embedding[None].to(self.device, self.dtype)
        self._instruction_tensors[instruction] = tensor
        return tensor


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _prepare_model(model: LightWAM, device: torch.device, dtype: torch.dtype, optimized: bool) -> LightWAM:
    """Eval mode, no gradients, parameters on ``device`` in ``dtype``.

    The optimised path merges LoRA where the model lies (a checkpoint is loaded on the CPU, so the
    merge costs no GPU memory) and then drops what can never run: the merged LoRA factors and
    the blocks after the last tapped one.  Buffers (latent statistics, step embeddings) keep
    their float32 precision, as ``load_checkpoint`` leaves them.
    """
    model.eval().requires_grad_(False)
    if optimized:
        set_lora_merged(model, True)
        _release_unused(model)
    else:
        set_lora_merged(model, False)
    with torch.no_grad():  # cast before moving: a float32 copy never lands on the GPU
        for param in model.parameters():
            param.data = param.data.to(dtype)
    return model.to(device)


def _release_unused(model: LightWAM) -> None:
    """Free weights the early-exit, merged pass never reads (about 0.65 GB in bf16 for 1.3B)."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRA) and child.merged:
                setattr(module, name, None)  # the DiT then applies the (merged) base layer alone
    del model.dit.blocks[max(model.cfg.adapter.layers) + 1 :]


def _check_fit(
    model: LightWAM, spec: EmbodimentSpec, normalizer: Normalizer, instructions: InstructionSource
) -> None:
    cfg = model.cfg
    problems = []
    for what, model_value, spec_value in (
        ("state (proprio) dimension", cfg.proprio_dim, spec.state_dim),
        ("action dimension", cfg.action_dim, spec.action_dim),
        ("chunk horizon", cfg.horizon, spec.chunk.length),
    ):
        if model_value != spec_value:
            problems.append(f"{what}: model {model_value}, embodiment {spec_value}")
    if (normalizer.state_dim, normalizer.action_dim) != (spec.state_dim, spec.action_dim):
        problems.append(
            f"statistics dimensions (state {normalizer.state_dim}, action "
            f"{normalizer.action_dim}) differ from the embodiment's "
            f"({spec.state_dim}, {spec.action_dim})"
        )
    if normalizer.mode != spec.normalization.mode:
        problems.append(
            f"normalisation mode: statistics {normalizer.mode!r}, embodiment {spec.normalization.mode!r}"
        )
    text = (cfg.dit.text_len, cfg.dit.text_dim)
    if (instructions.text_len, instructions.text_dim) != text:
        problems.append(
            f"instruction embeddings are {instructions.text_len}x"
            f"{instructions.text_dim}, the model expects {text[0]}x{text[1]}"
        )
    if problems:
        raise PolicyConfigError(
            f"model {cfg.name!r} does not fit embodiment {spec.name!r} "
            f"({spec.source}): " + "; ".join(problems)
        )


def _compile_mode(compile: bool | str) -> str | None:
    if compile is False or compile is None:
        return None
    if compile is True:
        return DEFAULT_COMPILE_MODE
    if compile not in COMPILE_MODES:
        raise PolicyConfigError(f"compile must be a bool or one of {COMPILE_MODES}, got {compile!r}")
    return compile


def _non_negative_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PolicyConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _action_frame(spec: EmbodimentSpec) -> str:
    """Frame of Cartesian (delta-EEF) actions: the acting arm's base frame; empty for joints."""
    if spec.action.mode != "delta_eef":
        return ""
    arms = {field.arm_name for field in spec.action.layout.fields}
    return (spec.arm(arms.pop()).base_frame or "") if len(arms) == 1 else ""
