"""lightwam-offline-check: run the policy on a recorded bag and report how it compares.

    lightwam-offline-check BAG --checkpoint model.safetensors \\
        --instructions instructions.safetensors
        [--embodiment NAME] [--params config/policy_<embodiment>.yaml] [--out REPORT_DIR]

No ROS graph is involved: the bag file is read directly.  The policy runs at the recorded
observation times - the stamps of the chunks the live policy published, or, in a bag without
chunks, the scene-camera frames at the policy rate - on the observation the live node would have
assembled (``bag_observations``).  The report (``offline_report``) compares the chunks with what
the robot did (its recorded joint states, for absolute-joint embodiments) and with the live
chunks, and lists the bag's problems (gaps, missing topics, stamps going backwards, damage).

A bag that cannot be used fully still gets a report of what could be read, with its problems;
the exit status is 0 when the policy ran on at least one observation, 1 when it could run on
none, 2 for bad arguments or model files.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

from lightwam_ros.bags.metadata import METADATA_EMBODIMENT
from lightwam_ros.bags.reader import BagError, BagProblem, BagReader
from lightwam_ros.policy.embodiment import EmbodimentSpec
from lightwam_ros.policy.runner import PolicyInputError, PolicyOutputError, PolicyRunner
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file
from lightwam_ros.ros.policy_params import checkpoint_identity
from lightwam_ros.tools.offline.bag_observations import (
    BagInputs,
    RecordedRun,
    policy_rate_stamps,
    policy_settings,
)
from lightwam_ros.tools.offline.offline_report import (
    OfflineInputs,
    PredictedChunk,
    ReferenceSeries,
    write_report,
)

EXIT_NO_OBSERVATION = 1
EXIT_BAD_ARGUMENTS = 2
GRIPPER_THRESHOLDS = {"gripper_normalized": 0.5, "gripper_command": 0.0}
UNITS = {"joint_positions": "rad"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lightwam-offline-check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bag", type=Path, help="rosbag2 folder or .mcap file")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument(
        "--instructions", type=Path, required=True, help="instruction cache of the checkpoint"
    )
    parser.add_argument(
        "--embodiment",
        choices=EMBODIMENTS,
        help="default: the bag's (recorder metadata), else the checkpoint's",
    )
    parser.add_argument(
        "--params", type=Path, help="policy parameter file (topics, ages); default: the shipped one"
    )
    parser.add_argument("--instruction", help="default: the one recorded in the bag")
    parser.add_argument("--out", type=Path, help="report folder (default: BAG_report)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    parser.add_argument(
        "--max-observations", type=int, default=0, help="run on at most this many observations (0: all)"
    )
    parser.add_argument(
        "--lag",
        type=float,
        default=0.25,
        help="s the bag's clock must pass a frame before its observation is "
        "assembled (inputs stamped before it may arrive after it)",
    )
    return parser.parse_args(argv)


def observation_stamps(run: RecordedRun, spec: EmbodimentSpec, limit: int) -> list[float]:
    """The live chunks' stamps, else the scene frames at the policy rate."""
    stamps = sorted(ns * 1e-9 for ns in run.live_chunks) or policy_rate_stamps(
        run.scene_stamps, spec.policy_rate_hz
    )
    return stamps[:limit] if limit > 0 else stamps


def gripper_setup(spec: EmbodimentSpec) -> tuple[list[int], float | None]:
    dims: list[int] = []
    threshold = None
    for field in spec.action.layout.fields:
        if field.kind in GRIPPER_THRESHOLDS:
            start = spec.action.layout.field_slice(field.name).start
            dims += list(range(start, start + field.size))
            threshold = GRIPPER_THRESHOLDS[field.kind]
    return dims, threshold


def action_units(spec: EmbodimentSpec) -> list[str]:
    """Plot labels: joint positions in rad, everything else in the action's own scale."""
    return [UNITS.get(field.kind, "") for field in spec.action.layout.fields for _ in range(field.size)]


def reference_series(run: RecordedRun, spec: EmbodimentSpec) -> ReferenceSeries | None:
    """The robot's recorded state, when it is in the action space (absolute joints)."""
    if spec.state.dim_names != spec.action.layout.dim_names:
        return None
    times, states = run.state_series()
    return ReferenceSeries("recorded joint states", times, states) if len(times) else None


def run_policy(
    inputs: BagInputs, runner: PolicyRunner, run: RecordedRun, stamps: list[float], instruction: str
) -> tuple[list[PredictedChunk], dict[str, list[float]], list[BagProblem]]:
    chunks: list[PredictedChunk] = []
    ages: dict[str, list[float]] = {}
    skipped: collections.Counter[str] = collections.Counter()
    dt = 1.0 / inputs.settings.spec.policy_rate_hz
    for stamp, observation in inputs.observations(stamps):
        if isinstance(observation, str):
            skipped[observation] += 1
            continue
        started = time.perf_counter()
        try:
            output = runner.predict(observation.images, observation.state, instruction)
        except (PolicyInputError, PolicyOutputError) as error:
            skipped[f"policy refused: {error}"] += 1
            continue
        live = run.live_chunk_at(stamp)
        chunks.append(
            PredictedChunk(
                stamp=stamp,
                actions=output.chunk.actions,
                dt=dt,
                execute_steps=output.chunk.execute_steps,
                compute_time=time.perf_counter() - started,
                recorded_actions=None if live is None else live.actions.astype(np.float64),
            )
        )
        for stream, age in observation.ages.items():
            ages.setdefault(stream, []).append(age)
    problems = [
        BagProblem("unusable_observation", f"{count} observation(s): {reason}")
        for reason, count in skipped.items()
    ]
    return chunks, ages, problems + inputs.decode_problems()


def check(args: argparse.Namespace) -> int:
    out = args.out or args.bag.with_name(args.bag.name.rstrip("/") + "_report")
    try:
        reader = BagReader(args.bag)
    except BagError as error:
        print(f"lightwam-offline-check: {error}", file=sys.stderr)
        write_report(empty_inputs(args, [BagProblem("unreadable", str(error))]), out)
        print(f"report (nothing readable): {out}")
        return EXIT_NO_OBSERVATION
    with reader:
        embodiment = (
            args.embodiment
            or reader.metadata.get(METADATA_EMBODIMENT)
            or checkpoint_identity(args.checkpoint)[0]
        )
        try:
            settings = policy_settings(
                args.params or params_file("policy", embodiment),
                overrides={
                    "checkpoint": str(args.checkpoint),
                    "instruction_cache": str(args.instructions),
                    "embodiment": embodiment,
                    "device": args.device,
                    "instruction": "",
                },
            )
        except (ValueError, OSError) as error:
            print(f"lightwam-offline-check: {error}", file=sys.stderr)
            return EXIT_BAD_ARGUMENTS
        spec = settings.spec
        inputs = BagInputs(reader, settings, lag=args.lag)
        run = inputs.scan()
        instruction = args.instruction or run.instruction
        chunks: list[PredictedChunk] = []
        ages: dict[str, list[float]] = {}
        problems = list(run.problems)
        if instruction is None or instruction not in settings.tasks:
            problems.append(
                BagProblem(
                    "no_instruction",
                    (
                        f"instruction {instruction!r} is not in the instruction cache"
                        if instruction
                        else "the bag records no instruction: give one with --instruction"
                    ),
                )
            )
        else:
            print(f"loading {args.checkpoint} on {args.device} ...", flush=True)
            runner = PolicyRunner.from_files(
                args.checkpoint, args.instructions, spec.name, device=args.device, warmup=1
            )
            stamps = observation_stamps(run, spec, args.max_observations)
            print(f"running the policy on {len(stamps)} observation(s) ...", flush=True)
            chunks, ages, more = run_policy(inputs, runner, run, stamps, instruction)
            problems += more
        gripper_dims, threshold = gripper_setup(spec)
        report_inputs = OfflineInputs(
            bag=str(args.bag),
            embodiment=spec.name,
            action_names=list(spec.action.layout.dim_names),
            gripper_dims=gripper_dims,
            gripper_open_above=threshold,
            chunks=chunks,
            reference=reference_series(run, spec),
            live_latencies=np.array([c.inference_latency for c in run.live_chunks.values()]),
            observation_ages={stream: np.array(values) for stream, values in ages.items()},
            problems=[problem_dict(p) for p in problems],
            bag_summary=run.health.summary() if run.health else {},
            action_units=action_units(spec),
        )
    write_report(report_inputs, out)
    for problem in problems:
        print(f"bag problem [{problem.kind}] {problem.topic or ''}: {problem.message}")
    print(f"{len(chunks)} chunk(s) predicted; report: {out}")
    return 0 if chunks else EXIT_NO_OBSERVATION


def problem_dict(problem: BagProblem) -> dict:
    return {"kind": problem.kind, "topic": problem.topic, "message": problem.message}


def empty_inputs(args: argparse.Namespace, problems: list[BagProblem]) -> OfflineInputs:
    return OfflineInputs(
        bag=str(args.bag),
        embodiment=args.embodiment or "unknown",
        action_names=[],
        gripper_dims=[],
        gripper_open_above=None,
        chunks=[],
        reference=None,
        live_latencies=np.zeros(0),
        observation_ages={},
        problems=[problem_dict(p) for p in problems],
        bag_summary={},
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return check(args)
    except (ValueError, FileNotFoundError) as error:  # model files that do not fit
        print(f"lightwam-offline-check: {error}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS


if __name__ == "__main__":
    sys.exit(main())
