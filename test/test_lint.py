"""The package, its tests and the launch file pass ruff (lint and format, ruff.toml), the package
mypy (mypy.ini), so a change that breaks the house style or a type fails the suite, not a
reviewer's eye."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ruff covers the launch files too; mypy does not (launch, launch_ros and lifecycle_msgs ship no
# type information, so it would only report their missing stubs).
TARGETS = ("lightwam_ros", "test", "launch")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    executable = Path(sys.executable).with_name(tool)
    if not executable.exists():
        pytest.skip(f"{tool} is not installed in this environment (requirements/test.txt pins it)")
    return subprocess.run([str(executable), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_check_is_clean():
    result = _run("ruff", "check", "--no-cache", *TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = _run("ruff", "format", "--check", "--no-cache", *TARGETS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
