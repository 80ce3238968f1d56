"""The per-grid table cache builds each table once per grid and device, in eager mode."""

from __future__ import annotations

import torch

from lightwam_ros.model.grid_tables import Grid, GridTables


def test_a_table_is_built_once_per_grid_and_again_for_a_new_grid() -> None:
    built: list[Grid] = []

    def build(grid: Grid, device: torch.device) -> torch.Tensor:
        built.append(grid)
        return torch.zeros(grid, device=device)

    tables = GridTables(build)
    cpu = torch.device("cpu")
    first = tables((1, 2, 3), cpu)
    assert tables((1, 2, 3), cpu) is first
    assert tables((2, 2, 3), cpu).shape == (2, 2, 3)
    assert built == [(1, 2, 3), (2, 2, 3)]
