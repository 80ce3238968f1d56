"""The recorder's parameter table.  No ROS imports."""

from __future__ import annotations

from lightwam_ros.ros.parameter_schema import NodeSchema, ParameterSpec


def _positive(name: str, default: float, description: str) -> ParameterSpec:
    return ParameterSpec(name, "double", default, description, minimum=0.0, exclusive_minimum=True)


def _topics(name: str, description: str) -> ParameterSpec:
    return ParameterSpec(name, "string_array", None, description)


RECORDER_SCHEMA = NodeSchema(
    "lightwam_recorder",
    "The recorder (`lightwam-record`): the run's topics into an MCAP bag, with the embodiment, the "
    "instruction and each topic's role as metadata.",
    (
        ParameterSpec(
            "output",
            "string",
            "",
            "Bag directory to create (must not exist); empty: lightwam_<date>_<time> in the working "
            "directory.",
        ),
        ParameterSpec(
            "embodiment",
            "string",
            "",
            "Embodiment whose config/policy_* and executor_* parameter files give the default topics.",
        ),
        ParameterSpec(
            "policy_params_file",
            "string",
            "",
            "The policy's parameter file; empty: config/policy_<embodiment>.yaml.",
        ),
        ParameterSpec(
            "executor_params_file",
            "string",
            "",
            "The executor's parameter file; empty: config/executor_<embodiment>.yaml.",
        ),
        _topics(
            "input_topics",
            "Inputs to record (replayed to the policy); unset: from the embodiment's parameter files.",
        ),
        _topics("output_topics", "Outputs to record; unset: from the embodiment's parameter files."),
        _topics("topics", "More topics to record (role other)."),
        _topics("exclude", "Topics not to record."),
        ParameterSpec(
            "instruction",
            "string",
            "",
            "Instruction written into the bag at start (a String on instruction_topic, and metadata).",
        ),
        ParameterSpec(
            "instruction_topic",
            "string",
            "",
            "The policy's instruction topic; empty: the embodiment policy file's.",
        ),
        ParameterSpec(
            "max_queue_messages",
            "integer",
            1000,
            "Messages waiting to be written at most; more are dropped (and counted).",
            minimum=0,
            exclusive_minimum=True,
        ),
        _positive("max_queue_mb", 256.0, "MiB waiting to be written at most."),
        _positive("flush_period", 1.0, "Seconds between flushes to disk: what a kill -9 loses."),
        _positive("discovery_period", 1.0, "Seconds between looks for new topics and publishers."),
        _positive("stats_period", 10.0, "Seconds between logs of written and dropped counts."),
    ),
)
