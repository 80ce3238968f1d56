"""Synthetic recordings for the bag tests: camera images with random pixels, joint-state
trajectories, instructions and action chunks, serialized with the project type store.  Each
message is a pure function of (seed, index), so a test can regenerate what another process sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rosbags.typesys.store import Typestore

NS_PER_S = 1_000_000_000
START_NS = 1_700_000_000 * NS_PER_S
PERIOD_NS = 10_000_000  # one message every 10 ms of log time
IMAGE = "sensor_msgs/msg/Image"
JOINTS = "sensor_msgs/msg/JointState"
STRING = "std_msgs/msg/String"
CHUNK = "lightwam_ros/msg/ActionChunk"
TOPICS = {
    "/camera/image_raw": IMAGE,
    "/joint_states": JOINTS,
    "/instruction": STRING,
    "/lightwam/action_chunk": CHUNK,
}
JOINT_NAMES = [f"joint{i}" for i in range(1, 8)]


@dataclass(frozen=True)
class Sample:
    topic: str
    msgtype: str
    log_time_ns: int
    stamp_ns: int | None  # header stamp; None for types without a header
    data: bytes


def _header(store: Typestore, stamp_ns: int, frame_id: str) -> object:
    sec, nanosec = divmod(stamp_ns, NS_PER_S)
    time = store.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)
    return store.types["std_msgs/msg/Header"](stamp=time, frame_id=frame_id)


def build_message(
    store: Typestore,
    msgtype: str,
    index: int,
    stamp_ns: int,
    rng: np.random.Generator,
    image_size: tuple[int, int] = (12, 16),
) -> object:
    """One message of ``msgtype`` with content drawn from ``rng`` (or derived from ``index``)."""
    header = _header(store, stamp_ns, "frame")
    if msgtype == IMAGE:
        height, width = image_size
        pixels = rng.integers(0, 256, size=height * width * 3, dtype=np.uint8)
        return store.types[IMAGE](
            header=header,
            height=height,
            width=width,
            encoding="rgb8",
            is_bigendian=0,
            step=width * 3,
            data=pixels,
        )
    if msgtype == JOINTS:
        phase = index * 0.01
        position = np.sin(phase + np.arange(len(JOINT_NAMES))) + rng.normal(0, 1e-3, 7)
        return store.types[JOINTS](
            header=header,
            name=JOINT_NAMES,
            position=position,
            velocity=np.cos(phase + np.arange(7)),
            effort=np.zeros(7),
        )
    if msgtype == STRING:
        return store.types[STRING](data=f"instruction {index}: put the bowl on the plate")
    horizon, dims = 4, 7
    return store.types[CHUNK](
        header=header,
        chunk_id=index,
        embodiment="libero_franka",
        action_mode="delta_eef",
        action_names=[f"a{i}" for i in range(dims)],
        dt=0.1,
        horizon=horizon,
        action_dim=dims,
        actions=rng.normal(0, 1, horizon * dims).astype(np.float32),
        execute_steps=2,
        inference_latency=0.05,
        observation_age=0.01,
        model_id="tiny-0123",
        instruction="go",
    )


def sample(store: Typestore, index: int, *, seed: int = 0, image_size: tuple[int, int] = (12, 16)) -> Sample:
    """Message ``index`` of a recording that cycles through TOPICS, 10 ms apart in log time;
    header stamps lag the log time by 3 ms."""
    topic = list(TOPICS)[index % len(TOPICS)]
    msgtype = TOPICS[topic]
    log_time = START_NS + index * PERIOD_NS
    stamp = None if msgtype == STRING else log_time - 3_000_000
    rng = np.random.default_rng([seed, index])
    message = build_message(store, msgtype, index, stamp or log_time, rng, image_size)
    return Sample(topic, msgtype, log_time, stamp, bytes(store.serialize_cdr(message, msgtype)))


def recording(
    store: Typestore, count: int, *, seed: int = 0, image_size: tuple[int, int] = (12, 16)
) -> list[Sample]:
    return [sample(store, i, seed=seed, image_size=image_size) for i in range(count)]
