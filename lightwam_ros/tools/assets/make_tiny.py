"""lightwam-make-tiny: a complete random-weight Light-WAM package that runs anywhere, offline.

``lightwam-make-tiny --embodiment libero_franka --out DIR`` writes

- ``DIR/model.safetensors``: a seeded random-init checkpoint (tiny preset by default) with the
  package metadata (config, embodiment, statistics, instruction encoder);
- ``DIR/dataset_stats.json``: plausible statistics for the embodiment (see ``plausible_stats``);
- ``DIR/instructions.safetensors``: a few tasks embedded by a seeded, deterministic STAND-IN
  encoder (encoder id ``random-standin``).  It is NOT umT5: the vectors carry no meaning; they only
  have the right shape, padding and per-task identity, so the whole pipeline (runner, nodes, demo,
  tests) runs on any machine with no downloads.  Such a package produces arbitrary motions: never
  connect it to real hardware.

The random model differs from a freshly constructed ``LightWAM`` in one way: the zero-initialised
trained additions (LoRA up-projections, adapter up-projections) get small seeded random values.
Zero, they would make LoRA merging and the adapters exact no-ops, and a comparison of the
optimised (merged) and reference (unmerged) paths would prove nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightwam_ros.model.checkpoint import CheckpointMetadata, save_checkpoint
from lightwam_ros.model.config import PRESETS, LightWAMConfig, make_config
from lightwam_ros.model.instructions import InstructionCache, prompt_for
from lightwam_ros.model.lightwam import LightWAM
from lightwam_ros.model.lora import LoRA
from lightwam_ros.policy.canvas import canvas_layout
from lightwam_ros.policy.embodiment import EmbodimentSpec, VectorField, load_embodiment
from lightwam_ros.policy.kinematics import arm_chain
from lightwam_ros.train.stats import summary

STANDIN_ENCODER_ID = "random-standin"
ADDITION_INIT_STD = 0.01  # std of the LoRA / adapter up-projections of a random model
STATS_SAMPLES = 1024
# LIBERO's recorded delta actions saturate at 0.9375 of the controller's range.
DELTA_ACTION_EXTENT = 0.9375
# Arm joints' statistics span this central fraction of their limits: the random model's output
# then moves a joint by a few hundredths of a radian per chunk step, which the executor's
# per-step bound accepts even at 50 Hz (with the full range a tiny aloha_sim chunk jumped 0.154
# rad between 20 ms steps and was refused).
ARM_DRAW_FRACTION = 0.25
GENERIC_TASKS = ("pick up the object", "put the object down", "push the button")
CHECKPOINT_NAME = "model.safetensors"
STATS_NAME = "dataset_stats.json"
INSTRUCTIONS_NAME = "instructions.safetensors"


@dataclass(frozen=True)
class TinyPackage:
    checkpoint: Path
    stats: Path
    instructions: Path
    tasks: tuple[str, ...]
    model_id: str


# --------------------------------------------------------------------------------------------
# Random model
# --------------------------------------------------------------------------------------------


def random_model(cfg: LightWAMConfig, seed: int = 0) -> LightWAM:
    """A float32 CPU LightWAM with seeded random weights; the global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LightWAM(cfg)
        with torch.no_grad():
            for up in _zero_initialised_additions(model):
                up.normal_(0.0, ADDITION_INIT_STD)
    return model.eval()


def _zero_initialised_additions(model: LightWAM) -> list[torch.Tensor]:
    tensors = [m.up_proj.weight for m in model.modules() if isinstance(m, LoRA)]
    for adapter in model.dit.wam_adapters.values():
        tensors += adapter.get_submodule("up_proj").parameters()  # its weight and bias
    return tensors


# --------------------------------------------------------------------------------------------
# Plausible statistics
# --------------------------------------------------------------------------------------------


def plausible_stats(
    spec: EmbodimentSpec, seed: int = 0, samples: int = STATS_SAMPLES
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``dataset_stats.json`` content computed from plausible samples of every vector field.

    Arm joints are drawn uniformly within the central ARM_DRAW_FRACTION of their limits
    (grippers between open and closed); an
    end-effector pose is the forward kinematics of such joint draws; a normalised gripper value is
    uniform between its open and close commands; delta end-effector actions are uniform within
    0.9375 of the controller's bound (LIBERO's recorded extremes); a delta-EEF gripper command is
    uniform over the model values that post-process onto the controller's range.
    """
    rng = np.random.default_rng(seed)
    joints = _joint_samples(spec, rng, samples)
    result = {}
    for section, fields in (("state", spec.state.fields), ("action", spec.action.layout.fields)):
        values = np.concatenate(
            [_field_samples(spec, field, joints, rng, samples) for field in fields], axis=1
        )
        result[section] = {"default": summary(values)}
    return result


def _joint_samples(spec: EmbodimentSpec, rng: np.random.Generator, count: int) -> dict[str, np.ndarray]:
    """One uniform draw per joint, shared by all fields that use it: arm joints within the
    central ARM_DRAW_FRACTION of their limits, grippers between open and closed."""
    draws = {}
    for arm in spec.arms:
        for name in arm.joints:
            lower, upper = spec.joint_limit(name)
            middle, half = (lower + upper) / 2, ARM_DRAW_FRACTION * (upper - lower) / 2
            draws[name] = rng.uniform(middle - half, middle + half, count)
        for name in arm.gripper.joints if arm.gripper else ():
            draws[name] = rng.uniform(*spec.joint_limit(name), count)
    return draws


def _field_samples(
    spec: EmbodimentSpec,
    field: VectorField,
    joints: dict[str, np.ndarray],
    rng: np.random.Generator,
    count: int,
) -> np.ndarray:
    kind = field.kind
    # The embodiment parser guarantees each kind's arm, gripper, delta scaling and post-processing.
    if kind == "joint_positions":
        return np.stack(
            [joints[name] * scale for name, scale in zip(field.joints, field.scale, strict=True)], axis=1
        )
    if kind == "gripper_normalized":
        assert field.arm is not None
        gripper = spec.arm(field.arm).gripper
        assert gripper is not None
        ends = [gripper.command_open, gripper.command_close]
        return rng.uniform(min(ends), max(ends), (count, 1))
    if kind in ("eef_position", "eef_axis_angle"):
        assert field.arm is not None
        poses = _eef_poses(spec, field.arm, joints)
        return poses[:, :3] if kind == "eef_position" else poses[:, 3:]
    assert spec.action.delta_eef is not None
    bound = spec.action.delta_eef.bound
    if kind in ("eef_delta_position", "eef_delta_axis_angle"):
        extent = DELTA_ACTION_EXTENT * bound
        return rng.uniform(-extent, extent, (count, field.size))
    # gripper_command: invert the post-processing y = +-(scale * g + offset) at y = -bound, +bound
    post = spec.action.gripper_postprocess
    assert post is not None
    ends = [((-y if post.negate else y) - post.offset) / post.scale for y in (-bound, bound)]
    return rng.uniform(min(ends), max(ends), (count, field.size))


def _eef_poses(spec: EmbodimentSpec, arm_name: str, joints: dict[str, np.ndarray]) -> np.ndarray:
    """[N, 6] position + axis-angle of the arm's end effector over the joint draws."""
    arm = spec.arm(arm_name)
    try:
        chain = arm_chain(arm)
    except ValueError as error:
        raise ValueError(f"plausible end-effector statistics need the arm's kinematics: {error}") from None
    q = np.stack([joints[name] for name in arm.joints], axis=1)
    poses = [chain.forward(row) for row in q]
    return np.array([np.concatenate([pose.position, pose.axis_angle]) for pose in poses])


# --------------------------------------------------------------------------------------------
# Stand-in instruction encoder
# --------------------------------------------------------------------------------------------


def standin_embedding(task: str, text_len: int, text_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic pseudo-embedding of ``prompt_for(task)``: one unit-normal vector per word
    (plus an end token), seeded by the prompt's sha256, padded with zeros.  NOT a text encoder."""
    prompt = prompt_for(task)
    seed = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "little")
    tokens = min(text_len, len(prompt.split()) + 1)
    embedding = torch.zeros(text_len, text_dim)
    embedding[:tokens] = torch.from_numpy(
        np.random.default_rng(seed).standard_normal((tokens, text_dim)).astype(np.float32)
    )
    mask = torch.arange(text_len) < tokens
    return embedding, mask


def standin_cache(tasks: Sequence[str], text_len: int, text_dim: int) -> InstructionCache:
    cache = InstructionCache(STANDIN_ENCODER_ID, text_len, text_dim)
    for task in tasks:
        cache.add(task, *standin_embedding(task, text_len, text_dim))
    return cache


def demo_tasks(spec: EmbodimentSpec) -> tuple[str, ...]:
    """The instructions a tiny package knows: the embodiment's tasks, else generic ones."""
    return spec.tasks or GENERIC_TASKS


# --------------------------------------------------------------------------------------------
# Package
# --------------------------------------------------------------------------------------------


def make_tiny_package(
    embodiment: str | Path, out_dir: str | Path, seed: int = 0, preset: str = "tiny"
) -> TinyPackage:
    """Write checkpoint, statistics and instruction cache for ``embodiment`` into ``out_dir``."""
    spec = load_embodiment(embodiment)
    cfg = make_config(
        preset, action_dim=spec.action_dim, proprio_dim=spec.state_dim, horizon=spec.chunk.length
    )
    stats = plausible_stats(spec, seed)
    tasks = demo_tasks(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    package = TinyPackage(
        checkpoint=out / CHECKPOINT_NAME,
        stats=out / STATS_NAME,
        instructions=out / INSTRUCTIONS_NAME,
        tasks=tasks,
        model_id="",
    )
    meta = CheckpointMetadata(
        config=cfg,
        embodiment=spec.name,
        stats=stats,
        instruction_encoder=STANDIN_ENCODER_ID,
        source=f"random-init (lightwam-make-tiny, seed {seed})",
        canvas=canvas_layout(spec),
    )
    model_id = save_checkpoint(package.checkpoint, random_model(cfg, seed), meta)
    package.stats.write_text(json.dumps(stats, indent=2) + "\n")
    standin_cache(tasks, cfg.dit.text_len, cfg.dit.text_dim).save(package.instructions)
    return TinyPackage(**{**package.__dict__, "model_id": model_id})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lightwam-make-tiny",
        description="Write a random-weight Light-WAM package (checkpoint, dataset_stats.json, "
        "stand-in instruction cache) that runs offline; for tests and demos only.",
    )
    parser.add_argument(
        "--embodiment",
        default="libero_franka",
        help="shipped embodiment name or YAML path (default: libero_franka)",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=sorted(PRESETS),
        help="model size (default: tiny; wan2.1-1.3b writes ~7.7 GB)",
    )
    args = parser.parse_args(argv)
    try:
        package = make_tiny_package(args.embodiment, args.out, seed=args.seed, preset=args.preset)
    except (ValueError, FileNotFoundError) as error:
        print(f"lightwam-make-tiny: {error}", file=sys.stderr)
        return 2
    print(f"checkpoint   {package.checkpoint} ({package.model_id})")
    print(f"statistics   {package.stats}")
    print(
        f"instructions {package.instructions} (stand-in encoder {STANDIN_ENCODER_ID!r}, "
        f"tasks: {', '.join(package.tasks)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
