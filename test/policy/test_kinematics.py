"""Panda kinematics: FK against hand-derived poses and a URDF-style chain, Jacobian, IK, deltas."""

import math
from pathlib import Path

import numpy as np
import pytest

from lightwam_ros.policy.embodiment import EmbodimentSpecError, load_embodiment
from lightwam_ros.policy.kinematics import (
    Pose,
    SerialChain,
    arm_chain,
    axis_angle_to_rotation,
    chain_params,
    integrate_delta_eef,
    rotation_to_axis_angle,
)

# The Panda's modified-DH rows live in its embodiment YAML, not in code.
PANDA = load_embodiment("libero_franka").arm("arm")
CHAIN = arm_chain(PANDA)
PANDA_SOURCE = load_embodiment("libero_franka").source
READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])


def rot_x(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_z(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def frame(xyz=(0, 0, 0), rotation=None):
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = np.eye(3) if rotation is None else rotation, xyz
    return out


# franka_description's URDF: joint origins (xyz, roll) with every joint turning about its z axis.
URDF_JOINTS = [
    ((0, 0, 0.333), 0.0),
    ((0, 0, 0), -math.pi / 2),
    ((0, -0.316, 0), math.pi / 2),
    ((0.0825, 0, 0), math.pi / 2),
    ((-0.0825, 0.384, 0), -math.pi / 2),
    ((0, 0, 0), math.pi / 2),
    ((0.088, 0, 0), math.pi / 2),
]


def urdf_tcp(q):
    transform = np.eye(4)
    for (xyz, roll), angle in zip(URDF_JOINTS, q, strict=True):
        transform = transform @ frame(xyz, rot_x(roll)) @ frame(rotation=rot_z(angle))
    transform = transform @ frame((0, 0, 0.107)) @ frame(rotation=rot_z(-math.pi / 4))
    return transform @ frame((0, 0, 0.1034))


def test_zero_configuration_by_hand():
    # All joints at zero: the x offsets a4 = 0.0825, a5 = -0.0825 and a7 = 0.088 add up along x;
    # d1 + d3 + d5 go up, then the flange (0.107) and the hand TCP (0.1034) point straight down.
    pose = CHAIN.forward(np.zeros(7))
    np.testing.assert_allclose(
        pose.position,
        [0.0825 - 0.0825 + 0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107 - 0.1034],
        atol=1e-12,
    )
    # Link 7: x along base x, z down, so y = z cross x = -base y; the hand turns -45 deg about z.
    s = math.sqrt(0.5)
    expected = np.column_stack(([s, s, 0.0], [s, -s, 0.0], [0.0, 0.0, -1.0]))
    np.testing.assert_allclose(pose.rotation, expected, atol=1e-12)


def test_ready_pose_matches_the_published_tcp_position():
    pose = CHAIN.forward(READY)
    np.testing.assert_allclose(pose.position, [0.3069, 0.0, 0.4869], atol=2e-4)
    np.testing.assert_allclose(pose.rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-9)


def test_forward_kinematics_agrees_with_an_independent_urdf_chain():
    rng = np.random.default_rng(3)
    for _ in range(20):
        q = rng.uniform(CHAIN.lower, CHAIN.upper)
        pose = CHAIN.forward(q)
        reference = urdf_tcp(q)
        np.testing.assert_allclose(pose.position, reference[:3, 3], atol=1e-12)
        np.testing.assert_allclose(pose.rotation, reference[:3, :3], atol=1e-12)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(4)
    q = rng.uniform(CHAIN.lower, CHAIN.upper)
    jac = CHAIN.jacobian(q)
    h = 1e-4  # central differences: O(h^2) error
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = h
        ahead, behind = CHAIN.forward(q + dq), CHAIN.forward(q - dq)
        np.testing.assert_allclose((ahead.position - behind.position) / (2 * h), jac[:3, i], atol=1e-6)
        omega = rotation_to_axis_angle(ahead.rotation @ behind.rotation.T) / (2 * h)
        np.testing.assert_allclose(omega, jac[3:, i], atol=1e-6)


def test_ik_round_trip_on_random_reachable_poses():
    rng = np.random.default_rng(5)
    inner_lower = CHAIN.lower + 0.1 * (CHAIN.upper - CHAIN.lower)
    inner_upper = CHAIN.upper - 0.1 * (CHAIN.upper - CHAIN.lower)
    for _ in range(25):
        q = rng.uniform(inner_lower, inner_upper)
        target = CHAIN.forward(q)
        seed = np.clip(q + rng.uniform(-0.3, 0.3, 7), CHAIN.lower, CHAIN.upper)
        result = CHAIN.inverse(target, seed)
        assert result.converged, (q, result)
        assert np.all(result.q >= CHAIN.lower) and np.all(result.q <= CHAIN.upper)
        reached = CHAIN.forward(result.q)
        assert np.linalg.norm(reached.position - target.position) < 1e-5
        assert np.linalg.norm(rotation_to_axis_angle(reached.rotation @ target.rotation.T)) < 1e-4


def test_ik_reports_an_unreachable_target():
    target = Pose(np.array([2.0, 0.0, 0.5]), np.eye(3))
    result = CHAIN.inverse(target, READY, max_iterations=30)
    assert not result.converged and result.iterations == 30
    assert result.position_error > 0.5
    assert np.all(result.q >= CHAIN.lower) and np.all(result.q <= CHAIN.upper)


def test_delta_of_one_moves_five_centimetres_and_half_a_radian():
    start = CHAIN.forward(READY + np.array([0.3, 0.2, -0.4, 0.3, 0.5, -0.2, 0.1]))
    moved = integrate_delta_eef(start, np.array([1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]))
    np.testing.assert_allclose(moved.position - start.position, [0.05, 0.0, -0.05], atol=1e-12)
    np.testing.assert_allclose(moved.rotation, start.rotation, atol=1e-12)
    clipped = integrate_delta_eef(start, np.array([3.0, 0.0, 0.0, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(clipped.position - start.position, [0.05, 0.0, 0.0], atol=1e-12)

    turned = integrate_delta_eef(start, np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    # Composed in the base frame: R_target = Rx(0.5) @ R_current (not R_current @ Rx(0.5)).
    np.testing.assert_allclose(turned.rotation, rot_x(0.5) @ start.rotation, atol=1e-12)
    assert not np.allclose(turned.rotation, start.rotation @ rot_x(0.5), atol=1e-3)
    np.testing.assert_allclose(turned.position, start.position, atol=1e-12)
    scaled = integrate_delta_eef(start, np.array([0.5, 0, 0, 0, 0, 0.4]), pos_scale=0.1, rot_scale=1.0)
    np.testing.assert_allclose(scaled.position - start.position, [0.05, 0, 0], atol=1e-12)
    np.testing.assert_allclose(scaled.rotation, rot_z(0.4) @ start.rotation, atol=1e-12)


def test_rotation_conversions_round_trip():
    rng = np.random.default_rng(6)
    for _ in range(20):
        axis = rng.normal(size=3)
        vector = axis / np.linalg.norm(axis) * rng.uniform(0.0, math.pi - 1e-3)
        rotation = axis_angle_to_rotation(vector)
        np.testing.assert_allclose(rotation_to_axis_angle(rotation), vector, atol=1e-9)
        pose = Pose.from_axis_angle(np.zeros(3), vector)
        again = Pose.from_quaternion(np.zeros(3), pose.quaternion)
        np.testing.assert_allclose(again.rotation, rotation, atol=1e-12)
        np.testing.assert_allclose(pose.axis_angle, vector, atol=1e-9)
    np.testing.assert_array_equal(axis_angle_to_rotation(np.zeros(3)), np.eye(3))


def test_parameters_come_from_data_and_bad_data_is_refused():
    params = chain_params(PANDA)
    params["fixed"] = params["fixed"][:1]  # flange only, no hand
    flange = SerialChain(params).forward(np.zeros(7))
    np.testing.assert_allclose(flange.position, [0.088, 0.0, 0.926], atol=1e-12)

    broken = chain_params(PANDA)
    del broken["joints"][2]["d"]
    with pytest.raises(ValueError, match=r"joints\[2\]: missing \['d'\]"):
        SerialChain(broken)
    broken = chain_params(PANDA)
    broken["joints"][0]["a"] = "zero"
    with pytest.raises(ValueError, match="finite number"):
        SerialChain(broken)
    with pytest.raises(ValueError, match="shape"):
        CHAIN.forward(np.zeros(6))
    with pytest.raises(ValueError, match="6 or 7"):
        integrate_delta_eef(CHAIN.forward(READY), np.zeros(5))


def test_an_arms_chain_comes_from_its_embodiment_yaml(tmp_path):
    """A new arm's kinematics are data in its embodiment; an arm without them has no chain."""
    text = (
        Path(PANDA_SOURCE)
        .read_text()
        .replace("d: 0.1034,", "d: 0.2034,")  # a 10 cm longer tool
        .replace("name: libero_franka", "name: long_tool_franka")
    )
    path = tmp_path / "long_tool_franka.yaml"
    path.write_text(text)
    longer = arm_chain(load_embodiment(path).arm("arm"))
    assert longer.joint_names == CHAIN.joint_names
    np.testing.assert_array_equal(longer.lower, CHAIN.lower)
    for q in (np.zeros(7), READY):
        tip, ref = longer.forward(q), CHAIN.forward(q)
        np.testing.assert_allclose(tip.position - ref.position, 0.1 * ref.rotation[:, 2], atol=1e-12)
    with pytest.raises(ValueError, match="no kinematics section"):
        arm_chain(load_embodiment("aloha_sim").arm("left"))
    bad = text.replace("        - {a: 0.088, d: 0.0, alpha: 1.5707963267948966}\n", "")
    path.write_text(bad)
    with pytest.raises(EmbodimentSpecError, match="expected 7 entries"):
        load_embodiment(path)
