"""Environment for ROS 2 processes that must not talk beyond this machine or to other runs."""

from __future__ import annotations

import os
import random
import tempfile


def isolated_ros_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Loopback-only discovery, a random domain id and a private log folder.

    Kilted ignores ROS_LOCALHOST_ONLY; ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST keeps Fast DDS
    discovery on loopback. A caller's explicit ROS_DOMAIN_ID / ROS_LOG_DIR are kept.
    """
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    env.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="lightwam_roslog_"))
    return env
