"""lightwam-lockstep-eval: the policy and the executor's core stepped with the simulator, no ROS.

    lightwam-lockstep-eval --checkpoint M --instructions I --episodes 20 [--first-episode 0]
    lightwam-lockstep-eval --scripted --episodes 20 [--latency 0.05]
    lightwam-lockstep-eval --checkpoint M --instructions I --scripted-until 4.0 --episodes 20

The same episodes as ``lightwam-sim-eval`` (same simulator, seeds, success signal, and the same
bring-up plan, so the same parameters of the policy, the executor and the simulator), in the
simulator's time instead of real time: at every control tick the executor's core gets the joint
state and returns the command the simulator steps to, and at the policy's rate the policy sees the
scene as it is and its chunk, stamped with that instant, reaches the core (``--latency`` later).
So inference takes no time unless asked to, nothing jitters, and a rerun with the same number of
CPU threads gives the same result (another thread count sums in another order, and a difference
that small can change an episode's outcome). Set beside ``lightwam-sim-eval`` on the same seeds,
it separates what the policy can do from what the real loop's timing (latency, jitter, process
scheduling) costs. ``--scripted`` plays the transfer-cube script's chunks in place of the model's
(``lightwam_ros.sim.scripted_policy``): a policy that knows where the cube is and is never wrong,
so what it loses is what chunking at the policy's rate, the executor and ``--latency`` cost.
``--scripted-until S`` hands each episode from the script to the model S seconds in: the phase
after S is then the model's alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from lightwam_ros.control.command_layout import CommandLayout
from lightwam_ros.control.executor_core import ChunkExecutorCore, ExecutorConfig
from lightwam_ros.policy.chunk import NS_PER_S, Chunk
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.policy.runner import PolicyRunner
from lightwam_ros.policy.state_builder import StateBuilder
from lightwam_ros.ros.executor_params import settings_from_values
from lightwam_ros.ros.node_registry import EXECUTOR, POLICY, SIM
from lightwam_ros.ros.policy_params import settings_from_values as policy_settings_from_values
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.sim.aloha import AlohaSim
from lightwam_ros.sim.base import SimError, SimState, Simulator
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.sim.scripted_policy import ScriptedPolicy
from lightwam_ros.tools.launch.bringup_plan import (
    BringupOptions,
    BringupPlan,
    ParamOverride,
    build_plan,
    resolve_model,
)

# Time of an episode's reset on the stamps' clock: chunk stamps must be > 0.
EPISODE_START_NS = NS_PER_S
SCRIPTED_TASK = SimTask.parse("aloha:transfer_cube")  # the task whose script --scripted plays


@dataclass(frozen=True)
class LockstepEpisode:
    episode: int
    success: bool
    length_s: float
    chunks_accepted: int
    chunks_refused: int
    object_distance_closest_m: float | None


class ChunkSource(Protocol):
    """What predicts the chunks: the model, or the scripted demonstration (``--scripted``)."""

    def start(self, state: SimState) -> None:
        """A new episode begins from ``state``."""

    def chunk(self, state: SimState, stamp_ns: int) -> Chunk:
        """The chunk for the scene and robot as they are at ``state``, stamped ``stamp_ns``."""


class ModelPolicy:
    """The model's chunk from the scene as rendered and the robot's joint state."""

    def __init__(self, sim: Simulator, runner: PolicyRunner, instruction: str) -> None:
        self.sim, self.runner, self.instruction = sim, runner, instruction
        self.builder = StateBuilder(runner.spec, chains={})
        self._state_joints = [sim.joint_names.index(name) for name in self.builder.joint_names]

    def start(self, state: SimState) -> None:
        pass  # memoryless: each chunk comes from the observation alone

    def chunk(self, state: SimState, stamp_ns: int) -> Chunk:
        robot = self.builder.build(state.positions[self._state_joints])
        return self.runner.predict(self.sim.render(), robot.vector, self.instruction, stamp_ns=stamp_ns).chunk


class HandedOver:
    """``first``'s chunks for observations before ``seconds`` into the episode, ``then``'s after:
    with the script first, which phase of the task the model loses (the script has grasped and
    lifted the cube by 4 s; lightwam_ros.sim.aloha_scripted)."""

    def __init__(self, first: ChunkSource, then: ChunkSource, seconds: float) -> None:
        self.first, self.then, self.seconds = first, then, seconds

    def start(self, state: SimState) -> None:
        self.first.start(state)
        self.then.start(state)

    def chunk(self, state: SimState, stamp_ns: int) -> Chunk:
        return (self.first if state.time < self.seconds else self.then).chunk(state, stamp_ns)


class Lockstep:
    """One chunk source, one executor configuration, one simulator: ``run(seed, seconds)`` per
    episode."""

    def __init__(
        self,
        sim: Simulator,
        source: ChunkSource,
        policy_rate: float,
        executor: ExecutorSetup,
        latency: float = 0.0,
    ) -> None:
        self.sim, self.source, self.executor = sim, source, executor
        self.layout = executor.layout
        self._commanded = [sim.joint_names.index(name) for name in self.layout.joint_names]
        self._policy_period_ns = round(NS_PER_S / policy_rate)
        self._step_ns = round(sim.control_dt * NS_PER_S)
        self._latency_ns = round(latency * NS_PER_S)
        # The executor's ticks within one simulator step (its control rate, at least one).
        ticks = max(1, round(executor.control_rate * sim.control_dt))
        self._tick_offsets_ns = [round(self._step_ns * (k + 1) / ticks) for k in range(ticks)]

    def run(self, episode: int, seconds: float) -> LockstepEpisode:
        """One episode until the simulator reports success or ``seconds`` of simulated time."""
        state = self.sim.reset(episode)
        self.source.start(state)
        core = ChunkExecutorCore(self.executor.config)
        targets = state.positions.copy()
        accepted = refused = 0
        closest = state.object_distance
        next_chunk_ns = EPISODE_START_NS
        pending: list[tuple[int, Chunk]] = []  # (when it reaches the executor, the chunk)
        while not state.success and state.time < seconds:
            now_ns = EPISODE_START_NS + round(state.time * NS_PER_S)
            core.update_measured(state.positions[self._commanded], now_ns)
            if now_ns >= next_chunk_ns:
                pending.append((now_ns + self._latency_ns, self.source.chunk(state, now_ns)))
                next_chunk_ns += self._policy_period_ns
            for offset in self._tick_offsets_ns:
                while pending and pending[0][0] <= now_ns + offset:  # it has arrived by this tick
                    chunk = self.layout.to_joint_targets(pending.pop(0)[1], current=targets[self._commanded])
                    if core.submit_chunk(chunk.chunk).accepted:
                        accepted += 1
                    else:
                        refused += 1
                command = core.tick(now_ns + offset)
                if command.positions is not None:
                    targets[self._commanded] = command.positions
            state = self.sim.step(targets)
            if state.object_distance is not None:
                closest = state.object_distance if closest is None else min(closest, state.object_distance)
        return LockstepEpisode(
            episode=episode,
            success=bool(state.success),
            length_s=round(float(state.time), 3),
            chunks_accepted=accepted,
            chunks_refused=refused,
            object_distance_closest_m=None if closest is None else round(float(closest), 4),
        )


def lockstep_plan(
    task: SimTask, checkpoint: str | None, instructions: str | None, params: Sequence[str]
) -> BringupPlan:
    """The bring-up plan ``lightwam-sim-eval`` starts for ``task``: the nodes' parameter files and
    every override (the model files, the simulator's wiring, ``--params`` routed as there).
    Without model files, the random-weight tiny package (the simulator moves nothing real)."""
    options = BringupOptions(
        embodiment=task.embodiment, sim=str(task), params=tuple(ParamOverride.parse(text) for text in params)
    )
    model = resolve_model(options.embodiment, checkpoint, instructions, tiny=False, safe_target=True)
    return build_plan(options, model)


@dataclass(frozen=True)
class ExecutorSetup:
    """What the executor node would build from its parameters: the core's configuration, the
    command layout and the control rate."""

    config: ExecutorConfig
    layout: CommandLayout
    control_rate: float


def executor_setup(plan: BringupPlan) -> ExecutorSetup:
    """The executor's setup from its parameters in ``plan``, as the node would read them."""
    settings = settings_from_values(plan.node(EXECUTOR).values())
    layout = settings.command_layout()
    return ExecutorSetup(settings.core_config(layout), layout, settings.control_rate)


def summary(episodes: Sequence[LockstepEpisode]) -> dict:
    return {
        "episodes": len(episodes),
        "successes": sum(e.success for e in episodes),
        "success_rate": round(sum(e.success for e in episodes) / max(1, len(episodes)), 3),
        "failed": [e.episode for e in episodes if not e.success],
        "chunks_refused": sum(e.chunks_refused for e in episodes),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightwam-lockstep-eval", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="default: the random-weight tiny package")
    parser.add_argument("--instructions", help="the checkpoint's instruction cache")
    parser.add_argument(
        "--scripted",
        action="store_true",
        help="the scripted demonstration's chunks instead of the model's (aloha:transfer_cube): "
        "what the execution path costs a policy that is never wrong",
    )
    parser.add_argument(
        "--scripted-until",
        type=float,
        metavar="SECONDS",
        help="the script's chunks for the first SECONDS of each episode, the model's after: "
        "which phase the model loses",
    )
    parser.add_argument(
        "--sim", default="aloha:transfer_cube", help="SIMULATOR[:TASK], as for lightwam-sim-eval"
    )
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument(
        "--first-episode", type=int, default=0, help="scene index (seed) of the first episode"
    )
    parser.add_argument("--episode-seconds", type=float, default=10.0)
    parser.add_argument(
        "--params",
        nargs="+",
        default=[],
        metavar="NODE:NAME:=VALUE",
        help="parameter overrides of the policy or the executor, as for lightwam-sim-eval (policy:rate:=5)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="simulated seconds from an observation until its chunk reaches the executor (default 0)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="folder for lockstep.json")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.first_episode < 0 or not args.episode_seconds > 0 or not args.latency >= 0:
        parser.error("--episodes must be >= 1, --first-episode and --latency >= 0, --episode-seconds > 0")
    if args.scripted_until is not None and not args.scripted_until >= 0:
        parser.error("--scripted-until must be >= 0 s")
    try:
        task = SimTask.parse(args.sim)
        if args.scripted and args.scripted_until is not None:
            raise ValueError("--scripted and --scripted-until exclude each other")
        if (args.scripted or args.scripted_until is not None) and str(task) != str(SCRIPTED_TASK):
            raise SimError(f"--scripted plays the {SCRIPTED_TASK} script, not {task}")
        plan = lockstep_plan(task, args.checkpoint, args.instructions, args.params)
        policy = policy_settings_from_values(plan.node(POLICY).values())
        executor = executor_setup(plan)
        runner = None
        if not args.scripted:
            runner = PolicyRunner.from_files(
                policy.checkpoint,
                policy.instruction_cache,
                embodiment=task.embodiment,
                device=args.device,
                warmup=1,
            )
        camera_size = SIM_SCHEMA.effective(plan.node(SIM).values())["camera_size"]
        sim = task.build(tuple(camera_size) if camera_size else None)
    except (ValueError, OSError, SimError) as error:  # PlanError, ParamFileError, CheckpointError ...
        print(f"lightwam-lockstep-eval: {error}", file=sys.stderr)
        return 1
    episodes = []
    try:
        source: ChunkSource
        if runner is not None:
            source = ModelPolicy(sim, runner, policy.instruction or sim.instruction)
        if args.scripted or args.scripted_until is not None:
            assert isinstance(sim, AlohaSim), f"{SCRIPTED_TASK} builds an ALOHA simulator"
            scripted = ScriptedPolicy(sim, load_embodiment(task.embodiment))
            source = scripted if runner is None else HandedOver(scripted, source, args.scripted_until)
        loop = Lockstep(sim, source, policy.rate, executor, args.latency)
        for episode in range(args.first_episode, args.first_episode + args.episodes):
            done = loop.run(episode, args.episode_seconds)
            episodes.append(done)
            print(f"episode {episode}: success {done.success}, {done.length_s:g} s", flush=True)
    finally:
        sim.close()
    result = summary(episodes)
    print(f"summary: {json.dumps(result)}")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        report = {
            "checkpoint": args.checkpoint,
            "scripted": args.scripted,
            "scripted_until_s": args.scripted_until,
            "sim": str(task),
            "params": args.params,
            "latency_s": args.latency,
            "summary": result,
        }
        report["per_episode"] = [asdict(e) for e in episodes]
        (args.out / "lockstep.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
