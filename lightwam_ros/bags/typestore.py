"""The rosbags type store of this project: ROS 2 Kilted's messages plus ``lightwam_ros/msg/*``.

Bags embed the definition of every message type they hold, so the store must know this package's
own messages.  They are read from the ``.msg`` files - the same files rosidl generates the Python
classes from - so a bag written here and one written by ``ros2 bag record`` describe them alike.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "lightwam_ros"
PROJECT_MESSAGES = ("ActionChunk", "PolicyStatus")
BASE_STORE = Stores.ROS2_KILTED


class MessageDefinitionsNotFound(FileNotFoundError):
    """The ``.msg`` files of this package are neither in the source checkout nor installed."""


def msg_search_dirs() -> list[Path]:
    """Where the ``.msg`` files may be: the source checkout's ``msg/`` first, then
    ``<prefix>/share/lightwam_ros/msg`` for every prefix of AMENT_PREFIX_PATH and sys.prefix
    (the virtual environment the messages were generated into)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes.append(sys.prefix)
    source_checkout = Path(__file__).resolve().parents[2] / "msg"
    return [source_checkout, *(Path(p) / "share" / PACKAGE / "msg" for p in prefixes)]


def find_msg_dir() -> Path:
    """The first search directory that holds every project ``.msg`` file."""
    searched = msg_search_dirs()
    for folder in searched:
        if all((folder / f"{name}.msg").is_file() for name in PROJECT_MESSAGES):
            return folder
    wanted = ", ".join(f"{name}.msg" for name in PROJECT_MESSAGES)
    raise MessageDefinitionsNotFound(
        f"cannot find the message definitions of {PACKAGE} ({wanted}); searched: "
        + ", ".join(str(folder) for folder in searched)
        + ". Run from a source checkout or source the workspace that installed the package."
    )


def project_types(msg_dir: Path) -> dict:
    """rosbags type definitions (``Typesdict``) of the project messages in ``msg_dir``."""
    types: dict = {}
    for name in PROJECT_MESSAGES:
        text = (msg_dir / f"{name}.msg").read_text(encoding="utf-8")
        types.update(get_types_from_msg(text, f"{PACKAGE}/msg/{name}"))
    return types


def fresh_project_typestore() -> Typestore:
    """A new, private store (callers may register more types into it)."""
    store = get_typestore(BASE_STORE)
    store.register(project_types(find_msg_dir()))
    return store


@functools.lru_cache(maxsize=1)
def project_typestore() -> Typestore:
    """The shared store; do not register types into it (use ``fresh_project_typestore``)."""
    return fresh_project_typestore()
