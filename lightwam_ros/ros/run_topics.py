"""Which topics a run of this package's nodes reads and publishes, from the nodes' effective
parameters: what the recorder records (and with which role), what a bag player must not publish
again, what the bring-up wires.  No ROS imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lightwam_ros.policy.embodiment import default_camera_topic, load_embodiment, transport_topic
from lightwam_ros.ros.executor_params import EXECUTOR_SCHEMA
from lightwam_ros.ros.node_registry import EXECUTOR, NODE_KINDS, POLICY
from lightwam_ros.ros.param_files import EMBODIMENTS, params_file, read_params
from lightwam_ros.ros.policy_params import POLICY_SCHEMA

DIAGNOSTICS_TOPIC = "/diagnostics"


@dataclass(frozen=True)
class RecordedTopics:
    """What a recording of a run holds: the policy's inputs (what a replay gives it back) and
    what the nodes output (what an offline check compares with).  Topic names as the nodes'
    parameters spell them: relative ones resolve in the recorder's namespace."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    instruction: str  # the policy's instruction topic (std_msgs/String)
    predicted_from: tuple[str, ...]  # the policy's cameras and joint states: every chunk needs them


def recorded_topics(policy: Mapping[str, Any], executor: Mapping[str, Any]) -> RecordedTopics:
    """The topics to record, from the policy and executor parameters (a parameter file's: the
    schemas' defaults fill in the rest)."""
    policy, executor = POLICY_SCHEMA.effective(policy), EXECUTOR_SCHEMA.effective(executor)
    instruction = policy["instruction_topic"]
    cameras = [camera_topic(policy, role) for role in camera_roles(policy)]
    poses = [
        topic
        for name, topic in policy.items()
        if name.startswith("eef_pose.") and name.endswith(".topic") and topic
    ]
    joint_states = [values["joint_state_topic"] for values in (policy, executor)]
    outputs = [
        values[name]
        for role, values in ((POLICY, policy), (EXECUTOR, executor))
        for name in NODE_KINDS[role].output_topic_params
        if values.get(name)
    ] + [DIAGNOSTICS_TOPIC]
    inputs = list(dict.fromkeys([*cameras, *joint_states, instruction, *poses]))
    return RecordedTopics(
        tuple(inputs),
        tuple(t for t in dict.fromkeys(outputs) if t not in inputs),
        instruction,
        tuple(dict.fromkeys([*cameras, policy["joint_state_topic"]])),
    )


def camera_topic(values: Mapping[str, Any], role: str) -> str:
    """The topic camera ``role``'s frames arrive on with a node's effective parameters: its
    image topic (or the default) in the transport they choose."""
    return transport_topic(
        values.get(f"cameras.{role}.topic") or default_camera_topic(role),
        values.get(f"cameras.{role}.compressed", False),
    )


def absolute_topic(name: str) -> str:
    """A topic name as a bag or the graph spells it in the root namespace."""
    return name if name.startswith("/") else "/" + name


def package_output_topics() -> set[str]:
    """Everything this package's nodes publish with the shipped parameter files, for every
    embodiment (absolute names): what a player of a foreign bag must not publish again."""
    topics: set[str] = set()
    for embodiment in EMBODIMENTS:
        policy, executor = (
            read_params(params_file(role, embodiment), NODE_KINDS[role].node_name)
            for role in (POLICY, EXECUTOR)
        )
        topics.update(absolute_topic(t) for t in recorded_topics(policy, executor).outputs)
    return topics


def camera_roles(policy: Mapping[str, Any]) -> list[str]:
    """The camera roles of a policy's parameters: its embodiment's, and any its parameters
    configure (``cameras.<role>.*``)."""
    named = {name.split(".")[1] for name in policy if name.startswith("cameras.")}
    if policy.get("embodiment"):
        named.update(camera.role for camera in load_embodiment(policy["embodiment"]).canvas.cameras)
    return sorted(named)
