"""What the nodes' parameter parsers share: declaring a parameter with its description, and
checks that stop start-up with the bad parameter's name."""
from __future__ import annotations

import math
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node


def declare_value(node: Node, name: str, default: Any, description: str,
                  dynamic: bool = False) -> Any:
    """Declare ``name`` on ``node`` with its description (``ros2 param describe`` shows it) and
    return its value; ``dynamic`` lets an integer default accept a double (or vice versa)."""
    return node.declare_parameter(name, default, ParameterDescriptor(
        description=description, dynamic_typing=dynamic)).value


def finite_number(name: str, value: Any) -> float:
    """``value`` as a float; ValueError naming the parameter when it is not a finite number
    (bools are refused: YAML's ``true`` must not become a rate of 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"parameter {name} must be finite, got {value}")
    return value
