"""Kinematics: the Panda's FK against hand-derived poses, its DH table and a URDF file, a small URDF
with fixed and prismatic joints by hand, Jacobian, IK, deltas, and malformed chains refused."""

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
from lightwam_ros.policy.urdf_chain import UrdfChainError, joint_to_mapping, read_urdf_chain

# The Panda's URDF chain lives in its embodiment YAML, not in code.
PANDA = load_embodiment("libero_franka").arm("arm")
CHAIN = arm_chain(PANDA)
PANDA_SOURCE = load_embodiment("libero_franka").source
READY = np.array([0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4])
HALF_PI = "1.5707963267948966"

# Franka's modified-DH table ("Robot and interface specifications"): (a, d, alpha) per joint, then
# the flange (d = 0.107) and the hand TCP (d = 0.1034, theta = -pi/4).
PANDA_DH = f"""    kinematics:
      convention: modified_dh
      joints:
        - {{a: 0.0, d: 0.333, alpha: 0.0}}
        - {{a: 0.0, d: 0.0, alpha: -{HALF_PI}}}
        - {{a: 0.0, d: 0.316, alpha: {HALF_PI}}}
        - {{a: 0.0825, d: 0.0, alpha: {HALF_PI}}}
        - {{a: -0.0825, d: 0.384, alpha: -{HALF_PI}}}
        - {{a: 0.0, d: 0.0, alpha: {HALF_PI}}}
        - {{a: 0.088, d: 0.0, alpha: {HALF_PI}}}
      fixed:
        - {{a: 0.0, d: 0.107, alpha: 0.0, theta: 0.0}}
        - {{a: 0.0, d: 0.1034, alpha: 0.0, theta: -0.7853981633974483}}
"""

# franka_description's panda_arm + hand, as a URDF file: the fingers (one mimics the other) and
# the links' geometry are off the chain.
PANDA_URDF = f"""<?xml version="1.0"?>
<robot name="panda">
  <link name="panda_link0"/><link name="panda_link1"/><link name="panda_link2"/>
  <link name="panda_link3"/><link name="panda_link4"/><link name="panda_link5"/>
  <link name="panda_link6"/><link name="panda_link7"/><link name="panda_link8"/>
  <link name="panda_hand"/><link name="panda_hand_tcp"/>
  <link name="panda_leftfinger"/><link name="panda_rightfinger"/>
  <joint name="panda_joint1" type="revolute"><parent link="panda_link0"/><child link="panda_link1"/>
    <origin xyz="0 0 0.333" rpy="0 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint2" type="revolute"><parent link="panda_link1"/><child link="panda_link2"/>
    <origin xyz="0 0 0" rpy="-{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint3" type="revolute"><parent link="panda_link2"/><child link="panda_link3"/>
    <origin xyz="0 -0.316 0" rpy="{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint4" type="revolute"><parent link="panda_link3"/><child link="panda_link4"/>
    <origin xyz="0.0825 0 0" rpy="{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint5" type="revolute"><parent link="panda_link4"/><child link="panda_link5"/>
    <origin xyz="-0.0825 0.384 0" rpy="-{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint6" type="revolute"><parent link="panda_link5"/><child link="panda_link6"/>
    <origin xyz="0 0 0" rpy="{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint7" type="revolute"><parent link="panda_link6"/><child link="panda_link7"/>
    <origin xyz="0.088 0 0" rpy="{HALF_PI} 0 0"/><axis xyz="0 0 1"/></joint>
  <joint name="panda_joint8" type="fixed"><parent link="panda_link7"/><child link="panda_link8"/>
    <origin xyz="0 0 0.107" rpy="0 0 0"/></joint>
  <joint name="panda_hand_joint" type="fixed"><parent link="panda_link8"/><child link="panda_hand"/>
    <origin xyz="0 0 0" rpy="0 0 -0.7853981633974483"/></joint>
  <joint name="panda_hand_tcp_joint" type="fixed"><parent link="panda_hand"/>
    <child link="panda_hand_tcp"/><origin xyz="0 0 0.1034" rpy="0 0 0"/></joint>
  <joint name="panda_finger_joint1" type="prismatic"><parent link="panda_hand"/>
    <child link="panda_leftfinger"/><origin xyz="0 0 0.0584"/><axis xyz="0 1 0"/></joint>
  <joint name="panda_finger_joint2" type="prismatic"><parent link="panda_hand"/>
    <child link="panda_rightfinger"/><origin xyz="0 0 0.0584"/><axis xyz="0 -1 0"/>
    <mimic joint="panda_finger_joint1"/></joint>
</robot>
"""

# A small arm by hand: a revolute joint 0.5 m up, a fixed joint 0.3 m out whose rpy (pi/2, 0,
# pi/2) is Rz(pi/2) Rx(pi/2) (URDF's order: roll first, about the fixed axes), a prismatic joint
# 0.1 m along that frame's z sliding along its y (given unnormalised), a camera branch and a
# gripper finger off the chain.
SMALL_URDF = f"""<robot name="small">
  <link name="base"/><link name="l1"/><link name="l2"/><link name="l3"/>
  <link name="camera"/><link name="finger"/>
  <joint name="turn" type="continuous"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.5"/><axis xyz="0 0 1"/></joint>
  <joint name="bracket" type="fixed"><parent link="l1"/><child link="l2"/>
    <origin xyz="0.3 0 0" rpy="{HALF_PI} 0 {HALF_PI}"/></joint>
  <joint name="slide" type="prismatic"><parent link="l2"/><child link="l3"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 2 0"/><limit lower="0" upper="0.3"/></joint>
  <joint name="camera_mount" type="fixed"><parent link="base"/><child link="camera"/>
    <origin xyz="1 1 1"/></joint>
  <joint name="finger_joint" type="prismatic"><parent link="l3"/><child link="finger"/>
    <axis xyz="1 0 0"/></joint>
</robot>
"""
# The bracket's rotation Rz(pi/2) Rx(pi/2): l2's x, y, z axes are l1's y, z, x.
BRACKET = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def with_kinematics(tmp_path, section, name="panda_variant"):
    """The libero_franka YAML in ``tmp_path`` with its arm's kinematics section replaced."""
    text = Path(PANDA_SOURCE).read_text()
    start, end = text.index("    kinematics:\n"), text.index("    gripper:\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text[:start] + section + text[end:])
    return path


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


def test_the_urdf_chain_equals_frankas_dh_table(tmp_path):
    """The shipped URDF-form chain and Franka's modified-DH table are the same arm to 1e-9."""
    dh = arm_chain(load_embodiment(with_kinematics(tmp_path, PANDA_DH)).arm("arm"))
    assert dh.joint_names == CHAIN.joint_names
    np.testing.assert_array_equal(dh.lower, CHAIN.lower)
    rng = np.random.default_rng(7)
    for q in [np.zeros(7), READY, *rng.uniform(CHAIN.lower, CHAIN.upper, (50, 7))]:
        urdf_pose, dh_pose = CHAIN.forward(q), dh.forward(q)
        np.testing.assert_allclose(urdf_pose.position, dh_pose.position, atol=1e-9)
        np.testing.assert_allclose(urdf_pose.rotation, dh_pose.rotation, atol=1e-9)
        np.testing.assert_allclose(CHAIN.jacobian(q), dh.jacobian(q), atol=1e-9)


def test_a_urdf_file_named_by_the_embodiment_gives_the_same_chain(tmp_path):
    (tmp_path / "robots").mkdir()
    (tmp_path / "robots" / "panda.urdf").write_text(PANDA_URDF)
    section = "    kinematics:\n      convention: urdf\n      urdf: robots/panda.urdf\n"
    # base_link and tip_link default to the arm's base_frame and ee_frame.
    from_file = arm_chain(load_embodiment(with_kinematics(tmp_path, section)).arm("arm"))
    flange = (
        section
        + "      tip_link: panda_link8\n      tool: {xyz: [0, 0, 0.1034], rpy: [0, 0, -0.7853981633974483]}\n"
    )
    with_tool = arm_chain(load_embodiment(with_kinematics(tmp_path, flange)).arm("arm"))
    rng = np.random.default_rng(8)
    for q in rng.uniform(CHAIN.lower, CHAIN.upper, (10, 7)):
        for chain in (from_file, with_tool):
            pose, reference = chain.forward(q), CHAIN.forward(q)
            np.testing.assert_allclose(pose.position, reference.position, atol=1e-12)
            np.testing.assert_allclose(pose.rotation, reference.rotation, atol=1e-12)


def test_a_small_urdf_with_fixed_and_prismatic_joints_by_hand(tmp_path):
    path = tmp_path / "small.urdf"
    path.write_text(SMALL_URDF)
    joints = read_urdf_chain(path, "base", "l3")
    assert [(joint.name, joint.type) for joint in joints] == [
        ("turn", "continuous"),
        ("bracket", "fixed"),
        ("slide", "prismatic"),
    ]
    assert joints[2].axis == (0.0, 1.0, 0.0)
    params = {
        "name": "small",
        "convention": "urdf",
        "joints": [
            {"name": "turn", "lower": -4.0, "upper": 4.0},
            {"name": "slide", "lower": 0.0, "upper": 0.3},
        ],
        "chain": [joint_to_mapping(joint) for joint in joints],
        "tool": {"xyz": [0.0, 0.0, 0.05]},
    }
    chain = SerialChain(params)
    # In l1's frame the tip sits 0.3 + 0.1 (l2's z is l1's x) + 0.05 (the tool, along l3's z) out
    # and the slide lifts it along l2's y (l1's z); the revolute joint turns all that about z.
    for turn, slide in ((0.0, 0.0), (math.pi / 2, 0.2), (-0.4, 0.1)):
        pose = chain.forward(np.array([turn, slide]))
        c, s = math.cos(turn), math.sin(turn)
        np.testing.assert_allclose(pose.position, [0.45 * c, 0.45 * s, 0.5 + slide], atol=1e-12)
        np.testing.assert_allclose(pose.rotation, rot_z(turn) @ BRACKET, atol=1e-12)
    q, h = np.array([0.7, 0.15]), 1e-4
    jac = chain.jacobian(q)
    for i in range(2):
        dq = np.zeros(2)
        dq[i] = h
        ahead, behind = chain.forward(q + dq), chain.forward(q - dq)
        np.testing.assert_allclose((ahead.position - behind.position) / (2 * h), jac[:3, i], atol=1e-6)
        omega = rotation_to_axis_angle(ahead.rotation @ behind.rotation.T) / (2 * h)
        np.testing.assert_allclose(omega, jac[3:, i], atol=1e-6)
    np.testing.assert_allclose(jac[:, 1], [0, 0, 1, 0, 0, 0], atol=1e-12)  # the slide: pure lift


def test_a_broken_or_odd_urdf_is_refused_by_name(tmp_path):
    path = tmp_path / "small.urdf"
    path.write_text(
        SMALL_URDF.replace('<parent link="l1"/><child link="l2"/>', '<parent link="l1"/><child link="lx"/>')
    )
    with pytest.raises(UrdfChainError, match="broken at link 'l2'"):
        read_urdf_chain(path, "base", "l3")
    path.write_text(SMALL_URDF)
    with pytest.raises(UrdfChainError, match="tip_link 'hand' is not a link"):
        read_urdf_chain(path, "base", "hand")
    with pytest.raises(UrdfChainError, match="no moving joint"):
        read_urdf_chain(path, "base", "camera")
    path.write_text(SMALL_URDF.replace('<axis xyz="1 0 0"/></joint>', '<mimic joint="slide"/></joint>'))
    with pytest.raises(UrdfChainError, match="'finger_joint' mimics"):
        read_urdf_chain(path, "base", "finger")
    path.write_text(
        SMALL_URDF.replace('type="prismatic"><parent link="l2"/>', 'type="floating"><parent link="l2"/>')
    )
    with pytest.raises(UrdfChainError, match="unknown joint type 'floating'"):
        read_urdf_chain(path, "base", "l3")
    path.write_text(SMALL_URDF.replace('<axis xyz="0 2 0"/>', '<axis xyz="0 0 0"/>'))
    with pytest.raises(UrdfChainError, match="axis must not be zero"):
        read_urdf_chain(path, "base", "l3")
    path.write_text("<robot><link name='a'/>")
    with pytest.raises(UrdfChainError, match="cannot read the URDF"):
        read_urdf_chain(path, "a", "a")


def test_a_malformed_chain_in_the_embodiment_is_refused_by_name(tmp_path):
    text = Path(PANDA_SOURCE).read_text()
    start, end = text.index("    kinematics:\n"), text.index("    gripper:\n")
    section = text[start:end]
    cases = [
        (
            section.replace("panda_joint8, type: fixed", "panda_joint8, type: floating"),
            r"chain\[7\]\.type: unknown joint type 'floating'",
        ),
        (
            section.replace("name: panda_joint7, type: revolute", "name: panda_joint7, type: fixed"),
            r"moving joints \[.*'panda_joint6'\] differ from the arm's joints",
        ),
        (section.replace("axis: [0, 0, 1]}\n", "axis: [0, 1]}\n", 1), r"chain\[0\]\.axis: expected three"),
        (section + "      urdf: panda.urdf\n", "exactly one of 'chain'"),
        (section + "      tip_link: panda_link8\n", "tip_link: only with 'urdf'"),
        ("    kinematics:\n      convention: urdf\n      urdf: missing.urdf\n", "cannot read the URDF"),
        ("    kinematics:\n      convention: screw\n", "'screw' not one of"),
    ]
    for bad, message in cases:
        with pytest.raises(EmbodimentSpecError, match=message):
            load_embodiment(with_kinematics(tmp_path, bad))
    (tmp_path / "panda.urdf").write_text(PANDA_URDF)
    broken = PANDA_URDF.replace('<parent link="panda_link3"/>', '<parent link="panda_link3b"/>')
    (tmp_path / "broken.urdf").write_text(broken)
    for bad, message in [
        ("      urdf: broken.urdf\n", "broken at link 'panda_link3b'"),
        ("      urdf: panda.urdf\n      base_link: panda_link1\n", r"moving joints \['panda_joint2'"),
    ]:
        with pytest.raises(EmbodimentSpecError, match=message):
            load_embodiment(with_kinematics(tmp_path, "    kinematics:\n      convention: urdf\n" + bad))
    path = with_kinematics(tmp_path, "    kinematics:\n      convention: urdf\n      urdf: panda.urdf\n")
    path.write_text(path.read_text().replace("    base_frame: panda_link0\n", ""))
    with pytest.raises(EmbodimentSpecError, match=r"missing 'base_link' \(or the arm's base_frame\)"):
        load_embodiment(path)


def test_parameters_come_from_data_and_bad_data_is_refused(tmp_path):
    dh_arm = load_embodiment(with_kinematics(tmp_path, PANDA_DH)).arm("arm")
    params = chain_params(dh_arm)
    params["fixed"] = params["fixed"][:1]  # flange only, no hand
    flange = SerialChain(params).forward(np.zeros(7))
    np.testing.assert_allclose(flange.position, [0.088, 0.0, 0.926], atol=1e-12)
    params = chain_params(PANDA)
    params["chain"] = params["chain"][:-2]  # URDF form: up to the flange
    np.testing.assert_allclose(SerialChain(params).forward(np.zeros(7)).position, flange.position, atol=1e-12)

    broken = chain_params(dh_arm)
    del broken["joints"][2]["d"]
    with pytest.raises(ValueError, match=r"joints\[2\]: missing \['d'\]"):
        SerialChain(broken)
    broken = chain_params(dh_arm)
    broken["joints"][0]["a"] = "zero"
    with pytest.raises(ValueError, match="finite number"):
        SerialChain(broken)
    broken = chain_params(PANDA)
    broken["chain"][3]["type"] = "planar"
    with pytest.raises(ValueError, match=r"chain\[3\]\.type: unknown joint type 'planar'"):
        SerialChain(broken)
    broken = chain_params(PANDA)
    broken["joints"][1]["name"] = "elbow"
    with pytest.raises(ValueError, match=r"moving joints .* differ"):
        SerialChain(broken)
    with pytest.raises(ValueError, match="convention 'dh'"):
        SerialChain({**chain_params(PANDA), "convention": "dh"})
    with pytest.raises(ValueError, match="shape"):
        CHAIN.forward(np.zeros(6))
    with pytest.raises(ValueError, match="6 or 7"):
        integrate_delta_eef(CHAIN.forward(READY), np.zeros(5))


def test_an_arms_chain_comes_from_its_embodiment_yaml(tmp_path):
    """A new arm's kinematics are data in its embodiment; an arm without them has no chain."""
    text = (
        Path(PANDA_SOURCE)
        .read_text()
        .replace("xyz: [0, 0, 0.1034]", "xyz: [0, 0, 0.2034]")  # a 10 cm longer tool
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
    bad = PANDA_DH.replace("        - {a: 0.088, d: 0.0, alpha: 1.5707963267948966}\n", "")
    with pytest.raises(EmbodimentSpecError, match="expected 7 entries"):
        load_embodiment(with_kinematics(tmp_path, bad))
