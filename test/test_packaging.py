"""The package's metadata and entry points stay consistent: package.xml is a valid format-3
manifest declaring what the code imports, and the README's commands are what CI runs."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_is_valid_format_3():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    package.validate()  # raises InvalidPackage on any format-3 violation
    assert package.package_format == 3
    assert package.name == "lightwam_ros"
    assert package.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]


def _ros_packages_imported() -> set[str]:
    """ROS message/runtime packages imported anywhere in lightwam_ros."""
    packages = r"[a-z_]+_(?:msgs|srvs|interfaces)|rclpy|launch_ros|cv_bridge"
    pattern = re.compile(rf"^\s*(?:from|import)\s+({packages})\b", re.MULTILINE)
    found: set[str] = set()
    for path in (ROOT / "lightwam_ros").rglob("*.py"):
        found.update(pattern.findall(path.read_text()))
    for path in (ROOT / "launch").rglob("*.py"):
        found.update(pattern.findall(path.read_text()))
    return found


def test_package_xml_declares_every_ros_dependency_the_code_uses():
    catkin_pkg = pytest.importorskip("catkin_pkg.package")
    package = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    declared = {d.name for d in package.exec_depends + package.build_depends + package.buildtool_depends}
    missing = _ros_packages_imported() - declared
    assert not missing, f"package.xml lacks: {sorted(missing)}"


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", quick_start, re.DOTALL)


def test_readme_has_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    test_command = commands[1].strip()
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line.strip()
        and not line.startswith("#")
        and not line.startswith("set ")
        and not line.startswith("cd ")
    ]
    assert ci_lines == [test_command]


def test_everything_the_setup_reads_is_tracked_by_git():
    """A fresh clone has only tracked files: the set-up's inputs must all be among them."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = set(
        subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    )
    needed = {
        "scripts/setup.sh",
        "scripts/run_tests.sh",
        "scripts/run_demo.sh",
        "packages/aloha_sim/model.safetensors",  # the main job's learned package
        "packages/aloha_sim/instructions.safetensors",
        ".ci/run",
        "CMakeLists.txt",
        "package.xml",
        "setup.py",
        "resource/executables.txt",
        "resource/lightwam_ros",
        "requirements/runtime.txt",
        "requirements/build.txt",
        "requirements/test.txt",
    }
    needed |= {str(p.relative_to(ROOT)) for p in (ROOT / "msg").glob("*.msg")}
    assert needed <= tracked, f"untracked: {sorted(needed - tracked)}"
