"""rosbag2 bags (MCAP, sqlite3) with the pure-Python ``rosbags`` library; no ROS imports.

``BagWriter`` records from a live system without blocking it and stays recoverable after a
kill -9; ``BagReader`` reads intact bags and recovers damaged ones; ``health`` checks streams.
"""

from lightwam_ros.bags.health import StreamHealth, header_stamp_ns, missing_topics
from lightwam_ros.bags.reader import BagDecodeError, BagError, BagMessage, BagProblem, BagReader
from lightwam_ros.bags.typestore import MessageDefinitionsNotFound, project_typestore
from lightwam_ros.bags.writer import BagWriteError, BagWriter, WriterStats

__all__ = [
    "BagDecodeError",
    "BagError",
    "BagMessage",
    "BagProblem",
    "BagReader",
    "BagWriteError",
    "BagWriter",
    "MessageDefinitionsNotFound",
    "StreamHealth",
    "WriterStats",
    "header_stamp_ns",
    "missing_topics",
    "project_typestore",
]
