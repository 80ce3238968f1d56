"""Run checkpoints for exact resume: model, optimiser, schedule, EMA, RNG and data position.

``<out>/checkpoints/step_NNNNNNN/`` holds ``tensors.safetensors`` (model state as ``model.*``,
optimiser moments as ``optim.<param>.<name>``, EMA as ``ema.<name>``, RNG states as ``rng.*``)
and ``state.json`` (step, optimiser groups, scheduler state).  No pickle.  A checkpoint is
written into a temporary folder and renamed into place, so a crash never leaves half of one;
only the newest ``keep_last`` are kept.  The data position is the step (see ``sampler``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

CHECKPOINTS = "checkpoints"
_PREFIX = "step_"
_STATE = "state.json"
_TENSORS = "tensors.safetensors"


def checkpoint_dirs(out_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(out_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"{_PREFIX}*") if (p / _STATE).is_file())


def save_run_state(
    out_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema: dict[str, Tensor] | None,
    keep_last: int,
) -> Path:
    root = Path(out_dir) / CHECKPOINTS
    final = root / f"{_PREFIX}{step:07d}"
    temp = root / f".partial-{final.name}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    optim_state = optimizer.state_dict()
    for index, values in optim_state["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    for name, value in (ema or {}).items():
        tensors[f"ema.{name}"] = value.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, rng_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = rng_state
    save_file(tensors, str(temp / _TENSORS))
    state = {"step": step, "param_groups": optim_state["param_groups"], "scheduler": scheduler.state_dict()}
    (temp / _STATE).write_text(json.dumps(state))
    if final.exists():
        shutil.rmtree(final)
    os.replace(temp, final)
    for old in checkpoint_dirs(out_dir)[:-keep_last]:
        shutil.rmtree(old)
    return final


def load_run_state(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    ema: dict[str, Tensor] | None,
) -> int:
    """Restore everything saved by ``save_run_state``; returns the step to continue from."""
    tensors = load_file(str(Path(folder) / _TENSORS))
    state = json.loads((Path(folder) / _STATE).read_text())
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True
    )
    moments: dict[int, dict[str, Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            moments.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": moments, "param_groups": state["param_groups"]})
    scheduler.load_state_dict(state["scheduler"])
    if ema is not None:
        for name in ema:
            ema[name].copy_(tensors[f"ema.{name}"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    return int(state["step"])
