"""Test-wide isolation: every run gets loopback-only discovery, a random ROS_DOMAIN_ID and a
temporary ROS_LOG_DIR, set before any test imports rclpy so child processes inherit them too."""

import os
from pathlib import Path

import pytest

from lightwam_ros.tools.launch.ros_env import isolated_ros_env

os.environ.pop("ROS_DOMAIN_ID", None)
os.environ.pop("ROS_LOG_DIR", None)
os.environ.update(isolated_ros_env())


@pytest.fixture
def learned_package() -> Path:
    """The learned small package the repository ships (the README's main job runs it)."""
    return Path(__file__).resolve().parents[1] / "packages" / "aloha_sim"


@pytest.fixture
def learned_package_episode(learned_package: Path) -> list[str]:
    """An evaluation tool's arguments for one 4 s episode of the committed learned package: long
    enough for the scripted approach (about 2 s) and short enough for the suite."""
    return [
        "--checkpoint",
        str(learned_package / "model.safetensors"),
        "--instructions",
        str(learned_package / "instructions.safetensors"),
        "--episodes",
        "1",
        "--episode-seconds",
        "4",
    ]
