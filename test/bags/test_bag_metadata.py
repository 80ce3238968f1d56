"""The recording metadata format: topic roles survive the round trip through the bag's metadata
text, a bag without them reads as None, and a malformed value is refused with the reason."""

from __future__ import annotations

import pytest

from lightwam_ros.bags.metadata import METADATA_TOPIC_ROLES, recorded_topic_roles, topic_roles_text


def test_topic_roles_round_trip_through_the_metadata_text():
    roles = {"/joint_states": "input", "/lightwam/action_chunk": "output", "/tf": "other"}
    assert recorded_topic_roles({METADATA_TOPIC_ROLES: topic_roles_text(roles)}) == roles


def test_a_bag_without_topic_roles_has_none():
    assert recorded_topic_roles({}) is None
    assert recorded_topic_roles({METADATA_TOPIC_ROLES: ""}) is None


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '"input"'])
def test_topic_roles_that_are_not_a_json_object_are_refused(text):
    with pytest.raises(ValueError, match="not a JSON object"):
        recorded_topic_roles({METADATA_TOPIC_ROLES: text})
