"""The package's parameter files: one per configured node kind and embodiment, keyed by the
node's name, found in a checkout or an installation (ament index, pip prefix), read as ROS reads
them.  No ROS needed."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from lightwam_ros.ros import param_files
from lightwam_ros.ros.node_registry import CONFIGURED_ROLES, NODE_KINDS
from lightwam_ros.ros.param_files import (
    EMBODIMENTS,
    SIM_EMBODIMENTS,
    ParamFileError,
    params_file,
    read_params,
    rviz_config,
)
from lightwam_ros.sim.catalog import SimTask

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("embodiment", EMBODIMENTS)
@pytest.mark.parametrize("role", CONFIGURED_ROLES)
def test_every_node_has_a_parameter_file_per_embodiment_keyed_by_its_node_name(role, embodiment):
    if role == "sim" and embodiment not in SIM_EMBODIMENTS:
        with pytest.raises(ParamFileError, match="no simulator for embodiment"):
            params_file(role, embodiment)
        return
    path = params_file(role, embodiment)
    assert path == ROOT / "config" / path.name  # a source checkout uses its own files
    values = read_params(path, NODE_KINDS[role].node_name)
    if role == "sim":
        assert SimTask.parse(values["task"]).embodiment == embodiment
    else:
        assert values["embodiment"] == embodiment


def test_read_params_joins_nested_names_with_dots_and_applies_wildcard_sections(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"use_sim_time": True, "rate": 1.0}},
                "node": {"ros__parameters": {"rate": 2.0, "cameras": {"head": {"topic": "t"}}}},
                "other": {"ros__parameters": {"x": 1}},
            }
        )
    )
    assert read_params(path, "node") == {"use_sim_time": True, "rate": 2.0, "cameras.head.topic": "t"}


def test_unreadable_or_malformed_parameter_files_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("node: {ros__parameters: [1, 2]}")
    with pytest.raises(ParamFileError, match="no ros__parameters"):
        read_params(path, "node")
    with pytest.raises(ParamFileError, match="cannot read"):
        read_params(tmp_path / "missing.yaml", "node")
    with pytest.raises(ParamFileError, match=r"unknown embodiment .ur5."):
        params_file("policy", "ur5")


def _installed_share(prefix: Path) -> Path:
    share = prefix / "share" / "lightwam_ros"
    shutil.copytree(ROOT / "config", share / "config")
    return share


def test_an_installation_finds_its_files_in_the_ament_index_or_the_python_prefix(tmp_path, monkeypatch):
    """Outside a checkout (no package.xml next to the package) the files come from
    share/lightwam_ros: the ament index's (colcon) first, else the Python prefix's (pip)."""
    monkeypatch.setattr(
        param_files, "__file__", str(tmp_path / "site" / "lightwam_ros" / "ros" / "param_files.py")
    )
    pip_prefix, colcon_prefix = tmp_path / "venv", tmp_path / "install"
    _installed_share(pip_prefix)
    monkeypatch.setattr(sys, "prefix", str(pip_prefix))
    monkeypatch.delenv("AMENT_PREFIX_PATH", raising=False)
    assert params_file("executor", "libero_franka") == (
        pip_prefix / "share/lightwam_ros/config/executor_libero_franka.yaml"
    )

    pytest.importorskip("ament_index_python", reason="the ament index needs ament_index_python")
    _installed_share(colcon_prefix)
    marker = colcon_prefix / "share/ament_index/resource_index/packages/lightwam_ros"
    marker.parent.mkdir(parents=True)
    marker.write_text("")
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(colcon_prefix))
    assert rviz_config() == colcon_prefix / "share/lightwam_ros/config/lightwam.rviz"

    shutil.rmtree(colcon_prefix / "share/lightwam_ros/config")
    shutil.rmtree(pip_prefix / "share/lightwam_ros/config")
    with pytest.raises(ParamFileError, match=r"policy_robotwin_aloha\.yaml not found"):
        params_file("policy", "robotwin_aloha")
