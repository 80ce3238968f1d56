"""The absolute position table: without it the backbone cannot tell places apart; with it, the
same place of a frame gets the same position at any resolution."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lightwam_ros.model.config import DiTConfig, make_config
from lightwam_ros.model.dit import WanDiT
from lightwam_ros.model.grid_positions import grid_position_embedding

CFG = make_config("tiny", action_dim=7, proprio_dim=8)


def tapped_on_a_uniform_frame(absolute_positions: bool) -> torch.Tensor:
    """Last tapped token states [L, dim] for a frame whose every latent pixel is the same."""
    torch.manual_seed(0)
    dit = WanDiT(dataclasses.replace(CFG.dit, absolute_positions=absolute_positions)).eval()
    latents = torch.full((1, CFG.dit.in_channels, 1, 6, 8), 0.3)
    context = torch.randn(1, 4, CFG.dit.text_dim)
    with torch.no_grad():
        return dit.tapped_states(latents, torch.zeros(1), context, taps=(3,))[0][0]


def test_without_absolute_positions_every_token_of_a_uniform_frame_is_the_same():
    # RoPE only says how far apart two tokens are: identical tokens stay identical, wherever they are.
    tokens = tapped_on_a_uniform_frame(absolute_positions=False)
    torch.testing.assert_close(tokens, tokens[:1].expand_as(tokens), rtol=0, atol=1e-5)


def test_with_absolute_positions_the_tokens_of_a_uniform_frame_tell_their_place():
    tokens = tapped_on_a_uniform_frame(absolute_positions=True)
    distances = torch.cdist(tokens, tokens)
    off_diagonal = distances[~torch.eye(len(tokens), dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3 * distances.max()  # no two places alike


def test_the_same_place_gets_the_same_position_at_any_resolution():
    # The video loss pools latents 2x: a place keeps its position at the coarser grid.
    coarse = grid_position_embedding((1, 3, 5), 32, torch.device("cpu")).view(3, 5, 32)
    fine = grid_position_embedding((2, 9, 15), 32, torch.device("cpu")).view(2, 9, 15, 32)
    for row, col in [(0, 0), (1, 2), (2, 4)]:  # token centres at the same fractions of the frame
        torch.testing.assert_close(fine[1, 3 * row + 1, 3 * col + 1], coarse[row, col])
    assert not torch.allclose(coarse[0, 0], coarse[2, 4])


def test_absolute_positions_need_a_width_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        DiTConfig(dim=42, ffn_dim=64, num_layers=1, num_heads=3, absolute_positions=True)
