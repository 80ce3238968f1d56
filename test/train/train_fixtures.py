"""Helpers for the trainer tests: a one-arm test embodiment with a 32x32 canvas, generated
episodes whose actions depend on the image and the state, and a stand-in instruction cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from lightwam_ros.model.instructions import InstructionCache

TASK = "touch the square"
EMBODIMENT = """
schema_version: 1
name: test_arm
arms:
  - name: arm
    joints: [j1, j2]
    joint_limits: {j1: [-3.0, 3.0], j2: [-3.0, 3.0]}
    gripper: {joints: [finger], open_position: 0.04, closed_position: 0.0,
              command_open: 1.0, command_close: 0.0}
cameras:
  - role: front
    source_size: [24, 24]
    rotation_deg: 0
    center_crop: false
    placement: {top: 0, left: 0, height: 32, width: 32}
canvas: {height: 32, width: 32}
state:
  - {name: arm, kind: joint_positions, size: 2, joints: [j1, j2]}
  - {name: gripper, kind: gripper_normalized, size: 1, arm: arm}
action:
  mode: absolute_joints
  fields:
    - {name: arm, kind: joint_positions, size: 2, joints: [j1, j2]}
    - {name: gripper, kind: gripper_normalized, size: 1, arm: arm}
normalization: {mode: z_score, clamp: 5.0}
chunk: {length: 16, execute_steps: 8}
policy_rate_hz: 10.0
"""
HORIZON, STATE_DIM = 16, 3


def chunks_from_steps(actions: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, A) per-step actions -> (T, H, A) chunks, (T, H) mask, by the alignment convention."""
    frames = len(actions)
    index = np.arange(frames)[:, None] + np.arange(horizon)[None, :]
    mask = index < frames
    return np.where(mask[..., None], actions[np.minimum(index, frames - 1)], 0), mask


def make_episode(
    path: Path, seed: int, frames: int = 24, embodiment: str = "test_arm", instruction: str = TASK
) -> Path:
    """An episode where a bright square's position (per episode) and the state set the actions:
    the arm moves from its state towards the square's position."""
    rng = np.random.default_rng(seed)
    target = rng.uniform(-1, 1, 2)
    images = np.full((frames, 24, 24, 3), 20, np.uint8)
    row, col = (6 + 6 * (target + 1)).astype(int)
    images[:, row - 3 : row + 3, col - 3 : col + 3] = 230
    t = np.arange(frames)[:, None] / frames
    state = np.concatenate(
        [rng.uniform(-1, 1, 2) * (1 - t) + target * t, np.clip(t * 1.5, 0, 1)], axis=1
    ).astype(np.float32)
    actions = np.concatenate([state[1:], state[-1:]])
    chunks, mask = chunks_from_steps(actions, HORIZON)
    save_file(
        {
            "images.front": images,
            "state": state,
            "action_chunks": chunks.astype(np.float32),
            "action_mask": mask,
            "timestamps": np.arange(frames) / 10.0,
        },
        str(path),
        metadata={
            "embodiment": embodiment,
            "instruction": instruction,
            "policy_rate_hz": "10.0",
            "action_source": "commands",
        },
    )
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> dict[str, Path]:
    """Embodiment file, instruction cache and a folder of 3 training + 1 held-out episodes."""
    embodiment = tmp_path / "test_arm.yaml"
    embodiment.write_text(EMBODIMENT)
    instructions = tmp_path / "instructions.safetensors"
    cache = InstructionCache("test-standin", 128, 32)
    cache.add(TASK, torch.randn(128, 32, generator=torch.Generator().manual_seed(0)), torch.arange(128) < 6)
    cache.save(instructions)
    episodes = tmp_path / "episodes"
    episodes.mkdir()
    for i in range(3):
        make_episode(episodes / f"episode_{i:04d}.safetensors", seed=i)
    held_out = make_episode(tmp_path / "held_out.safetensors", seed=9)
    return {
        "root": tmp_path,
        "embodiment": embodiment,
        "instructions": instructions,
        "episodes": episodes,
        "held_out": held_out,
    }


def base_config(ws: dict[str, Path], **sections) -> dict:
    """A tiny-preset CPU config over the workspace; ``sections`` update its sections."""
    config = {
        "data": {
            "episodes": [str(ws["episodes"])],
            "embodiment": str(ws["embodiment"]),
            "instructions": str(ws["instructions"]),
            "video_frames": 5,
            "frame_stride": 4,
        },
        "model": {"preset": "tiny", "trainable": "full"},
        "objective": {"video_weight": 1.0},
        "optim": {"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2},
        "run": {
            "out_dir": str(ws["root"] / "run"),
            "device": "cpu",
            "progress": False,
            "tensorboard": False,
            "log_every": 1,
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    return config
