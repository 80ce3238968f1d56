"""The house's layering holds: lint-imports checks the contracts in .importlinter (each room
imports only the rooms below it, the tools' sub-packages likewise, the core never imports ROS,
offline analysis never imports the nodes), and no core room imports the generated messages (not part
of the import graph lint-imports builds: rosidl installs them elsewhere)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORE_ROOMS = ("model", "policy", "control", "sim", "bags", "train")


def test_import_contracts_are_kept():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_the_core_rooms_do_not_import_the_generated_messages():
    offenders = [
        str(path.relative_to(ROOT))
        for room in CORE_ROOMS
        for path in sorted((ROOT / "lightwam_ros" / room).rglob("*.py"))
        if any(
            name == "lightwam_ros.msg" or name.startswith("lightwam_ros.msg.")
            for name in _imported_modules(path)
        )
    ]
    assert offenders == []
