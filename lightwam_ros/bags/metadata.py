"""The custom metadata lightwam-record writes into a bag, for lightwam-replay, the offline tools
and training: the embodiment, the instruction and its topic, and each topic's role in the run."""

from __future__ import annotations

import json
from collections.abc import Mapping

METADATA_EMBODIMENT = "embodiment"
METADATA_INSTRUCTION = "instruction"
METADATA_INSTRUCTION_TOPIC = "instruction_topic"
METADATA_TOPIC_ROLES = "topic_roles"  # JSON object: topic -> one of TOPIC_ROLES
TOPIC_ROLES = ("input", "output", "other")


def topic_roles_text(roles: Mapping[str, str]) -> str:
    """The ``topic_roles`` metadata value for topic -> role."""
    return json.dumps(dict(roles), sort_keys=True)


def recorded_topic_roles(metadata: Mapping[str, str]) -> dict[str, str] | None:
    """The topic roles lightwam-record wrote, or None for a bag recorded otherwise; ValueError
    when the value is not a JSON object."""
    text = metadata.get(METADATA_TOPIC_ROLES)
    if not text:
        return None
    try:
        roles = json.loads(text)
    except json.JSONDecodeError:
        roles = None
    if not isinstance(roles, dict):
        raise ValueError(f"the bag's {METADATA_TOPIC_ROLES} metadata is not a JSON object: {text[:80]!r}")
    return roles
