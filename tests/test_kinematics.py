"""Real-arm kinematics (issue 13, item 4): FK of the FR3 and the UR5e from the DH tables in their robot
configs, checked against implementations that share none of robolearn.hardware.kinematics' code, and
damped-least-squares IK within the joint limits.

Two independent references:
- roboticstoolbox-python (the ``dev`` extra): its own DH/MDH code. Its Panda model is Franka's DH table
  typed by its authors; Franka publishes the same table for the FR3 (the robots differ in joint
  limits only), so FR3 FK must equal rtb's Panda at the flange. rtb has no UR5e model, so the UR5e is
  built from rtb's RevoluteDH with UR's published table (typed here from UR's page).
- the official URDF joint chains (franka_description robots/fr3/kinematics.yaml and end_effectors
  franka_hand; ur_description config/ur5e/default_kinematics.yaml and urdf/ur_macro.xacro): origins as
  xyz + roll-pitch-yaw, composed here with scipy's Rotation - another parameterisation of the arm and
  another composition, so a wrong table row, convention or angle sign in the configs cannot pass both.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from robolearn.config_io import ConfigError
from robolearn.hardware.kinematics import (SerialArm, make_pose, matrix_to_quat, matrix_to_rotvec, quat_to_matrix,
                                           rotvec_to_matrix)
from robolearn.hardware.robot_config import KinematicsConfig, RobotConfig

ROOT = Path(__file__).resolve().parents[1]
HOME = {"franka_fr3": np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]),
        "ur5e": np.array([0.0, -np.pi / 2, np.pi / 2, -np.pi / 2, -np.pi / 2, 0.0])}
ROBOTS = ["franka_fr3", "ur5e"]


def load(robot: str) -> RobotConfig:
    return RobotConfig.load(ROOT / "hardware" / f"{robot}.yaml")


def arm_at_flange(robot: str) -> SerialArm:
    """The config's arm with the tool (the Franka Hand's TCP) removed: the references end at the flange."""
    cfg = load(robot)
    kin = dataclasses.replace(cfg.arm_kinematics, tool=(0.0,) * 6)
    return SerialArm(kin, cfg.joint_lower, cfg.joint_upper, name=robot)


def random_joints(arm: SerialArm, rng, n: int) -> np.ndarray:
    return rng.uniform(arm.lower, arm.upper, size=(n, arm.n_joints))


def rot_angle(r1: np.ndarray, r2: np.ndarray) -> float:
    return float(np.linalg.norm(matrix_to_rotvec(r1 @ r2.T)))


# ---- FK against roboticstoolbox-python ---------------------------------------------------------------------

def test_fr3_fk_matches_roboticstoolbox_panda():
    rtb = pytest.importorskip("roboticstoolbox", reason="roboticstoolbox-python is in the dev extra")
    from spatialmath import SE3

    panda = rtb.models.DH.Panda()
    panda.tool = SE3()  # rtb's Panda ends at its hand's TCP; Franka's table (and our chain) at the flange
    arm = arm_at_flange("franka_fr3")
    for q in random_joints(arm, np.random.default_rng(0), 200):
        ours, ref = arm.fk(q), panda.fkine(q).A
        assert np.linalg.norm(ours[:3, 3] - ref[:3, 3]) < 1e-6, q
        assert rot_angle(ours[:3, :3], ref[:3, :3]) < 1e-6, q


def test_ur5e_fk_matches_roboticstoolbox_dh():
    rtb = pytest.importorskip("roboticstoolbox", reason="roboticstoolbox-python is in the dev extra")
    # UR5e, https://www.universal-robots.com/articles/ur/application-installation/dh-parameters-for-calculations-of-kinematics-and-dynamics/
    a = [0, -0.425, -0.3922, 0, 0, 0]
    d = [0.1625, 0, 0, 0.1333, 0.0997, 0.0996]
    alpha = [np.pi / 2, 0, 0, np.pi / 2, -np.pi / 2, 0]
    ur5e = rtb.DHRobot([rtb.RevoluteDH(a=ai, d=di, alpha=al) for ai, di, al in zip(a, d, alpha)], name="UR5e")
    arm = arm_at_flange("ur5e")
    for q in random_joints(arm, np.random.default_rng(1), 200):
        ours, ref = arm.fk(q), ur5e.fkine(q).A
        assert np.linalg.norm(ours[:3, 3] - ref[:3, 3]) < 1e-6, q
        assert rot_angle(ours[:3, :3], ref[:3, :3]) < 1e-6, q


# ---- FK against the official URDF joint chains ----------------------------------------------------------------

PI = np.pi
# franka_description robots/fr3/kinematics.yaml (joint1..joint7, then joint8: link7 -> link8, the flange)
FR3_URDF = [((0, 0, 0.333), (0, 0, 0)), ((0, 0, 0), (-PI / 2, 0, 0)), ((0, -0.316, 0), (PI / 2, 0, 0)),
            ((0.0825, 0, 0), (PI / 2, 0, 0)), ((-0.0825, 0.384, 0), (-PI / 2, 0, 0)), ((0, 0, 0), (PI / 2, 0, 0)),
            ((0.088, 0, 0), (PI / 2, 0, 0))]
FR3_URDF_FIXED = [((0, 0, 0.107), (0, 0, 0))]
# franka_description end_effectors/franka_hand: hand on the flange (rpy_ee 0 0 -pi/4), hand_tcp 0.1034 along z
FR3_HAND_TCP = [((0, 0, 0), (0, 0, -PI / 4)), ((0, 0, 0.1034), (0, 0, 0))]
# ur_description config/ur5e/default_kinematics.yaml (shoulder .. wrist_3), the DH base being base_link_inertia
UR5E_URDF = [((0, 0, 0.1625), (0, 0, 0)), ((0, 0, 0), (1.570796327, 0, 0)), ((-0.425, 0, 0), (0, 0, 0)),
             ((-0.3922, 0, 0.1333), (0, 0, 0)), ((0, -0.0997, -2.044881182297852e-11), (1.570796327, 0, 0)),
             ((0, 0.09959999999999999, -2.042830148012698e-11), (1.570796326589793, PI, PI))]
# ur_macro.xacro: wrist_3_link -> flange (rpy 0 -pi/2 -pi/2) -> tool0 (rpy pi/2 0 pi/2)
UR5E_URDF_FIXED = [((0, 0, 0), (0, -PI / 2, -PI / 2)), ((0, 0, 0), (PI / 2, 0, PI / 2))]


def urdf_chain(joints, fixed, q) -> np.ndarray:
    """Compose URDF joint origins (xyz, fixed-axis rpy) and revolutions about each joint's z axis."""
    rot, pos = Rotation.identity(), np.zeros(3)

    def move(xyz, rpy, angle=0.0):
        nonlocal rot, pos
        pos = pos + rot.apply(xyz)
        rot = rot * Rotation.from_euler("xyz", rpy) * Rotation.from_rotvec([0.0, 0.0, angle])

    for (xyz, rpy), angle in zip(joints, q):
        move(xyz, rpy, angle)
    for xyz, rpy in fixed:
        move(xyz, rpy)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot.as_matrix(), pos
    return out


@pytest.mark.parametrize("robot, joints, fixed", [("franka_fr3", FR3_URDF, FR3_URDF_FIXED),
                                                  ("ur5e", UR5E_URDF, UR5E_URDF_FIXED)])
def test_fk_matches_the_official_urdf_joint_chain(robot, joints, fixed):
    arm = arm_at_flange(robot)
    for q in random_joints(arm, np.random.default_rng(2), 200):
        ours, ref = arm.fk(q), urdf_chain(joints, fixed, q)
        assert np.linalg.norm(ours[:3, 3] - ref[:3, 3]) < 1e-6, q
        assert rot_angle(ours[:3, :3], ref[:3, :3]) < 1e-6, q


def test_fr3_config_tool_is_the_franka_hand_tcp():
    cfg = load("franka_fr3")
    arm = SerialArm.from_robot_config(dataclasses.replace(cfg, joint_margin=0.0))
    for q in random_joints(arm, np.random.default_rng(3), 50):
        ours, ref = arm.fk(q), urdf_chain(FR3_URDF, FR3_URDF_FIXED + FR3_HAND_TCP, q)
        assert np.linalg.norm(ours[:3, 3] - ref[:3, 3]) < 1e-6
        assert rot_angle(ours[:3, :3], ref[:3, :3]) < 1e-6
    # at the usual home posture the hand points down, about 0.48 m above the base
    pos, quat = arm.forward_kinematics(HOME["franka_fr3"])
    np.testing.assert_allclose(pos, [0.3069, 0.0, 0.4867], atol=1e-3)
    assert quat_to_matrix(quat)[2, 2] < -0.999


def test_base_tool_and_theta_offset_are_applied():
    """A mounting transform, a TCP offset and joint zero offsets move the pose as their definitions say."""
    cfg = load("ur5e")
    plain = SerialArm.from_robot_config(cfg)
    base, tool = (0.1, -0.2, 0.3, 0.0, 0.0, np.pi / 2), (0.0, 0.0, 0.15, 0.0, 0.0, 0.0)
    moved = SerialArm(dataclasses.replace(cfg.arm_kinematics, base=base, tool=tool, theta_offset=(0.1,) + (0.0,) * 5),
                      cfg.joint_lower, cfg.joint_upper)
    q = HOME["ur5e"] + 0.2
    expect = make_pose(base[:3], matrix_to_quat(Rotation.from_euler("xyz", base[3:]).as_matrix()))
    shifted = q.copy()
    shifted[0] += 0.1
    expect = expect @ plain.fk(shifted)
    expect[:3, 3] += expect[:3, :3] @ np.array(tool[:3])
    np.testing.assert_allclose(moved.fk(q), expect, atol=1e-12)


# ---- Jacobian -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("robot", ROBOTS)
def test_jacobian_matches_finite_differences_of_fk(robot):
    arm = SerialArm.from_robot_config(load(robot))
    eps = 1e-7
    for q in random_joints(arm, np.random.default_rng(4), 20):
        jac, pose = arm.jacobian(q), arm.fk(q)
        for i in range(arm.n_joints):
            dq = np.zeros(arm.n_joints)
            dq[i] = eps
            moved = arm.fk(q + dq)
            np.testing.assert_allclose(jac[:3, i], (moved[:3, 3] - pose[:3, 3]) / eps, atol=1e-5)
            np.testing.assert_allclose(jac[3:, i], matrix_to_rotvec(moved[:3, :3] @ pose[:3, :3].T) / eps, atol=1e-5)


# ---- IK -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("robot", ROBOTS)
def test_ik_reaches_random_reachable_poses_within_limits(robot):
    """Targets are FK of random joints within the limits (reachable by construction); the solve starts
    0.3 rad per joint away, as a real env's solve starts from the measured joints. Targets at a
    near-singular posture (smallest singular value < 0.05) are left out: there a local solve may
    legitimately settle for a least-squares pose, which the unreachable-target test covers."""
    arm = SerialArm.from_robot_config(load(robot))
    rng = np.random.default_rng(5)
    solved = 0
    for q_goal in random_joints(arm, rng, 80):
        q_init = np.clip(q_goal + rng.uniform(-0.3, 0.3, arm.n_joints), arm.lower, arm.upper)
        if np.linalg.svd(arm.jacobian(q_goal), compute_uv=False)[-1] < 0.05:
            continue
        target = arm.fk(q_goal)
        res = arm.ik(q_init, target)
        reached = arm.fk(res.q)
        assert np.all(res.q >= arm.lower) and np.all(res.q <= arm.upper)
        assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-4, (q_goal, res)
        assert rot_angle(reached[:3, :3], target[:3, :3]) < 1e-3, (q_goal, res)
        assert res.converged
        solved += 1
    assert solved >= 40


@pytest.mark.parametrize("robot", ROBOTS)
def test_ik_with_restarts_solves_from_home(robot):
    """A global solve (far target, restarts allowed) - for resets, never for streamed deltas."""
    arm = SerialArm.from_robot_config(load(robot))
    for q_goal in random_joints(arm, np.random.default_rng(6), 15):
        target = arm.fk(q_goal)
        res = arm.ik(HOME[robot], target, restarts=10)
        reached = arm.fk(res.q)
        assert np.linalg.norm(reached[:3, 3] - target[:3, 3]) < 1e-4
        assert rot_angle(reached[:3, :3], target[:3, :3]) < 1e-3
        assert np.all(res.q >= arm.lower) and np.all(res.q <= arm.upper)


@pytest.mark.parametrize("robot", ROBOTS)
def test_small_ee_delta_moves_fk_by_that_delta(robot):
    """The real env's step: pose = FK(q), apply [dx dy dz] and the rotation vector [drx dry drz] in the
    base frame, IK from q. FK of the result must have moved by exactly that delta, with small joint motion."""
    arm = SerialArm.from_robot_config(load(robot))
    rng = np.random.default_rng(7)
    for _ in range(40):
        q = np.clip(HOME[robot] + rng.uniform(-0.5, 0.5, arm.n_joints), arm.lower, arm.upper)
        dpos, drot = rng.uniform(-0.02, 0.02, 3), rng.uniform(-0.1, 0.1, 3)
        res = arm.delta_target(q, dpos, drot)
        before, after = arm.fk(q), arm.fk(res.q)
        assert res.converged
        np.testing.assert_allclose(after[:3, 3] - before[:3, 3], dpos, atol=1e-4)
        np.testing.assert_allclose(matrix_to_rotvec(after[:3, :3] @ before[:3, :3].T), drot, atol=1e-3)
        assert np.max(np.abs(res.q - q)) < 0.5  # a nearby solution, not another branch
    # a zero delta leaves the joints where they are
    q = HOME[robot]
    np.testing.assert_allclose(arm.delta_target(q, np.zeros(3), np.zeros(3)).q, q, atol=1e-9)


@pytest.mark.parametrize("robot", ROBOTS)
def test_unreachable_target_is_best_effort_within_limits(robot):
    arm = SerialArm.from_robot_config(load(robot))
    q = HOME[robot]
    res = arm.delta_target(q, np.array([2.0, 0.0, 0.0]), np.zeros(3))  # 2 m away: beyond reach
    assert not res.converged and res.pos_error > 0.5
    assert np.all(res.q >= arm.lower) and np.all(res.q <= arm.upper)
    # it still went toward the target: the arm stretches out along +x
    assert arm.fk(res.q)[0, 3] > arm.fk(q)[0, 3] + 0.2


def test_ik_stays_inside_the_margin_the_safety_filter_keeps():
    """FR3 joint 4 has its upper limit at -0.1518 rad (the elbow cannot straighten): a target that
    wants it straighter is solved against the limit minus joint_margin, never beyond it."""
    cfg = load("franka_fr3")
    arm = SerialArm.from_robot_config(cfg)
    np.testing.assert_allclose(arm.upper, np.asarray(cfg.joint_upper) - cfg.joint_margin)
    q_goal = HOME["franka_fr3"].copy()
    q_goal[3] = -0.05  # outside the limit: the pose needs a straighter elbow than the FR3 has
    res = arm.ik(HOME["franka_fr3"], arm.fk(q_goal))
    assert res.q[3] <= cfg.joint_upper[3] - cfg.joint_margin + 1e-12
    assert np.all(res.q >= arm.lower) and np.all(res.q <= arm.upper)


def test_mapper_interface_round_trip():
    """forward_kinematics / solve_ik are what deploy/action_map.EEDeltaMapper calls on a kinematics object."""
    arm = SerialArm.from_robot_config(load("franka_fr3"))
    q = HOME["franka_fr3"] + 0.1
    pos, quat = arm.forward_kinematics(q)
    assert quat.shape == (4,) and quat[0] >= 0 and abs(np.linalg.norm(quat) - 1) < 1e-12
    q2 = arm.solve_ik(HOME["franka_fr3"], pos, quat)
    pos2, quat2 = arm.forward_kinematics(q2)
    np.testing.assert_allclose(pos2, pos, atol=1e-4)
    assert rot_angle(quat_to_matrix(quat2), quat_to_matrix(quat)) < 1e-3


def test_rotation_helpers_near_pi():
    for rv in ([np.pi - 1e-9, 0, 0], [0, 0, 1e-10], [1.0, -2.0, 0.5], [0, np.pi / np.sqrt(2), np.pi / np.sqrt(2)]):
        rv = np.array(rv)
        m = rotvec_to_matrix(rv)
        np.testing.assert_allclose(m, Rotation.from_rotvec(rv).as_matrix(), atol=1e-12)
        np.testing.assert_allclose(rotvec_to_matrix(matrix_to_rotvec(m)), m, atol=1e-9)
        np.testing.assert_allclose(quat_to_matrix(matrix_to_quat(m)), m, atol=1e-12)


def test_bad_joint_input_is_a_clear_error():
    arm = SerialArm.from_robot_config(load("ur5e"))
    with pytest.raises(ValueError, match="expected 6 joint positions"):
        arm.fk(np.zeros(7))
    with pytest.raises(ValueError, match="finite"):
        arm.fk(np.array([0, np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="quaternion"):
        arm.solve_ik(HOME["ur5e"], np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="not a DH table"):
        SerialArm.from_robot_config(RobotConfig.load(ROOT / "hardware" / "sim_arm.yaml"))


# ---- the config section -----------------------------------------------------------------------------------------

def test_configs_carry_the_published_tables():
    fr3, ur = load("franka_fr3"), load("ur5e")
    assert fr3.arm_kinematics.convention == "modified" and fr3.arm_kinematics.flange == (0.0, 0.107, 0.0, 0.0)
    assert fr3.arm_kinematics.alpha[1] == -np.pi / 2  # written `-pi/2` in the YAML
    assert ur.arm_kinematics.convention == "standard" and ur.arm_kinematics.d[0] == 0.1625
    sim = RobotConfig.load(ROOT / "hardware" / "sim_arm.yaml")  # the sim arm keeps its MuJoCo kinematics
    assert sim.kinematics == sim.kinematics_env == "sim/peg_insert" and sim.arm_kinematics is None
    assert fr3.kinematics_env == ""
    # each config cites the page its table comes from
    assert "frankaemika.github.io/docs/control_parameters.html" in (ROOT / "hardware/franka_fr3.yaml").read_text()
    assert ("universal-robots.com/articles/ur/application-installation/dh-parameters-for-calculations-of-kinematics"
            in (ROOT / "hardware/ur5e.yaml").read_text())


def _write(tmp_path, robot: str, old: str, new: str) -> Path:
    text = (ROOT / "hardware" / f"{robot}.yaml").read_text()
    assert old in text
    path = tmp_path / f"{robot}.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_bad_workspace_box_names_the_file_and_the_field(tmp_path):
    path = _write(tmp_path, "franka_fr3", "workspace_low: [0.3, -0.35, 0.02]", "workspace_low: [0.3, -0.35, 0.9]")
    with pytest.raises(ConfigError, match=r"franka_fr3\.yaml.*workspace_low\[2\] \(z\) = 0\.9 must be < workspace_high\[2\] = 0\.6"):
        RobotConfig.load(path)


def test_bad_joint_limits_name_the_file_and_the_field(tmp_path):
    path = _write(tmp_path, "ur5e", "joint_lower: [-6.283185, -6.283185, -3.141593",
                  "joint_lower: [-6.283185, -6.283185, 3.5")
    with pytest.raises(ConfigError, match=r"ur5e\.yaml.*joint_lower\[2\] \(elbow_joint\) = 3\.5 must be < joint_upper\[2\]"):
        RobotConfig.load(path)


@pytest.mark.parametrize("old, new, message", [
    ("a:     [0.0, -0.425, -0.3922, 0.0, 0.0, 0.0]", "a:     [0.0, -0.425, -0.3922, 0.0, 0.0]",
     r"kinematics\.d: expected 5 numbers, got 6"),
    ("d:     [0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996]\n  alpha: [pi/2, 0.0, 0.0, pi/2, -pi/2, 0.0]",
     "d:     [0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996, 0.1]\n  alpha: [pi/2, 0.0, 0.0, pi/2, -pi/2, 0.0, 0.0]\n"
     "  a2: [0.0]", r"unknown key 'a2'"),
    ("convention: standard", "convention: craig", r"kinematics\.convention: must be 'standard'"),
    ("alpha: [pi/2,", "alpha: [half_pi,", r"kinematics\.alpha\[0\]: expected a number or a multiple of pi"),
    ("tool: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]", "tool: [0.0, 0.0, 0.1]", r"kinematics\.tool .*expected 6 numbers, got 3"),
])
def test_bad_kinematics_section_names_the_file_and_the_field(tmp_path, old, new, message):
    path = _write(tmp_path, "ur5e", old, new)
    with pytest.raises(ConfigError, match=r"ur5e\.yaml.*" + message):
        RobotConfig.load(path)


def test_dh_rows_must_match_the_joints(tmp_path):
    path = _write(tmp_path, "ur5e", "joint_names: [shoulder_pan_joint, shoulder_lift_joint, elbow_joint, wrist_1_joint, "
                  "wrist_2_joint, wrist_3_joint]\njoint_lower: [-6.283185, -6.283185, -3.141593, -6.283185, -6.283185, "
                  "-6.283185]\njoint_upper: [6.283185, 6.283185, 3.141593, 6.283185, 6.283185, 6.283185]",
                  "joint_names: [a, b, c, d, e]\njoint_lower: [-1, -1, -1, -1, -1]\njoint_upper: [1, 1, 1, 1, 1]")
    with pytest.raises(ConfigError, match=r"ur5e\.yaml.*kinematics has 6 DH rows but joint_names has 5 joints"):
        RobotConfig.load(path)


def test_pi_expressions_in_angles():
    kin = KinematicsConfig(a=(0, 0, 0, 0), d=(0, 0, 0, 0), alpha=("pi/2", "-pi/4", "2*pi", "-pi"))
    np.testing.assert_allclose(kin.alpha, [np.pi / 2, -np.pi / 4, 2 * np.pi, -np.pi])


def test_config_round_trips_through_a_dict():
    """dataclasses.asdict -> from_dict (how the ROS parameter layer rebuilds a config) keeps the table."""
    from robolearn.config_io import from_dict

    cfg = load("franka_fr3")
    assert from_dict(RobotConfig, dataclasses.asdict(cfg)) == cfg
