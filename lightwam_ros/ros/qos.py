"""The QoS profiles of the package's topics, in one place, so that a publisher and its readers in
other nodes and tools are chosen together and cannot drift apart.

A reliable reader matches only reliable writers; a best-effort reader matches both.  A
transient-local (latched) reader matches only latched writers; a volatile reader matches both,
but gets no message sent before it joined.  QoS profiles are mutable: never modify these shared
ones, build a new one with ``profile``.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data


def profile(depth: int, *, reliable: bool = True, latched: bool = False) -> QoSProfile:
    """A keep-last profile of ``depth`` messages; the other policies at the ROS defaults."""
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def is_reliable(qos: QoSProfile) -> bool:
    return qos.reliability == ReliabilityPolicy.RELIABLE


def is_latched(qos: QoSProfile) -> bool:
    return qos.durability == DurabilityPolicy.TRANSIENT_LOCAL


# Chunks, chunk requests, commands, instructions read, diagnostics, e-stop: the ROS default, so
# that any reader or writer of these topics (ros2 topic, a controller) matches without options.
COMMANDS = profile(10)
# Statuses and instructions published: the last one kept for nodes and tools that join later.
LATCHED = profile(1, latched=True)
# The simulated robots' clock, joint states, images and poses: reliable, so that the policy's
# opt-in reliable camera readers match them as well as its best-effort ones.
SIMULATED_SENSORS = profile(10)
# The policy's camera readers: best effort (the default) matches any driver; 10 frames, so that
# a callback thread held up by inference (the GIL) loses none of the last moments.
SENSOR_CAMERA = profile(10, reliable=False)
# A camera opted into reliable delivery: loses no frame of a burst of large images, but matches
# reliable publishers only.
RELIABLE_CAMERA = profile(10)
# The policy's joint-state and pose readers: best effort; 100 samples, as the sensor-data
# profile's 5 would drop joint states after 50 ms at 100 Hz while inference holds the GIL.
SENSOR_STATE = profile(100, reliable=False)
# The executor's joint-state reader: best effort, the sensor-data profile (depth 5), since the
# executor acts on the newest state only.
LATEST_STATE = qos_profile_sensor_data
# Tools that watch a run (evaluation, bring-up checks): deep reliable queues for the commands
# and joint states, which they must not drop between two spins.
OBSERVER = profile(200)
