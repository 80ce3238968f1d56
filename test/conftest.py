"""Test-wide isolation: every run gets loopback-only discovery, a random ROS_DOMAIN_ID and a
temporary ROS_LOG_DIR, set before any test imports rclpy so child processes inherit them too."""

import os

from lightwam_ros.tools.launch.ros_env import isolated_ros_env

os.environ.pop("ROS_DOMAIN_ID", None)
os.environ.pop("ROS_LOG_DIR", None)
os.environ.update(isolated_ros_env())
