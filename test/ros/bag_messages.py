"""Synthetic serialized messages for the recorder and replay tests, and the bytes DDS carries.

The messages are serialized with rosbags' type store (zeroed alignment padding, so the bytes are
a function of the content) and published raw: ``serialize_message`` leaves alignment padding
uninitialised, so its bytes differ from run to run.  Between processes Fast DDS pads a payload
with zeros to a multiple of 4 bytes: ``on_the_wire`` is what a raw subscriber in another process
- the recorder, or a test listening to the player - receives, and what a byte-for-byte recording
holds.
"""

from __future__ import annotations

import numpy as np

from lightwam_ros.bags.typestore import project_typestore

STORE = project_typestore()
IMAGE, JOINTS, STRING, CHUNK = (
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/JointState",
    "std_msgs/msg/String",
    "lightwam_ros/msg/ActionChunk",
)
STAMP0_NS = 1_000_000_000


def on_the_wire(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _serialize(msgtype: str, **fields) -> bytes:
    return bytes(STORE.serialize_cdr(STORE.types[msgtype](**fields), msgtype))


def _header(i: int, frame_id: str) -> object:
    sec, nanosec = divmod(STAMP0_NS + i, 1_000_000_000)
    stamp = STORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return STORE.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def image(i: int, size: tuple[int, int] = (4, 6)) -> bytes:
    height, width = size
    return _serialize(
        IMAGE,
        header=_header(i, "head_camera"),
        height=height,
        width=width,
        encoding="rgb8",
        is_bigendian=0,
        step=3 * width,
        data=np.full(3 * height * width, i % 256, dtype=np.uint8),
    )


def joints(i: int) -> bytes:
    values = np.full(3, 0.01 * i)
    return _serialize(
        JOINTS,
        header=_header(i, ""),
        name=["j1", "j2", "j3"],
        position=values,
        velocity=values,
        effort=values,
    )


def string(text: str) -> bytes:
    return _serialize(STRING, data=text)


def chunk(i: int) -> bytes:
    return _serialize(
        CHUNK,
        header=_header(i, "base"),
        chunk_id=i,
        embodiment="robotwin_aloha",
        action_mode="absolute_joints",
        action_names=["a", "b"],
        dt=0.06,
        horizon=2,
        action_dim=2,
        actions=np.array([0.1 * i, 0.2, 0.3, 0.4], np.float32),
        execute_steps=2,
        inference_latency=0.2,
        observation_age=0.01,
        model_id="tiny",
        instruction="beat the block",
    )
