"""Where and in which precision the policy runs: "auto" device and dtype rules, GPU timing.

The rules are the deployment defaults: the GPU when there is one, bfloat16 weights there (the
released checkpoint's precision), float32 on a CPU (bfloat16 matmuls are slow on most CPUs).
"""

from __future__ import annotations

import itertools
import time

import torch

_DTYPE_NAMES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else is checked to exist."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"unknown device {device!r}: {error}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r}: only cpu and cuda are supported")
    return resolved


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """None -> bfloat16 on a GPU, float32 on a CPU; names such as "bf16" or "float32" accepted."""
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif isinstance(dtype, str) and dtype.lower() in _DTYPE_NAMES:
        resolved = _DTYPE_NAMES[dtype.lower()]
    else:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPE_NAMES)}")
    if resolved not in (torch.bfloat16, torch.float16, torch.float32):
        raise ValueError(f"dtype {resolved} is not a floating-point inference dtype")
    return resolved


class StageClock:
    """Wall-clock marks between pipeline stages that are honest on a GPU.

    On CUDA each mark records an event on the current stream, so marks cost no synchronisation
    and ``durations()`` (which synchronises once) reports the GPU time between them; on a CPU the
    marks are ``perf_counter`` readings (the work is synchronous there).
    """

    def __init__(self, device: torch.device) -> None:
        self._cuda = device.type == "cuda"
        self._names: list[str] = []
        self._marks: list = []

    def start(self) -> None:
        self._names.clear()
        self._marks = [self._now()]

    def mark(self, stage: str) -> None:
        """End of ``stage`` (which began at the previous mark)."""
        self._names.append(stage)
        self._marks.append(self._now())

    def durations(self) -> dict[str, float]:
        """Seconds per stage, in mark order."""
        if self._cuda:
            self._marks[-1].synchronize()
            spans = [a.elapsed_time(b) / 1000.0 for a, b in itertools.pairwise(self._marks)]
        else:
            spans = [b - a for a, b in itertools.pairwise(self._marks)]
        return dict(zip(self._names, spans, strict=True))

    def _now(self):
        if self._cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()
