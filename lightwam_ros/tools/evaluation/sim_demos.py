"""lightwam-sim-demos: scripted ALOHA transfer-cube demonstrations recorded as bags through the
simulator bridge, for training.

    lightwam-sim-demos --episodes 50 --out demos [--perturbation 0.05] [--camera-size H W]

The bridge runs the scripted demonstration (``script:=transfer_cube``: joint-space waypoints
from damped-least-squares IK on the simulator's own cube pose) and publishes everything a real
run has - camera images, joint states, /clock, and the script's targets on the executor's
command topic.  ``lightwam-record`` records each episode into ``OUT/episode_NNN`` (the inputs
and outputs of the aloha_sim parameter files, plus the simulator's success and status).
``OUT/demos.json`` lists every bag with its episode (the seed of its cube pose) and the
simulator's own success signal, and the settings that made them; the success rate is printed at
the end. ``--perturbation`` records DART-style demonstrations: the arms execute the scripted
targets plus slowly drifting noise (off during the grasp and the handover), and the clean targets
are what the bag holds as commands, so a policy trained on them learns to return to the path.
``lightwam-bag-to-samples`` turns the bags into training samples.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rclpy.client import Client
from rclpy.node import Node
from std_msgs.msg import String
from std_srvs.srv import Trigger

from lightwam_ros.nodes.command_input import command_parameters
from lightwam_ros.policy.embodiment import load_embodiment
from lightwam_ros.ros import qos
from lightwam_ros.ros.node_registry import NODE_KINDS, RECORDER, SIM
from lightwam_ros.ros.param_files import params_file, read_params
from lightwam_ros.ros.robot_params import SIM_SCHEMA
from lightwam_ros.ros.run_topics import absolute_topic, camera_topic
from lightwam_ros.sim.catalog import SimTask
from lightwam_ros.tools.evaluation.sim_eval import start_episode
from lightwam_ros.tools.launch.bringup import NodeChild, NodeChildren, NodeThreads, say, wait_for
from lightwam_ros.tools.launch.bringup_plan import NodePlan
from lightwam_ros.tools.launch.recording_gate import wait_until_recorded
from lightwam_ros.tools.launch.ros_env import isolated_ros_env

TASK = SimTask.parse("aloha:transfer_cube")
_RECORDED_EXTRA = ("success_topic", "status_topic")


class DemoWatcher(Node):
    """The bridge's status and reset service, seen from this process."""

    def __init__(self, status_topic: str, reset_service: str, context) -> None:
        super().__init__("lightwam_sim_demos", context=context)
        self.status: dict[str, Any] = {}
        self.reset: Client = self.create_client(Trigger, reset_service)
        self.create_subscription(String, status_topic, self._on_status, qos.COMMANDS)

    def _on_status(self, msg: String) -> None:
        try:
            self.status = json.loads(msg.data)
        except ValueError:
            pass


def record_demos(
    out: Path, episodes: int, first: int, perturbation: float = 0.0, camera_size: Sequence[int] = (0, 0)
) -> list[dict[str, Any]]:
    """Record ``episodes`` scripted demonstrations; one summary per bag."""
    bridge_params = SIM_SCHEMA.effective(
        read_params(params_file(SIM, TASK.embodiment), NODE_KINDS[SIM].node_name)
    )
    bridge = NodeChildren()
    bridge.start(
        NodePlan.of_kind(
            SIM,
            params_file(SIM, TASK.embodiment),
            {
                "task": str(TASK),
                "script": "transfer_cube",
                "hold_until_reset": True,
                "first_episode": first,
                "real_time_factor": 0.0,
                "script_perturbation": perturbation,
                "camera_size": list(camera_size),
            },
        )
    )
    threads = NodeThreads()
    results = []
    try:
        watcher = threads.add(
            DemoWatcher(bridge_params["status_topic"], bridge_params["reset_service"], threads.context)
        )
        wait_for(watcher.reset.service_is_ready, 120.0, "the simulator bridge", bridge.failure)
        for _ in range(episodes):
            results.append(_record_episode(out, watcher, bridge, bridge_params))
    finally:
        bridge.stop()
        threads.close()
    return results


def demonstrated_topics(bridge_params: dict[str, Any]) -> list[str]:
    """The topics a demonstration's episode needs from its first step (absolute names): the
    joint states and cameras the policy reads, and the commands that label them (a recorder
    that subscribed to those late once dropped 1.4 s of an episode's labels)."""
    cameras = load_embodiment(TASK.embodiment).canvas.cameras
    return [
        absolute_topic(topic)
        for topic in (
            bridge_params["joint_state_topic"],
            command_parameters(bridge_params)[1],
            *(camera_topic(bridge_params, camera.role) for camera in cameras),
        )
    ]


def _record_episode(
    out: Path, watcher: DemoWatcher, bridge: NodeChildren, bridge_params: dict[str, Any]
) -> dict[str, Any]:
    bag = out / f"episode_{len(list(out.glob('episode_*'))):03d}"
    recorder = NodeChild(
        NodePlan.of_kind(
            RECORDER,
            None,
            {
                "output": str(bag),
                "embodiment": TASK.embodiment,
                "instruction": TASK.instruction(),
                "topics": [bridge_params[name] for name in _RECORDED_EXTRA],
                "use_sim_time": True,
            },
        )
    )
    try:
        wait_until_recorded(demonstrated_topics(bridge_params), failure=bridge.failure, node=watcher)
        episode = start_episode(watcher.reset, bridge.failure)["episode"]
        wait_for(
            lambda: watcher.status.get("episode") == episode and watcher.status.get("script_done"),
            600.0,
            f"demonstration {episode}",
            bridge.failure,
        )
        status = dict(watcher.status)
    finally:
        recorder.interrupt()
        recorder.stop()
    result = {
        "bag": bag.name,
        "episode": episode,
        "success": bool(status["episode_success"]),
        "seconds": status["time"],
    }
    say(f"demonstration {episode}: success {result['success']} -> {bag}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightwam-sim-demos", description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--first-episode", type=int, default=0, help="cube pose seed of the first")
    parser.add_argument("--out", type=Path, default=Path("demos"))
    parser.add_argument(
        "--perturbation",
        type=float,
        default=0.0,
        help="DART-style drifting noise on the executed arm targets (rad); the bags record the clean targets",
    )
    parser.add_argument(
        "--camera-size",
        type=int,
        nargs=2,
        default=(0, 0),
        metavar=("H", "W"),
        help="render every camera at this size (default: the simulator's)",
    )
    parser.add_argument(
        "--isolated", action="store_true", help="loopback-only discovery and a random ROS_DOMAIN_ID"
    )
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.first_episode < 0 or args.perturbation < 0:
        parser.error("--episodes must be >= 1, --first-episode and --perturbation >= 0")
    if min(args.camera_size) < 0:
        parser.error("--camera-size must be two sizes >= 0")
    if args.isolated:
        os.environ.update(isolated_ros_env())
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        results = record_demos(
            args.out, args.episodes, args.first_episode, args.perturbation, args.camera_size
        )
    except RuntimeError as error:
        print(f"lightwam-sim-demos: {error}", file=sys.stderr)
        return 1
    rate = sum(r["success"] for r in results) / len(results)
    (args.out / "demos.json").write_text(
        json.dumps(
            {
                "task": str(TASK),
                "success_rate": rate,
                "perturbation": args.perturbation,
                "camera_size": list(args.camera_size),
                "seeds": [r["episode"] for r in results],
                "demos": results,
            },
            indent=2,
        )
        + "\n"
    )
    say(
        f"{sum(r['success'] for r in results)}/{len(results)} demonstrations succeeded "
        f"({rate:.0%}, the simulator's own signal); {args.out / 'demos.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
