"""``sensor_msgs/JointState`` to and from position vectors in an embodiment's joint order.

Joints are matched by name, never by index: drivers publish joints in their own order, often with
extra joints (fingers, a second arm) the policy does not use.  The name-to-column map depends only
on the message's name list, which a driver keeps fixed, so it is computed once per distinct list
and reused; a 500 Hz callback then costs one dict lookup, one gather and one finiteness check.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import JointState

from lightwam_ros.ros.log_text import quoted_names
from lightwam_ros.ros.stamps import StampLike, to_stamp

_MAX_CACHED_LAYOUTS = 16  # distinct name lists remembered; more means names change per message


class JointStateError(ValueError):
    """A JointState message cannot provide the expected joints; the message names them."""


def _check_names(names: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(names)
    if not all(isinstance(name, str) and name for name in names):
        raise JointStateError(f"{what}: joint names must be non-empty strings, got {quoted_names(names)}")
    duplicates = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicates:
        raise JointStateError(f"{what}: duplicate joint names {quoted_names(duplicates)}")
    return names


class JointStateMatcher:
    """Extracts the positions of ``expected_names``, in that order, from JointState messages."""

    def __init__(self, expected_names: Sequence[str]) -> None:
        self.expected_names = _check_names(expected_names, "expected joints")
        if not self.expected_names:
            raise JointStateError("expected joints: the list is empty")
        self._columns: dict[tuple[str, ...], np.ndarray] = {}

    def extract(self, msg: JointState) -> np.ndarray:
        """Positions (float64, expected order) of the expected joints; extra joints are ignored."""
        names = tuple(msg.name)
        if len(names) != len(msg.position):
            raise JointStateError(f"JointState has {len(names)} names but {len(msg.position)} positions")
        columns = self._columns.get(names)
        if columns is None:
            columns = self._layout(names)
        positions = np.asarray(msg.position, dtype=np.float64)[columns]
        if not np.isfinite(positions).all():
            bad = [
                f"{self.expected_names[i]}={positions[i]}" for i in np.flatnonzero(~np.isfinite(positions))
            ]
            raise JointStateError(f"JointState has non-finite positions: {', '.join(bad)}")
        return positions

    def _layout(self, names: tuple[str, ...]) -> np.ndarray:
        _check_names(names, "JointState")
        index = {name: i for i, name in enumerate(names)}
        missing = [name for name in self.expected_names if name not in index]
        if missing:
            raise JointStateError(f"JointState lacks joints {missing} (it has {quoted_names(names)})")
        columns = np.array([index[name] for name in self.expected_names], dtype=np.intp)
        if len(self._columns) >= _MAX_CACHED_LAYOUTS:
            self._columns.clear()
        self._columns[names] = columns
        return columns


def make_joint_state(
    names: Sequence[str],
    positions: Sequence[float],
    stamp: StampLike,
    velocities: Sequence[float] | None = None,
) -> JointState:
    """A JointState with finite positions (and optional velocities) for the named joints."""
    names = _check_names(names, "make_joint_state")
    msg = JointState()
    msg.position = _joint_vector(positions, len(names), "positions")
    if velocities is not None:
        msg.velocity = _joint_vector(velocities, len(names), "velocities")
    msg.header.stamp = to_stamp(stamp)
    msg.name = list(names)
    return msg


def _joint_vector(values: Sequence[float], count: int, field: str) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float64)
    if vector.shape != (count,):
        raise JointStateError(f"make_joint_state: {count} names but {field} has shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise JointStateError(f"make_joint_state: non-finite {field} {vector.tolist()}")
    return vector
