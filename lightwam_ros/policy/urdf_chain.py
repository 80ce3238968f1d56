"""URDF-style serial chains: the joints from an arm's base link to its tip, as URDF describes them.

An embodiment's ``kinematics`` section lists them inline (``convention: urdf`` with ``chain``) or
names a URDF file (``urdf``), so a new arm's kinematics are its robot description, not code.  A
URDF file is read with the standard library's XML parser and walked from the tip link back to the
base link by the joints' parent/child links: finger joints, mimic joints and other branches off
that path are ignored.  URDF's conventions hold: a joint's ``origin`` is its frame in the parent
link's frame (``xyz``, then ``rpy`` as fixed-axis X, Y, Z rotations, ``Rz(yaw) Ry(pitch) Rx(roll)``),
and a moving joint turns about (revolute, continuous) or slides along (prismatic) its unit
``axis`` in that frame; both default as in URDF (identity origin, axis x).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOINT_TYPES = ("revolute", "continuous", "prismatic", "fixed")
Vector3 = tuple[float, float, float]


class UrdfChainError(ValueError):
    """A chain description that cannot give an arm's kinematics; the message names the problem."""


@dataclass(frozen=True)
class Origin:
    """A frame in its parent's frame: translation (m), then fixed-axis roll, pitch, yaw (rad)."""

    xyz: Vector3 = (0.0, 0.0, 0.0)
    rpy: Vector3 = (0.0, 0.0, 0.0)


IDENTITY = Origin()


@dataclass(frozen=True)
class UrdfJoint:
    name: str
    type: str  # one of JOINT_TYPES
    origin: Origin = IDENTITY
    axis: Vector3 = (1.0, 0.0, 0.0)  # unit length

    @property
    def moving(self) -> bool:
        return self.type != "fixed"


# --------------------------------------------------------------------------------------------
# Mappings (the embodiment YAML's inline chain, a kinematics file)
# --------------------------------------------------------------------------------------------


def origin_from_mapping(value: Any, where: str) -> Origin:
    """``{xyz: [..], rpy: [..]}``, either key optional (zeros)."""
    if not isinstance(value, Mapping):
        raise UrdfChainError(f"{where}: expected a mapping with xyz and rpy, got {value!r}")
    _check_keys(value, (), ("xyz", "rpy"), where)
    return Origin(
        xyz=_vector3(value.get("xyz", (0.0, 0.0, 0.0)), f"{where}.xyz"),
        rpy=_vector3(value.get("rpy", (0.0, 0.0, 0.0)), f"{where}.rpy"),
    )


def joint_from_mapping(value: Any, where: str) -> UrdfJoint:
    """``{name, type, origin: {xyz, rpy}, axis}``: ``type`` required, ``name`` for a moving joint."""
    if not isinstance(value, Mapping):
        raise UrdfChainError(f"{where}: expected a joint mapping, got {value!r}")
    _check_keys(value, ("type",), ("name", "origin", "axis"), where)
    kind = value["type"]
    if kind not in JOINT_TYPES:
        raise UrdfChainError(f"{where}.type: unknown joint type {kind!r}; supported: {list(JOINT_TYPES)}")
    name = value.get("name", "")
    if not isinstance(name, str) or (kind != "fixed" and not name.strip()):
        raise UrdfChainError(f"{where}.name: a {kind} joint needs a name (its arm joint), got {name!r}")
    origin = origin_from_mapping(value.get("origin", {}), f"{where}.origin")
    return UrdfJoint(name, kind, origin, _unit(value.get("axis", (1.0, 0.0, 0.0)), f"{where}.axis"))


def origin_to_mapping(origin: Origin) -> dict[str, list[float]]:
    return {"xyz": list(origin.xyz), "rpy": list(origin.rpy)}


def joint_to_mapping(joint: UrdfJoint) -> dict[str, Any]:
    return {
        "name": joint.name,
        "type": joint.type,
        "origin": origin_to_mapping(joint.origin),
        "axis": list(joint.axis),
    }


# --------------------------------------------------------------------------------------------
# URDF files
# --------------------------------------------------------------------------------------------


def read_urdf_chain(path: Path, base_link: str, tip_link: str) -> tuple[UrdfJoint, ...]:
    """The joints of a URDF file from ``base_link`` to ``tip_link``, base first."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        raise UrdfChainError(f"{path}: cannot read the URDF: {error}") from None
    return urdf_chain(root, base_link, tip_link, str(path))


def urdf_chain(robot: ET.Element, base_link: str, tip_link: str, where: str) -> tuple[UrdfJoint, ...]:
    """The joints of a parsed ``<robot>`` from ``base_link`` to ``tip_link``, base first."""
    if robot.tag != "robot":
        raise UrdfChainError(f"{where}: the root element is <{robot.tag}>, not <robot>")
    links = [link.get("name") for link in robot.findall("link")]
    for role, link in (("base_link", base_link), ("tip_link", tip_link)):
        if link not in links:
            raise UrdfChainError(f"{where}: {role} {link!r} is not a link of the URDF (links: {links})")
    by_child: dict[str, ET.Element] = {}
    for joint_element in robot.findall("joint"):
        by_child[_attribute(joint_element, "child", "link", where)] = joint_element
    chain: list[UrdfJoint] = []
    link = tip_link
    while link != base_link:
        element = by_child.get(link)
        if element is None:
            raise UrdfChainError(
                f"{where}: the chain from tip_link {tip_link!r} to base_link {base_link!r} is broken at "
                f"link {link!r}: no joint has it as its child"
            )
        if len(chain) == len(by_child):
            raise UrdfChainError(f"{where}: the joints above tip_link {tip_link!r} form a loop")
        chain.append(_element_joint(element, where))
        link = _attribute(element, "parent", "link", where)
    if not any(joint.moving for joint in chain):
        raise UrdfChainError(f"{where}: no moving joint between {base_link!r} and {tip_link!r}")
    return tuple(reversed(chain))


def _element_joint(element: ET.Element, where: str) -> UrdfJoint:
    name = element.get("name", "")
    where = f"{where}: joint {name!r}"
    if element.find("mimic") is not None:
        raise UrdfChainError(f"{where} mimics another joint; a mimic joint cannot lie on an arm's chain")
    origin = element.find("origin")
    axis = element.find("axis")
    return joint_from_mapping(
        {
            "name": name,
            "type": element.get("type"),
            "origin": {
                key: _floats(origin.get(key, "0 0 0"), f"{where} origin {key}") for key in ("xyz", "rpy")
            }
            if origin is not None
            else {},
            "axis": _floats(axis.get("xyz", "1 0 0"), f"{where} axis") if axis is not None else (1, 0, 0),
        },
        where,
    )


def _attribute(element: ET.Element, tag: str, key: str, where: str) -> str:
    child = element.find(tag)
    value = child.get(key) if child is not None else None
    if not value:
        raise UrdfChainError(f"{where}: joint {element.get('name')!r} has no <{tag} {key}=...>")
    return value


def _floats(text: str, where: str) -> list[float]:
    try:
        return [float(word) for word in text.split()]
    except ValueError:
        raise UrdfChainError(f"{where}: expected three numbers, got {text!r}") from None


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------


def _check_keys(value: Mapping, required: tuple[str, ...], optional: tuple[str, ...], where: str) -> None:
    missing = [key for key in required if key not in value]
    unknown = [key for key in value if key not in required and key not in optional]
    if missing or unknown:
        raise UrdfChainError(
            f"{where}: missing {missing}, unknown {unknown}; allowed: {sorted(required + optional)}"
        )


def _vector3(value: Any, where: str) -> Vector3:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise UrdfChainError(f"{where}: expected three numbers, got {value!r}")
    for item in value:
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
        if not (numeric and math.isfinite(item)):
            raise UrdfChainError(f"{where}: expected three finite numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _unit(value: Any, where: str) -> Vector3:
    x, y, z = _vector3(value, where)
    norm = math.sqrt(x * x + y * y + z * z)
    if norm < 1e-9:
        raise UrdfChainError(f"{where}: a joint axis must not be zero, got {value!r}")
    return (x / norm, y / norm, z / norm)
