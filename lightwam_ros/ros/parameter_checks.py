"""A node's parameter schema on a ROS node: each parameter declared with its description and
constraints as it is read (``ros2 param describe`` shows them), and the run-time-change gate
that lets the standard parameter services change only what the schema marks changeable."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from lightwam_ros.ros.parameter_schema import NodeSchema, ParameterSpec

# name -> (extra check(value) -> "" or the reason it is refused, or None; apply(value))
RuntimeHandlers = Mapping[str, tuple[Callable[[Any], str] | None, Callable[[Any], None]]]

_UNSET_TYPES = {
    "string_array": Parameter.Type.STRING_ARRAY,
    "integer_array": Parameter.Type.INTEGER_ARRAY,
    "double_array": Parameter.Type.DOUBLE_ARRAY,
}


class NodeSource:
    """Reads parameters from ``node``, declaring each with its schema entry."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def value(self, name: str, spec: ParameterSpec, default: Any) -> Any:
        descriptor = ParameterDescriptor(
            description=spec.description,
            additional_constraints=spec.constraints_text(),
            # A double also accepts an integer (-p control_rate:=500), a switch also a mode name.
            dynamic_typing=spec.type in ("double", "bool_or_string"),
        )
        if default is None:
            return self._node.declare_parameter(name, _UNSET_TYPES[spec.type], descriptor).value
        if spec.type == "double":
            default = float(default)
        elif spec.type.endswith("_array"):
            default = list(default)
        return self._node.declare_parameter(name, default, descriptor).value

    def given(self) -> Collection[str]:
        # Parameter files, -p and overrides: rclpy keeps them on the node, with no public getter.
        return self._node._parameter_overrides.keys()


def allow_runtime_changes(node: Node, schema: NodeSchema, handlers: RuntimeHandlers) -> None:
    """Let the standard parameter services (``ros2 param set``) change the parameters the
    schema marks changeable (``handlers`` applies each, after the schema's check and its own);
    a change of any other parameter is refused with the reason.  A request is all or nothing:
    nothing is applied unless every change passes.  Register it after declaring the parameters
    (declaring goes through the same callbacks)."""
    changeable = schema.runtime_names()
    if set(handlers) != set(changeable):
        raise ValueError(
            f"{schema.node_name}: handlers for {sorted(handlers)}, schema changeable {changeable}"
        )

    def on_set(parameters: list[Parameter]) -> SetParametersResult:
        reasons, accepted = [], []
        for parameter in parameters:
            if parameter.name not in changeable:
                reasons.append(
                    f"parameter {parameter.name} is read at start only: restart the "
                    f"node to change it (changeable now: {sorted(changeable)})"
                )
                continue
            try:
                value = schema.spec(parameter.name).checked(parameter.name, parameter.value)
            except ValueError as error:
                reasons.append(str(error))
                continue
            check, _ = handlers[parameter.name]
            reason = check(value) if check is not None else ""
            if reason:
                reasons.append(f"parameter {parameter.name}: {reason}")
            accepted.append((parameter.name, value))
        if reasons:
            return SetParametersResult(successful=False, reason="; ".join(reasons))
        for name, value in accepted:
            handlers[name][1](value)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
