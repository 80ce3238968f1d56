"""The package's ROS 2 parameter files (``config/<prefix>_<embodiment>.yaml``): where they are
found (a source checkout, the ament index, a pip prefix) and how a node's values are read from one,
as ROS reads them.  No ROS imports: the launch planner, the recorder and the offline tools share it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lightwam_ros.policy.embodiment import known_embodiments, shipped_embodiments
from lightwam_ros.ros.node_registry import CONFIGURED_ROLES, NODE_KINDS, SIM
from lightwam_ros.sim.catalog import SIMULATORS

PACKAGE = "lightwam_ros"
# The shipped embodiments, discovered from config/embodiments/*.yaml; ``embodiments()`` adds those
# in $LIGHTWAM_EMBODIMENT_PATH.
EMBODIMENTS = tuple(shipped_embodiments())
DEFAULT_EMBODIMENT = "robotwin_aloha"
SIM_EMBODIMENTS = tuple(embodiment for embodiment, _ in SIMULATORS.values())


class ParamFileError(ValueError):
    """A parameter file is missing, unreadable or not shaped as ROS 2 expects; says which."""


def config_dirs() -> list[Path]:
    """Where parameter files may live, best first: a source checkout (an editable install runs
    from it), the ament index (colcon), the Python prefix's share folder (pip)."""
    candidates = []
    source = Path(__file__).resolve().parents[2]
    if (source / "package.xml").is_file():
        candidates.append(source / "config")
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        pass
    else:
        try:
            candidates.append(Path(get_package_share_directory(PACKAGE)) / "config")
        except (PackageNotFoundError, LookupError, OSError):  # OSError: no AMENT_PREFIX_PATH
            pass
    candidates.append(Path(sys.prefix) / "share" / PACKAGE / "config")
    return list(dict.fromkeys(candidates))


def config_file(name: str) -> Path:
    """The first ``config/<name>`` found in ``config_dirs()``."""
    searched = config_dirs()
    for folder in searched:
        if (folder / name).is_file():
            return folder / name
    raise ParamFileError(f"config file {name} not found in {[str(p) for p in searched]}")


def embodiments() -> tuple[str, ...]:
    """Every embodiment a bring-up accepts: the shipped ones and those in
    $LIGHTWAM_EMBODIMENT_PATH (an embodiment is its YAML file; parameter files are optional)."""
    return tuple(known_embodiments())


def params_file(role: str, embodiment: str) -> Path:
    """The parameter file of a node role (policy, executor, robot, sim) for an embodiment."""
    return config_file(_params_file_name(role, embodiment))


def optional_params_file(role: str, embodiment: str) -> Path | None:
    """The role's parameter file for an embodiment, or None when it has none: then the node runs
    on its defaults, which it derives from the embodiment."""
    name = _params_file_name(role, embodiment)
    try:
        return config_file(name)
    except ParamFileError:
        return None


def _params_file_name(role: str, embodiment: str) -> str:
    if role not in CONFIGURED_ROLES:
        raise ParamFileError(f"unknown node role {role!r}; roles: {list(CONFIGURED_ROLES)}")
    if embodiment not in embodiments():
        raise ParamFileError(f"unknown embodiment {embodiment!r}; known: {list(embodiments())}")
    if role == SIM and embodiment not in SIM_EMBODIMENTS:
        raise ParamFileError(
            f"no simulator for embodiment {embodiment!r}; simulated: {list(SIM_EMBODIMENTS)}"
        )
    return f"{NODE_KINDS[role].params_prefix}_{embodiment}.yaml"


def rviz_config() -> Path:
    return config_file("lightwam.rviz")


def read_params(path: Path, node_name: str) -> dict[str, Any]:
    """A node's parameters in a ROS 2 parameter file, nested keys joined with dots (as ROS names
    them).  ``/**`` sections apply to every node; the node's own section wins."""
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ParamFileError(f"cannot read parameter file {path}: {error}") from None
    if not isinstance(document, dict):
        raise ParamFileError(f"parameter file {path}: expected a mapping of node names")
    values: dict[str, Any] = {}
    for key in ("/**", node_name, "/" + node_name):
        section = document.get(key)
        if section is None:
            continue
        parameters = section.get("ros__parameters") if isinstance(section, dict) else None
        if not isinstance(parameters, dict):
            raise ParamFileError(f"parameter file {path}: section {key!r} has no ros__parameters")
        values.update(_flatten(parameters))
    return values


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
