"""A per-grid cache for tables that depend only on the token grid (RoPE, absolute positions).

Eager inference runs the same grid every step, so each table is built once per (grid, device).
Deliberately not an nn.Module with buffers: ``model.to(torch.bfloat16)`` would otherwise round the
tables. Under torch.compile the table is built inline (pure tensor ops on constants), which keeps
the traced graph free of Python-side cache mutation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

import torch

Grid = tuple[int, int, int]
T = TypeVar("T")


class GridTables(Generic[T]):
    """``tables(grid, device)`` -> ``build(grid, device)``, built once per (grid, device) outside compile."""

    def __init__(self, build: Callable[[Grid, torch.device], T]) -> None:
        self._build = build
        self._cache: dict[tuple[tuple[int, ...], torch.device], T] = {}

    def __call__(self, grid: Grid, device: torch.device) -> T:
        if torch.compiler.is_compiling():
            return self._build(grid, device)
        key = (tuple(grid), torch.device(device))
        if key not in self._cache:
            self._cache[key] = self._build(grid, device)
        return self._cache[key]
