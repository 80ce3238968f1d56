"""lightwam-vision-check: does a policy look at the scene, or only at the robot's state?

    lightwam-vision-check --checkpoint M --instructions I [--scenes 10] [--first-seed 0]

Every ALOHA transfer-cube episode starts from the same joint state; only the cube's place differs,
and only the cameras show it. So across scenes, the spread of the policy's first chunk must come
from the image. For each scene (episode seed) this renders the first frame, predicts the first
chunk, and compares the right arm's motion at the chunk's last executed step (relative to the start
state) with the scripted demonstration's for the same scene:
- ``correlation``: Pearson correlation, over scenes and right-arm joints, of the scene-to-scene
  variation (each joint's mean across scenes removed) of prediction and demonstration;
- ``spread_ratio``: the predictions' spread across scenes over the demonstrations' (root of the
  summed per-joint variances). A policy that ignores the image shows about 0 for both.
Runs without ROS (simulator + policy runner); writes ``vision_check.json`` when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.policy.runner import PolicyRunner
from lightwam_ros.sim.aloha import AlohaSim
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.sim.scripted_policy import ScriptedPolicy

TASK = SimTask.parse("aloha:transfer_cube")
ARM = "right"  # the arm whose motion depends on where the cube is
NO_SPREAD = 1e-9  # rad


@dataclass(frozen=True)
class SceneMotion:
    """One scene: the predicted and the demonstrated right-arm motion from the start state."""

    seed: int
    predicted: np.ndarray
    demonstrated: np.ndarray
    start_state: np.ndarray


def vision_metrics(predicted: np.ndarray, demonstrated: np.ndarray) -> dict[str, float]:
    """Correlation and spread ratio of the scene-to-scene variation ([scenes, joints] each)."""
    pred = predicted - predicted.mean(axis=0)
    demo = demonstrated - demonstrated.mean(axis=0)
    demo_spread = float(np.sqrt((demo**2).sum(axis=1).mean()))
    pred_spread = float(np.sqrt((pred**2).sum(axis=1).mean()))
    # Below NO_SPREAD the variation is rounding residue, and its correlation would be noise.
    denominator = float(np.linalg.norm(pred) * np.linalg.norm(demo))
    constant = min(pred_spread, demo_spread) < NO_SPREAD
    return {
        "correlation": 0.0 if constant else float((pred * demo).sum() / denominator),
        "spread_ratio": pred_spread / demo_spread if demo_spread >= NO_SPREAD else float("nan"),
        "predicted_spread": pred_spread,
        "demonstrated_spread": demo_spread,
    }


def scene_motions(
    runner: PolicyRunner,
    seeds: Sequence[int],
    step: int | None = None,
    camera_size: tuple[int, int] | None = None,
) -> list[SceneMotion]:
    """Predicted and demonstrated right-arm motion at chunk step ``step`` (default: the last
    executed one) for each scene, in the embodiment's action units."""
    spec = runner.spec
    step = spec.chunk.execute_steps - 1 if step is None else step
    if not 0 <= step < spec.chunk.length:
        raise ValueError(f"step must be in [0, {spec.chunk.length}), got {step}")
    arm = _arm_columns(spec, ARM)
    sim = TASK.build(camera_size)
    assert isinstance(sim, AlohaSim), f"{TASK} builds an ALOHA simulator"
    motions = []
    try:
        scripted = ScriptedPolicy(sim, spec)
        for seed in seeds:
            state = sim.reset(seed)
            scripted.start(state)
            start = scripted.state_vector(state)
            (demonstrated,) = scripted.actions(state, [step])
            output = runner.predict(sim.render(), start, TASK.instruction())
            motions.append(
                SceneMotion(
                    seed, output.chunk.actions[step, arm] - start[arm], demonstrated[arm] - start[arm], start
                )
            )
    finally:
        sim.close()
    return motions


def _arm_columns(spec: EmbodimentSpec, arm: str) -> list[int]:
    """Action columns of ``arm``'s joint positions."""
    layout = spec.action.layout
    columns = [
        i
        for field in layout.fields
        if field.kind == "joint_positions" and set(field.joints) <= set(spec.arm(arm).joints)
        for i in range(layout.dim)[layout.field_slice(field.name)]
    ]
    if not columns:
        raise ValueError(f"{spec.name}: no joint-position actions of arm {arm!r}")
    return columns


def report(motions: list[SceneMotion]) -> dict:
    """The metrics, and how far the scenes' start states differ (they must not)."""
    starts = np.array([m.start_state for m in motions])
    return {
        "task": str(TASK),
        "arm": ARM,
        "seeds": [m.seed for m in motions],
        "start_state_difference": float(np.abs(starts - starts[0]).max()),
        **vision_metrics(
            np.array([m.predicted for m in motions]), np.array([m.demonstrated for m in motions])
        ),
        "predicted": [m.predicted.tolist() for m in motions],
        "demonstrated": [m.demonstrated.tolist() for m in motions],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightwam-vision-check", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="package checkpoint (aloha_sim)")
    parser.add_argument("--instructions", required=True, help="its instruction cache")
    parser.add_argument("--scenes", type=int, default=10, help="how many scenes (seeds)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument(
        "--step", type=int, default=None, help="chunk step compared (default: the last executed one)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="folder for vision_check.json")
    args = parser.parse_args(argv)
    if args.scenes < 2 or args.first_seed < 0:
        parser.error("--scenes must be >= 2 and --first-seed >= 0")
    try:
        runner = PolicyRunner.from_files(args.checkpoint, args.instructions, device=args.device, warmup=1)
        if runner.spec.name != TASK.embodiment:
            raise ValueError(f"the checkpoint is for {runner.spec.name}, the scenes are {TASK.embodiment}'s")
        result = report(
            scene_motions(runner, range(args.first_seed, args.first_seed + args.scenes), args.step)
        )
    except (ValueError, OSError) as error:
        print(f"lightwam-vision-check: {error}", file=sys.stderr)
        return 1
    print(
        f"{len(result['seeds'])} scenes from one start state (differing by at most "
        f"{result['start_state_difference']:.2g}): right-arm motion across scenes, predicted vs "
        f"demonstrated: correlation {result['correlation']:.3f}, spread ratio "
        f"{result['spread_ratio']:.3f} ({result['predicted_spread']:.4f} vs "
        f"{result['demonstrated_spread']:.4f} rad)"
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "vision_check.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
