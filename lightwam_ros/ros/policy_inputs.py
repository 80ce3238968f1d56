"""The policy's input streams (cameras, joint state, measured poses) as ObservationAssembler
streams: one definition for the live node and for the offline check, so both assemble
observations by the same rules."""

from __future__ import annotations

from lightwam_ros.control.frame_history import StreamConfig
from lightwam_ros.ros.policy_params import PolicySettings

JOINT_STREAM = "joint_states"
# Joint states come much faster than frames, and an observation takes the joint state of the
# scene frame's instant, up to a frame period (plus inference latency, offline) in the past.
JOINT_HISTORY = 512
CAMERA_HISTORY = 16


def camera_stream(role: str) -> str:
    return f"camera:{role}"


def pose_stream(arm: str) -> str:
    return f"eef_pose:{arm}"


def anchor_stream(settings: PolicySettings) -> str:
    """The embodiment's first camera (its scene camera): chunks carry its frame's stamp."""
    return camera_stream(settings.spec.canvas.cameras[0].role)


def input_streams(
    settings: PolicySettings, history_scale: int = 1
) -> tuple[dict[str, StreamConfig], dict[str, str]]:
    """(stream configs, stream -> topic); ``history_scale`` multiplies how many samples each
    stream keeps (the offline check assembles observations well after their frames arrived)."""
    streams = {
        JOINT_STREAM: StreamConfig(
            settings.joint_state_max_age, settings.tolerance, capacity=JOINT_HISTORY * history_scale
        )
    }
    topics = {JOINT_STREAM: settings.topics["joint_state_topic"]}
    for camera in settings.cameras:
        streams[camera_stream(camera.role)] = StreamConfig(
            camera.max_age,
            settings.tolerance,
            frozen_after=settings.frozen_after,
            capacity=CAMERA_HISTORY * history_scale,
        )
        topics[camera_stream(camera.role)] = camera.topic
    for pose in settings.poses:
        streams[pose_stream(pose.arm)] = StreamConfig(
            pose.max_age, settings.tolerance, capacity=JOINT_HISTORY * history_scale
        )
        topics[pose_stream(pose.arm)] = pose.topic
    return streams, topics
