"""The RViz configuration of a run, derived from its embodiment: the shipped
``config/lightwam.rviz`` (robot model, TF, the executor's planned path) with its per-robot camera
groups replaced by one image display per camera of the run's embodiment, on the topics the policy
really reads, and the first arm's base frame as the fixed frame.  A new embodiment so needs no
RViz edit.  No ROS imports.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from lightwam_ros.policy.embodiment import default_camera_topic, load_embodiment
from lightwam_ros.ros.node_registry import POLICY
from lightwam_ros.ros.param_files import read_params, rviz_config
from lightwam_ros.ros.run_topics import absolute_topic
from lightwam_ros.tools.launch.bringup_plan import BringupPlan

_IMAGE = "rviz_default_plugins/Image"
_GROUP = "rviz_common/Group"
CAMERA_GROUP_PREFIX = "Cameras"


def policy_camera_topics(plan: BringupPlan, embodiment: str) -> dict[str, str]:
    """Camera role -> the image topic the plan's policy reads (its file plus overrides); RViz
    picks the transport itself."""
    node = plan.node(POLICY)
    values: dict[str, Any] = {} if node.params_file is None else read_params(node.params_file, node.node_name)
    values.update(node.overrides)
    return {
        camera.role: absolute_topic(
            values.get(f"cameras.{camera.role}.topic") or default_camera_topic(camera.role)
        )
        for camera in load_embodiment(embodiment).canvas.cameras
    }


def rviz_document(embodiment: str, camera_topics: dict[str, str]) -> dict[str, Any]:
    """The shipped RViz configuration with the embodiment's cameras (``camera_topics``)."""
    document = yaml.safe_load(rviz_config().read_text())
    manager = document["Visualization Manager"]
    displays = [
        display
        for display in manager["Displays"]
        if not (
            display.get("Class") == _GROUP and str(display.get("Name", "")).startswith(CAMERA_GROUP_PREFIX)
        )
    ]
    displays.append(
        {
            "Class": _GROUP,
            "Enabled": True,
            "Name": f"{CAMERA_GROUP_PREFIX} ({embodiment})",
            "Displays": [_image_display(role, topic) for role, topic in camera_topics.items()],
        }
    )
    manager["Displays"] = displays
    base_frame = next((arm.base_frame for arm in load_embodiment(embodiment).arms if arm.base_frame), None)
    if base_frame:
        manager["Global Options"]["Fixed Frame"] = base_frame
    return document


def write_rviz_config(plan: BringupPlan, embodiment: str, folder: Path | None = None) -> Path:
    """Write the run's RViz configuration into ``folder`` (default: a new temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix="lightwam-rviz-")) if folder is None else folder
    path = folder / f"lightwam_{embodiment}.rviz"
    document = rviz_document(embodiment, policy_camera_topics(plan, embodiment))
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _image_display(role: str, topic: str) -> dict[str, Any]:
    # Best effort matches every camera driver, reliable or not.
    return {
        "Class": _IMAGE,
        "Enabled": True,
        "Max Value": 1,
        "Median window": 5,
        "Min Value": 0,
        "Name": f"{role} camera",
        "Normalize Range": True,
        "Topic": {
            "Depth": 5,
            "Durability Policy": "Volatile",
            "Filter size": 10,
            "History Policy": "Keep Last",
            "Reliability Policy": "Best Effort",
            "Value": topic,
        },
        "Value": True,
    }
