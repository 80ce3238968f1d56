"""Message classes by type name (``sensor_msgs/msg/Image``), for the nodes that move serialized
messages of any type - the recorder and the bag player - without knowing them in advance
(rosidl_runtime_py, which ROS has for this, is not installed here)."""

from __future__ import annotations

import importlib


def message_class(msgtype: str) -> type:
    """The Python class of ``package/msg/Name``; ValueError saying why when there is none."""
    parts = msgtype.split("/")
    if len(parts) != 3 or parts[1] != "msg" or not all(parts):
        raise ValueError(f"{msgtype!r} is not a message type name (package/msg/Name)")
    package, _, name = parts
    try:
        module = importlib.import_module(f"{package}.msg")
    except ImportError as error:
        raise ValueError(f"message type {msgtype}: package {package} is not installed ({error})") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"message type {msgtype}: {package} has no message {name}")
    return cls
