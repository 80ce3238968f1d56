"""What the nodes' parameter parsers share: declaring a parameter with its description, checks
that stop start-up with the bad parameter's name, and the runtime-change gate."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

# name -> (check(value) -> "" or the reason it is refused, apply(value))
RuntimeParameters = Mapping[str, tuple[Callable[[Any], str], Callable[[Any], None]]]


def declare_value(node: Node, name: str, default: Any, description: str, dynamic: bool = False) -> Any:
    """Declare ``name`` on ``node`` with its description (``ros2 param describe`` shows it) and
    return its value; ``dynamic`` lets an integer default accept a double (or vice versa)."""
    return node.declare_parameter(
        name, default, ParameterDescriptor(description=description, dynamic_typing=dynamic)
    ).value


def finite_number(name: str, value: Any) -> float:
    """``value`` as a float; ValueError naming the parameter when it is not a finite number
    (bools are refused: YAML's ``true`` must not become a rate of 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"parameter {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"parameter {name} must be finite, got {value}")
    return value


def allow_runtime_changes(node: Node, changeable: RuntimeParameters) -> None:
    """Let the standard parameter services (``ros2 param set``) change only the parameters in
    ``changeable``, each after its check; a change of any other parameter is refused with the
    reason.  A request is all or nothing: nothing is applied unless every change passes.
    Register it after declaring the parameters (declaring goes through the same callbacks)."""

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        reasons = []
        for parameter in parameters:
            if parameter.name not in changeable:
                reasons.append(
                    f"parameter {parameter.name} is read at start only: restart the "
                    f"node to change it (changeable now: {sorted(changeable)})"
                )
                continue
            reason = changeable[parameter.name][0](parameter.value)
            if reason:
                reasons.append(f"parameter {parameter.name}: {reason}")
        if reasons:
            return SetParametersResult(successful=False, reason="; ".join(reasons))
        for parameter in parameters:
            changeable[parameter.name][1](parameter.value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
