"""lightwam-bag-to-samples: turn recorded bags into training samples for Light-WAM.

    lightwam-bag-to-samples BAG [BAG ...] --out DATASET_DIR [--embodiment NAME]
        [--actions commands|state|chunks] [--command-topic TOPIC] [--instruction TEXT]

One ``episode_NNNN.safetensors`` per bag, holding the episode at the policy rate:
- ``images.<role>`` uint8 (T, H, W, 3): every camera of the embodiment, as the policy sees them
  (the observation the live node would assemble for each scene frame);
- ``state`` float32 (T, S): the robot state in the embodiment's state layout;
- ``action_chunks`` float32 (T, H, A) and ``action_mask`` bool (T, H): the chunk to predict at
  each step, steps past the episode's end masked out (the episode starts at the first scene frame
  that has an action: frames recorded before the first command are dropped, and said so);
- ``timestamps`` float64 (T,): the scene frames' stamps [s].
Its metadata names the embodiment, instruction, policy rate, action source and source bag.

Action sources (the alignment convention is lightwam_ros/train/episodes.py's: step i of the
chunk at t is the action of the step starting at t + i*dt): ``commands`` (default) takes what
was commanded - the JointTrajectory messages on the executor's trajectory topic, or a
simulator script's targets published there - the target due at the end of each step
(lightwam_ros/train/targets.py); a bag without commands is skipped with its reason.  ``state``
is the explicit fallback: the recorded robot state reached at t + (i+1)*dt (a position-controlled
gripper trained on it closes only as far as the object stopped it, and then holds it with no
force).  Both need an embodiment whose action layout is its state layout (absolute joints).
``chunks`` takes the chunks a live policy published (for distillation or debugging).  A bag that
cannot give an episode is skipped with its reason; the others are still written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.serialization import deserialize_message
from safetensors.numpy import save_file

from lightwam_ros.bags.metadata import METADATA_EMBODIMENT
from lightwam_ros.bags.reader import BagError, BagReader
from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA
from lightwam_ros.ros.message_types import message_class
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file, read_params
from lightwam_ros.ros.policy_params import PolicySettings
from lightwam_ros.ros.run_topics import absolute_topic
from lightwam_ros.ros.stamps import stamp_to_seconds
from lightwam_ros.tools.assets.model_files import ensure_tiny_package
from lightwam_ros.tools.offline.bag_observations import (
    BagInputs,
    RecordedRun,
    interpolate_series,
    policy_rate_stamps,
    policy_settings,
)
from lightwam_ros.train.targets import Command, commanded_chunks

ACTION_SOURCES = ("commands", "state", "chunks")
TRAJECTORY_TYPE = "trajectory_msgs/msg/JointTrajectory"


class EpisodeError(ValueError):
    """This bag gives no episode; the message says why."""


def chunk_targets(
    run: RecordedRun,
    settings: PolicySettings,
    stamps: list[float],
    source: str,
    commands: Sequence[Command] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(action_chunks (T, H, A), action_mask (T, H)) for the observation stamps."""
    spec = settings.spec
    horizon, dim = spec.chunk.length, spec.action_dim
    if source == "chunks":
        chunks = [run.live_chunk_at(stamp) for stamp in stamps]
        mask = np.array([[chunk is not None] * horizon for chunk in chunks])
        values = np.stack(
            [chunk.actions if chunk is not None else np.zeros((horizon, dim)) for chunk in chunks]
        ).astype(np.float32)
        return values, mask
    if spec.state.dim_names != spec.action.layout.dim_names:
        raise EpisodeError(
            f"--actions {source} needs actions in the state layout; {spec.name} "
            f"has {spec.action.mode} actions: use --actions chunks"
        )
    dt = 1.0 / spec.policy_rate_hz
    if source == "commands":
        if not commands:
            raise EpisodeError(
                "no JointTrajectory commands recorded on the command topic; "
                "--actions state trains on the reached state instead"
            )
        return commanded_chunks(commands, np.asarray(stamps), dt, horizon, end=stamps[-1])
    times, states = run.state_series()
    if len(times) < 2:
        raise EpisodeError("the bag has fewer than two usable joint states")
    at = np.asarray(stamps)[:, None] + dt * np.arange(1, horizon + 1)[None, :]
    values = interpolate_series(times, states, at.ravel()).reshape(len(stamps), horizon, dim)
    mask = np.asarray(np.isfinite(values).all(axis=2))
    return np.nan_to_num(values).astype(np.float32), mask


def recorded_commands(reader: BagReader, inputs: BagInputs, topic: str) -> list[Command]:
    """The JointTrajectory messages on ``topic`` as commands in the action (= state) layout;
    a message that lacks a joint or cannot be decoded is left out (their count is printed)."""
    commands, unusable = [], 0
    for message in reader.messages([topic]):
        if message.msgtype != TRAJECTORY_TYPE:
            raise EpisodeError(
                f"{topic} carries {message.msgtype}; --actions commands reads {TRAJECTORY_TYPE}"
            )
        try:
            msg: Any = deserialize_message(message.data, message_class(message.msgtype))
            command = _command(msg, inputs.builder)
        except Exception:  # noqa: BLE001 - a damaged or foreign message is counted, not fatal
            unusable += 1
            continue
        if command is not None:
            commands.append(command)
    if unusable:
        print(f"{unusable} command message(s) on {topic} could not be used", file=sys.stderr)
    return commands


def _command(msg: Any, builder: Any) -> Command | None:
    issued = stamp_to_seconds(msg.header.stamp)
    index = {name: i for i, name in enumerate(msg.joint_names)}
    columns = [index[name] for name in builder.joint_names]  # KeyError: a joint is missing
    due, positions = [], []
    for point in msg.points:
        due.append(issued + point.time_from_start.sec + point.time_from_start.nanosec * 1e-9)
        positions.append(builder.build(np.asarray(point.positions)[columns]).vector)
    if not due:
        return None
    order = np.argsort(due, kind="stable")
    return Command(issued, np.asarray(due)[order], np.asarray(positions)[order])


def executor_command_topic(embodiment: str) -> str:
    """The executor's JointTrajectory output topic for the embodiment (its parameter file)."""
    params = read_params(params_file(EXECUTOR, embodiment), NODE_KINDS[EXECUTOR].node_name)
    return absolute_topic(EXECUTOR_SCHEMA.effective(params)["joint_trajectory_topic"])


def convert_bag(
    bag: Path, settings: PolicySettings, source: str, instruction: str | None, command_topic: str = ""
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of one episode; EpisodeError when the bag gives none."""
    try:
        reader = BagReader(bag)
    except BagError as error:
        raise EpisodeError(str(error)) from None
    with reader:
        inputs = BagInputs(reader, settings)
        run = inputs.scan()
        commands = recorded_commands(reader, inputs, command_topic) if source == "commands" else []
        stamps = policy_rate_stamps(run.scene_stamps, settings.spec.policy_rate_hz)
        images: dict[str, list[np.ndarray]] = {c.role: [] for c in settings.cameras}
        states, kept = [], []
        for stamp, observation in inputs.observations(stamps):
            if isinstance(observation, str):
                continue
            kept.append(stamp)
            states.append(observation.state)
            for role, rgb in observation.images.items():
                images[role].append(rgb)
    if not kept:
        reasons = "; ".join(f"[{p.kind}] {p.message}" for p in run.problems) or "no scene frames"
        raise EpisodeError(f"no usable observation ({reasons})")
    chunks, mask = chunk_targets(run, settings, kept, source, commands)
    labelled = np.flatnonzero(mask[:, 0])
    if not labelled.size:
        raise EpisodeError(f"no observation has a {source} action to learn")
    # A recorder that starts before the first command records frames without a label: the
    # episode starts at the first frame that has one (a trainer refuses unlabelled steps).
    first = int(labelled[0])
    problems = [p.message for p in run.problems]
    if first:
        problems.append(f"dropped the first {first} observation(s): no {source} action yet")
        print(f"{bag}: {problems[-1]}", file=sys.stderr)
    tensors = {f"images.{role}": np.stack(frames[first:]) for role, frames in images.items()}
    tensors.update(
        state=np.asarray(states[first:], dtype=np.float32),
        action_chunks=chunks[first:],
        action_mask=mask[first:],
        timestamps=np.asarray(kept[first:], dtype=np.float64),
    )
    metadata = {
        "embodiment": settings.spec.name,
        "instruction": instruction or run.instruction or "",
        "policy_rate_hz": repr(settings.spec.policy_rate_hz),
        "action_source": source,
        "source_bag": str(bag),
        "problems": json.dumps(problems),
    }
    return tensors, metadata


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lightwam-bag-to-samples",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("bags", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder")
    parser.add_argument(
        "--embodiment", choices=EMBODIMENTS, help="default: the first bag's (recorder metadata)"
    )
    parser.add_argument("--params", type=Path, help="policy parameter file (topics)")
    parser.add_argument(
        "--actions",
        choices=ACTION_SOURCES,
        default="commands",
        help="action targets (default: commands; state is the fallback)",
    )
    parser.add_argument("--command-topic", help="default: the executor's joint_trajectory_topic")
    parser.add_argument("--instruction", help="default: the one recorded in each bag")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        embodiment = args.embodiment or _bag_embodiment(args.bags[0])
        if not embodiment:
            raise ValueError("give --embodiment: the bag records none")
        # The policy parameters are validated against a model package; only their topics and
        # embodiment matter here, so the tiny package of the embodiment stands in.
        model = ensure_tiny_package(embodiment)
        settings = policy_settings(
            args.params or params_file("policy", embodiment),
            overrides={
                "checkpoint": str(model.checkpoint),
                "instruction_cache": str(model.instruction_cache),
                "embodiment": embodiment,
                "instruction": "",
            },
        )
        command_topic = absolute_topic(args.command_topic or executor_command_topic(embodiment))
    except (ValueError, OSError) as error:
        print(f"lightwam-bag-to-samples: {error}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for bag in args.bags:
        try:
            tensors, metadata = convert_bag(bag, settings, args.actions, args.instruction, command_topic)
        except EpisodeError as error:
            print(f"skipped {bag}: {error}", file=sys.stderr)
            continue
        path = args.out / f"episode_{written:04d}.safetensors"
        save_file(tensors, str(path), metadata=metadata)
        print(f"{bag} -> {path}: {len(tensors['timestamps'])} steps")
        written += 1
    return 0 if written else 1


def _bag_embodiment(bag: Path) -> str:
    try:
        with BagReader(bag) as reader:
            return reader.metadata.get(METADATA_EMBODIMENT, "")
    except BagError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
