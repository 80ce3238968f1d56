"""lightwam-sim-eval: closed-loop episodes in a simulator through the whole ROS 2 stack.

    lightwam-sim-eval --sim aloha --tiny --episodes 2 --episode-seconds 8 --out sim_eval
    lightwam-sim-eval --sim libero:libero_spatial/0 --checkpoint M --instructions I --episodes 20

The simulator bridge, the policy and the executor run as in ``lightwam-bringup --sim`` (same
plan, same parameter files), each in its own process.  The bridge holds its first scene until the
policy has warmed up; then every episode starts with the bridge's reset service and lasts until
the simulator reports success or ``--episode-seconds`` of simulated time pass.  The report
(``report.json``, ``report.md`` and one image strip per episode) gives the success rate, episode
lengths, the policy's latency, the executor's command smoothness, whether the arm moved and
stayed within its joint limits, and how fast the simulator and the loop ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rclpy.client import Client
from std_srvs.srv import Trigger

from lightwam_ros.msg import PolicyStatus
from lightwam_ros.nodes.sim_bridge import RESET_TIMEOUT
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros.node_registry import SIM
from lightwam_ros.ros.param_files import ParamFileError
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.ros.run_topics import camera_topic
from lightwam_ros.sim.base import SimError
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.evaluation.sim_eval_observer import EpisodeRecord, SimEvalObserver, episode_summary
from lightwam_ros.tools.launch.bringup import SeparateProcesses, say, wait_for
from lightwam_ros.tools.launch.bringup_plan import (
    BringupOptions,
    ParamOverride,
    PlanError,
    build_plan,
    model_for_sim,
    resolve_model,
)
from lightwam_ros.tools.launch.ros_env import isolated_ros_env

_READY_STATES = (PolicyStatus.READY, PolicyStatus.WAITING_FOR_INPUT)
UNTRAINED_NOTE = (
    "the tiny preset has random, untrained weights: its motions are arbitrary and "
    "a success rate of 0 is expected; give --checkpoint and --instructions of a "
    "trained Light-WAM package for a real evaluation"
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lightwam-sim-eval", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sim",
        default="aloha",
        metavar="SIMULATOR[:TASK]",
        help="aloha[:transfer_cube|insertion] or libero[:SUITE/INDEX] (default aloha)",
    )
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument(
        "--first-episode", type=int, default=0, help="scene index of the first episode (seed / init state)"
    )
    parser.add_argument(
        "--episode-seconds",
        type=float,
        default=10.0,
        help="simulated seconds before an episode counts as failed",
    )
    parser.add_argument("--checkpoint", help="Light-WAM checkpoint (.safetensors)")
    parser.add_argument("--instructions", help="instruction cache of the checkpoint")
    parser.add_argument(
        "--tiny", action="store_true", help="a random-weight tiny package (the default without --checkpoint)"
    )
    parser.add_argument("--workdir", type=Path, help="where tiny packages are kept")
    parser.add_argument(
        "--out", type=Path, default=Path("sim_eval"), help="report folder (default ./sim_eval)"
    )
    parser.add_argument(
        "--params",
        nargs="+",
        action="extend",
        default=[],
        metavar="[NODE:]NAME:=VALUE",
        help="parameter overrides (policy, executor, sim), as for lightwam-bringup",
    )
    parser.add_argument("--policy-threads", type=int)
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=300.0,
        help="seconds for the nodes to start and the policy to warm up",
    )
    parser.add_argument(
        "--isolated", action="store_true", help="loopback-only discovery and a random ROS_DOMAIN_ID"
    )
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.episode_seconds <= 0 or args.first_episode < 0:
        parser.error("--episodes must be >= 1, --episode-seconds > 0, --first-episode >= 0")
    try:
        args.task = SimTask.parse(args.sim)
    except SimError as error:
        parser.error(f"--sim: {error}")
    return args


def make_plan(args: argparse.Namespace):
    held = ParamOverride("sim", "hold_until_reset", True)
    first = ParamOverride("sim", "first_episode", args.first_episode)
    options = BringupOptions(
        embodiment=args.task.embodiment,
        sim=str(args.task),
        policy_threads=args.policy_threads,
        params=(held, first, *(ParamOverride.parse(text) for text in args.params)),
    )
    model = resolve_model(
        options.embodiment,
        args.checkpoint,
        args.instructions,
        tiny=args.tiny,
        safe_target=True,
        cache_dir=args.workdir,
    )
    if model.tiny:
        say(f"random-weight tiny package {model.checkpoint.parent}: {UNTRAINED_NOTE}")
    plan = build_plan(options, model_for_sim(model, options))
    if plan.observed is None or plan.observed.command_type != "joint_trajectory":
        raise PlanError("lightwam-sim-eval follows the executor's joint_trajectory output")
    return plan, model


def start_episode(reset: Client, failure: Callable[[], str | None]) -> dict[str, Any]:
    """Call the simulator bridge's reset service: the new episode's index, task, instruction
    and clock start; RuntimeError with the bridge's reason when it could not reset."""
    future = reset.call_async(Trigger.Request())
    wait_for(future.done, RESET_TIMEOUT, "the simulator to reset", failure)
    response = future.result()
    if response is None:
        raise RuntimeError("the reset service gave no answer")
    if not response.success:
        raise RuntimeError(response.message)
    return json.loads(response.message)


class Evaluation:
    """Runs the episodes against started nodes, through the observer and the reset service."""

    def __init__(
        self,
        observer: SimEvalObserver,
        reset_service: str,
        args: argparse.Namespace,
        failure: Callable[[], str | None],
    ) -> None:
        self.observer = observer
        self.args = args
        self._failure = failure  # why a node died, if one did
        self._reset: Client = observer.create_client(Trigger, reset_service)

    def _wait(self, condition: Callable[[], object], timeout: float, what: str) -> None:
        wait_for(condition, timeout, what, self._failure)

    def wait_until_ready(self) -> None:
        self._wait(
            lambda: self.observer.policy_state in _READY_STATES,
            self.args.startup_timeout,
            "the policy to warm up",
        )
        self._wait(self._reset.service_is_ready, 30.0, "the simulator's reset service")

    def run_episode(self) -> tuple[EpisodeRecord, float]:
        info = start_episode(self._reset, self._failure)
        record = self.observer.begin(info["episode"], info["clock_start"], self.args.episode_seconds)
        say(f"episode {info['episode']}: {info['instruction']!r}")
        started = time.monotonic()
        # Simulated time may run far slower than wall time on a CPU (rendering, inference).
        self._wait(
            lambda: record.done, 60.0 + 100.0 * self.args.episode_seconds, f"episode {info['episode']} to end"
        )
        return record, time.monotonic() - started


def save_strip(record: EpisodeRecord, path: Path, rotation_deg: int) -> str | None:
    """The episode's frames side by side (upright as the embodiment rotates them), or None."""
    if not record.frames:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    frames = [np.rot90(frame, k=-rotation_deg // 90) for _, frame in record.frames]
    height = min(frame.shape[0] for frame in frames)
    strip = np.concatenate([frame[:height] for frame in frames], axis=1)
    pyplot.imsave(path, strip)
    return path.name


def aggregate(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    def pooled(key: str, stat: str) -> float | None:
        values = [e[key][stat] for e in episodes if e[key]]
        return round(float(np.median(values)), 2) if values else None

    return {
        "episodes": len(episodes),
        "success_rate": round(sum(e["success"] for e in episodes) / len(episodes), 3),
        "mean_length_s": round(float(np.mean([e["length_s"] for e in episodes])), 3),
        "inference_latency_ms_p50": pooled("inference_latency_ms", "p50"),
        "sim_step_ms_p50": pooled("sim_step_ms", "p50"),
        "sim_render_ms_p50": pooled("sim_render_ms", "p50"),
        "real_time_factor": round(float(np.mean([e["real_time_factor"] or 0.0 for e in episodes])), 3),
        "chunk_rate_hz_wall": round(float(np.mean([e["chunk_rate_hz_wall"] for e in episodes])), 3),
        "arm_moved": all((e["largest_travel"] or {}).get("value", 0.0) > 1e-3 for e in episodes),
        "within_limits": not any(e["outside_limits"] for e in episodes),
        "commands_reached_sim": all(e["commands_applied_by_sim"] > 0 for e in episodes),
        "object_approached_m_median": _median_approach(episodes),
    }


def _median_approach(episodes: list[dict[str, Any]]) -> float | None:
    """Median over episodes of how much closer the acting gripper came to the task's object
    than it started (m): progress short of success; None where the task defines no object."""
    gains = [d["start"] - d["closest"] for e in episodes if (d := e.get("object_distance_m"))]
    return round(float(np.median(gains)), 4) if gains else None


def write_report(out: Path, header: dict[str, Any], episodes: list[dict[str, Any]]) -> dict:
    report = {**header, "summary": aggregate(episodes), "per_episode": episodes}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    summary = report["summary"]
    lines = [
        f"# Closed-loop evaluation: {header['task']}",
        "",
        f"- instruction: {header['instruction']!r}",
        f"- model: {header['checkpoint']}" + (" (tiny, untrained)" if header["tiny"] else ""),
        f"- simulator: mujoco {header['mujoco']}",
        "",
    ]
    if header["tiny"]:
        lines += [f"**Note:** {UNTRAINED_NOTE}.", ""]
    lines += [f"- {key}: {value}" for key, value in summary.items()]
    lines += [
        "",
        "| episode | success | length s | chunks | latency p50 ms | sim step+render "
        "ms | real-time factor | gripper-object m (start/closest) | strip |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for e in episodes:
        step = (e["sim_step_ms"] or {}).get("p50", 0) + (e["sim_render_ms"] or {}).get("p50", 0)
        latency = (e["inference_latency_ms"] or {}).get("p50")
        strip = f"![]({e['strip']})" if e.get("strip") else ""
        reach = e.get("object_distance_m")
        approach = f"{reach['start']}/{reach['closest']}" if reach else "-"
        lines.append(
            f"| {e['episode']} | {e['success']} | {e['length_s']} | {e['chunks']} | "
            f"{latency} | {step:.1f} | {e['real_time_factor']} | {approach} | {strip} |"
        )
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return report


def _evaluate(args: argparse.Namespace) -> int:
    plan, model = make_plan(args)
    spec = load_embodiment(args.task.embodiment)
    sim_params = SIM_SCHEMA.effective(plan.node(SIM).values())
    camera = spec.canvas.cameras[0]
    limits = {joint: spec.joint_limit(joint) for joint in spec.robot_joints}
    args.out.mkdir(parents=True, exist_ok=True)
    nodes = SeparateProcesses(plan)
    episodes: list[dict[str, Any]] = []
    failure: str | None = None
    import mujoco

    header = {
        "task": str(args.task),
        "instruction": args.task.instruction(),
        "checkpoint": str(model.checkpoint),
        "tiny": model.tiny,
        "mujoco": mujoco.__version__,
        "episode_seconds": args.episode_seconds,
    }
    try:
        nodes.start()
        threads = nodes.threads
        assert threads is not None and plan.observed is not None, "a sim-eval plan is observed"
        observer = threads.add(
            SimEvalObserver(
                plan.observed,
                sim_params["status_topic"],
                camera_topic(sim_params, camera.role),
                limits,
                context=threads.context,
            )
        )
        evaluation = Evaluation(observer, sim_params["reset_service"], args, nodes.failure)
        evaluation.wait_until_ready()
        for _ in range(args.episodes):
            record, wall = evaluation.run_episode()
            summary = episode_summary(record, wall)
            summary["strip"] = save_strip(
                record, args.out / f"episode_{record.episode:03d}.png", camera.rotation_deg
            )
            episodes.append(summary)
            say(
                f"episode {record.episode}: success {summary['success']}, "
                f"{summary['length_s']} s simulated in {summary['wall_s']} s, "
                f"{summary['chunks']} chunks, {summary['commands_applied_by_sim']} commands "
                "applied"
            )
    except (RuntimeError, PlanError, ParamFileError) as error:
        failure = str(error)
    finally:
        nodes.stop()
    if episodes:
        report = write_report(args.out, header, episodes)
        say("summary: " + json.dumps(report["summary"]))
        say(f"report: {args.out / 'report.md'}")
    if model.tiny:
        say(f"NOTE: {UNTRAINED_NOTE}")
    if failure:
        say(f"FAILED: {failure}")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.isolated:
        os.environ.update(isolated_ros_env())
    try:
        return _evaluate(args)
    except (PlanError, ParamFileError) as error:
        print(f"lightwam-sim-eval: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
