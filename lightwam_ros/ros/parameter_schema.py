"""A node's parameters as one declarative table: name, type, default, bounds or choices,
description, and whether it may change at run time.  The node declares and validates from the
table (``parameter_checks``), refuses run-time changes of the rest from it, and the parameter
reference in docs/parameters.md is written from it.

A name may hold one ``<key>`` placeholder: a family with one parameter per key, e.g.
``cameras.<role>.topic`` per camera role or ``joint_limits.<joint>.max_velocity`` per joint
(keyed by name, as ros2_control's joint limits).  No ROS imports: the launch planner and the
run's topic list read the same defaults.
"""

from __future__ import annotations

import array
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Parameter types, as ROS 2 names them; bool_or_string: a switch that may also name a mode.
TYPES = (
    "bool",
    "integer",
    "double",
    "string",
    "bool_or_string",
    "string_array",
    "integer_array",
    "double_array",
)
_PLACEHOLDER = re.compile(r"<(\w+)>")
_PLACEHOLDER_WORD = re.compile(r"((?:[\w/]|\.(?=[\w<]))*<\w+>(?:[\w/]|\.(?=\w))*)")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter (or one family of them).  ``default`` None: unset (arrays only); a string
    default may hold the family's placeholder (``camera/<role>/image_raw``)."""

    name: str
    type: str
    default: Any
    description: str
    choices: tuple[Any, ...] = ()  # allowed values (of every entry, for arrays; then distinct)
    minimum: float | None = None
    exclusive_minimum: bool = False  # > minimum instead of >=
    maximum: float | None = None
    length: int | None = None  # arrays: exactly this many entries
    nonempty: bool = False  # strings: must name something (a topic, a service)
    runtime: bool = False  # changeable at run time (ros2 param set)
    default_text: str = ""  # the default as documented, when a node derives it (embodiment)

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"parameter {self.name}: unknown type {self.type!r}; types: {list(TYPES)}")
        if len(_PLACEHOLDER.findall(self.name)) > 1:
            raise ValueError(f"parameter {self.name}: at most one <key> placeholder")

    @property
    def family(self) -> str | None:
        """The placeholder's key kind (``role``, ``arm``, ``joint``), or None."""
        found = _PLACEHOLDER.search(self.name)
        return found.group(1) if found else None

    def named(self, key: str) -> str:
        """The parameter name of family member ``key``."""
        return _PLACEHOLDER.sub(key, self.name)

    def default_of(self, key: str | None) -> Any:
        if key is not None and isinstance(self.default, str):
            return _PLACEHOLDER.sub(key, self.default)
        return self.default

    def key_of(self, name: str) -> str | None:
        """The key of family member ``name`` (None: not a member of this family)."""
        if self.family is None:
            return None
        head, tail = _PLACEHOLDER.split(self.name, maxsplit=1)[0::2]
        if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
            key = name[len(head) : len(name) - len(tail)]
            return key if "." not in key else None
        return None

    def checked(self, name: str, value: Any) -> Any:
        """``value`` converted to the parameter's type (numbers to float, arrays to tuples,
        strings stripped); ValueError naming ``name`` when it does not fit the table."""
        if value is None and self.default is None and self.type.endswith("_array"):
            return None
        if self.type.endswith("_array"):
            if not isinstance(value, (list, tuple, array.array)):
                raise ValueError(f"parameter {name} must be a list, got {value!r}")
            items = tuple(self._scalar(name, item, self.type[: -len("_array")]) for item in value)
            if self.length is not None and len(items) != self.length:
                raise ValueError(f"parameter {name} must have {self.length} entries, got {list(items)}")
            if self.choices and (
                any(item not in self.choices for item in items) or len(set(items)) != len(items)
            ):
                raise ValueError(
                    f"parameter {name} must list distinct entries of {list(self.choices)}, got {list(items)}"
                )
            return items
        converted = self._scalar(name, value, self.type)
        if self.choices and not isinstance(converted, bool) and converted not in self.choices:
            raise ValueError(f"parameter {name} must be one of {list(self.choices)}, got {converted!r}")
        if self.nonempty and not converted:
            raise ValueError(f"parameter {name} must name a topic or service")
        return converted

    def _scalar(self, name: str, value: Any, kind: str) -> Any:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "bool_or_string" and isinstance(value, (bool, str)):
            return value.strip() if isinstance(value, str) else value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "string" and isinstance(value, str):
            return value.strip()
        if kind == "integer" and number and float(value).is_integer():
            return self._bounded(name, int(value))
        if kind == "double" and number and math.isfinite(value):
            return self._bounded(name, float(value))
        raise ValueError(f"parameter {name} must be {_TYPE_WORDS[kind]}, got {value!r}")

    def _bounded(self, name: str, number: float) -> Any:
        low, high = self.minimum, self.maximum
        if (low is not None and (number < low or (self.exclusive_minimum and number == low))) or (
            high is not None and number > high
        ):
            raise ValueError(f"parameter {name} must be {self.bounds_text()}, got {number}")
        return number

    def bounds_text(self) -> str:
        """The allowed range in words: ``> 0``, ``>= 0``, ``in [0, 1]``; "" when unbounded."""
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"in [{low:g}, {high:g}]"
        if low is not None:
            return f"{'>' if self.exclusive_minimum else '>='} {low:g}"
        return f"<= {high:g}" if high is not None else ""

    def constraints_text(self) -> str:
        """Bounds, choices and length in words (``ros2 param describe`` and the reference)."""
        parts = [self.bounds_text()] if self.bounds_text() else []
        if self.choices:
            parts.append(f"{'any of' if self.type.endswith('_array') else 'one of'} {list(self.choices)}")
        if self.length is not None:
            parts.append(f"{self.length} entries")
        if self.nonempty:
            parts.append("not empty")
        return "; ".join(parts)


_TYPE_WORDS = {
    "bool": "true or false",
    "integer": "an integer",
    "double": "a finite number",
    "string": "a string",
    "bool_or_string": "true, false or a string",
}


@dataclass(frozen=True)
class NodeSchema:
    """Every parameter one node declares, in the order it declares them."""

    node_name: str
    summary: str
    parameters: tuple[ParameterSpec, ...]

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.parameters]
        doubled = sorted({name for name in names if names.count(name) > 1})
        if doubled:
            raise ValueError(f"{self.node_name}: parameters {doubled} listed twice")

    def spec(self, name: str) -> ParameterSpec:
        """The entry of ``name`` (a plain name, a family pattern or a family member)."""
        found = self.find(name)
        if found is None:
            raise KeyError(f"{self.node_name} declares no parameter {name}")
        return found

    def find(self, name: str) -> ParameterSpec | None:
        for spec in self.parameters:
            if spec.name == name or spec.key_of(name) is not None:
                return spec
        return None

    def runtime_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.parameters if spec.runtime)

    def defaults(self) -> dict[str, Any]:
        """The plain parameters' defaults (those that have one), by name."""
        return {
            spec.name: spec.default
            for spec in self.parameters
            if spec.family is None and spec.default is not None
        }

    def effective(
        self, values: Mapping[str, Any], keys: Mapping[str, Sequence[str]] | None = None
    ) -> dict[str, Any]:
        """``values`` (e.g. a parameter file's) over the defaults: what the node will use; with
        ``keys``, also the defaults of those families' members (those that have one)."""
        defaults = self.defaults()
        for spec in self.parameters:
            for key in (keys or {}).get(spec.family or "", ()):
                if spec.default_of(key) is not None:
                    defaults[spec.named(key)] = spec.default_of(key)
        return {**defaults, **values}


# Declared by every managed (lifecycle) node when it is built, before configure reads the rest.
AUTOSTART = ParameterSpec(
    "autostart",
    "bool",
    True,
    "Configure and activate at start (true: a node run on its own, lightwam-bringup); false: wait in "
    "'unconfigured' for lifecycle transitions (ros2 lifecycle set, the launch file).",
)


class ParameterSource(Protocol):
    """Where values come from: a node (declaring each as it is read) or a dict of values."""

    def value(self, name: str, spec: ParameterSpec, default: Any) -> Any: ...

    def given(self) -> Collection[str]:
        """The names set from outside (parameter files, ``-p``, overrides)."""
        ...


class ValueSource:
    """Values from a dict (dotted names, as in a parameter file), the default for the rest:
    settings exactly as the node would read them, without a node (the offline tools)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self._values = dict(values)

    def value(self, name: str, spec: ParameterSpec, default: Any) -> Any:
        return self._values.get(name, default)

    def given(self) -> Collection[str]:
        return self._values.keys()


def read_parameters(
    source: ParameterSource,
    schema: NodeSchema,
    keys: Mapping[str, Sequence[str]] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Checked values of ``schema``'s plain parameters (``keys`` None), or of the families in
    ``keys`` (one parameter per key), by name; ``defaults`` replaces a default a node derives
    (by parameter name).  ValueError names the first bad value, and a family member given with
    a key the node does not have (a misspelt joint or camera role) or a name it does not know."""
    values: dict[str, Any] = {}
    for spec in schema.parameters:
        if (spec.family is None) != (keys is None) or (keys is not None and spec.family not in keys):
            continue
        for key in (None,) if keys is None or spec.family is None else keys[spec.family]:
            name = spec.name if key is None else spec.named(key)
            default = (defaults or {}).get(name, spec.default_of(key))
            values[name] = spec.checked(name, source.value(name, spec, default))
    if keys is not None:
        _refuse_unknown_members(source.given(), schema, keys)
    return values


def _refuse_unknown_members(
    given: Collection[str], schema: NodeSchema, keys: Mapping[str, Sequence[str]]
) -> None:
    families = [spec for spec in schema.parameters if spec.family in keys]
    heads = {spec.name.split("<", 1)[0] for spec in families}
    for name in sorted(given):
        if not any(name.startswith(head) for head in heads):
            continue
        members = [(spec, spec.key_of(name)) for spec in families if spec.key_of(name) is not None]
        if not members:
            patterns = sorted(spec.name for spec in families if name.startswith(spec.name.split("<", 1)[0]))
            raise ValueError(f"parameter {name}: unknown name; the node declares {patterns}")
        spec, key = members[0]
        assert spec.family is not None and key is not None
        if key not in keys[spec.family]:
            raise ValueError(
                f"parameter {name}: unknown {spec.family} {key!r} (known: {list(keys[spec.family])})"
            )


def default_text(spec: ParameterSpec) -> str:
    """The default as the reference shows it."""
    if spec.default_text:
        return spec.default_text
    if spec.default is None:
        return "unset"
    if isinstance(spec.default, bool):
        text = "true" if spec.default else "false"
    elif isinstance(spec.default, str):
        text = f'"{spec.default}"'
    elif isinstance(spec.default, (list, tuple)):
        text = "[" + ", ".join(str(item) for item in spec.default) + "]"
    else:
        text = f"{spec.default:g}" if isinstance(spec.default, float) else str(spec.default)
    return f"`{text}`"


def schema_markdown(schema: NodeSchema) -> str:
    """The node's section of the parameter reference: one row per parameter (or family)."""
    lines = [
        f"## {schema.node_name}",
        "",
        schema.summary,
        "",
        "| name | type | default | run time | description |",
        "|---|---|---|---|---|",
    ]
    for spec in schema.parameters:
        constraints = spec.constraints_text()
        text = spec.description + (f" ({constraints})" if constraints else "")
        text = _PLACEHOLDER_WORD.sub(r"`\1`", text)  # as code, not as an HTML tag
        cells = [
            f"`{spec.name}`",
            spec.type,
            default_text(spec),
            "yes" if spec.runtime else "no",
            text,
        ]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"
