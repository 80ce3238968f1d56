"""The node registry is the one list of node kinds: every console script that starts a node is a
registered kind, and each kind's module defines the factory the in-process bring-up calls.  Read
from the sources (no ROS needed)."""

from __future__ import annotations

import ast
from pathlib import Path

from lightwam_ros.ros.node_registry import CONFIGURED_ROLES, NODE_KINDS

ROOT = Path(__file__).resolve().parents[2]


def _console_scripts() -> dict[str, str]:
    lines = (ROOT / "resource" / "executables.txt").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): target.strip() for name, target in pairs}


def test_every_node_script_is_a_registered_kind_and_every_kind_has_its_script():
    scripts = _console_scripts()
    node_scripts = {name for name, target in scripts.items() if target.startswith("lightwam_ros.nodes.")}
    assert node_scripts == {kind.executable for kind in NODE_KINDS.values()}
    for kind in NODE_KINDS.values():
        assert scripts[kind.executable] == f"{kind.module}:main", kind.role


def test_each_kind_module_defines_its_factory_and_names_its_node_from_the_registry():
    for kind in NODE_KINDS.values():
        path = ROOT / Path(*kind.module.split(".")).with_suffix(".py")
        tree = ast.parse(path.read_text())
        functions = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        assert "main" in functions, kind.role
        if kind.factory:
            assert kind.factory in functions, kind.role
        assert f"NODE_KINDS[{kind.role.upper()}].node_name" in path.read_text(), kind.role


def test_node_names_and_parameter_file_prefixes_are_unique():
    kinds = list(NODE_KINDS.values())
    assert len({kind.node_name for kind in kinds}) == len(kinds)
    prefixes = [NODE_KINDS[role].params_prefix for role in CONFIGURED_ROLES]
    assert all(prefixes) and len(set(prefixes)) == len(prefixes)
