"""ROS message <-> loop conversions, the sim robot's trajectory sampling and the action mappers, by hand."""
import dataclasses

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

from robolearn.deploy import ros_msgs as M  # noqa: E402
from robolearn.deploy.action_map import EEDeltaMapper, JointPositionMapper, axis_angle_quat, quat_mul  # noqa: E402
from robolearn.deploy.ros_io import (dds_messages, forward_msg, image_from_msg, joint_state_to_robot_state,  # noqa: E402
                                     pose_from_msg, trajectory_msg)
from robolearn.deploy.sim_robot import sample_trajectory  # noqa: E402
from robolearn.hardware.robot_config import RobotConfig  # noqa: E402

CFG = RobotConfig(name="t", joint_names=("a", "b"), joint_lower=(-1, -2), joint_upper=(1, 2), gripper_joint="g",
                  gripper_state_joints=("f1", "f2"), gripper_max_position=0.04)


def test_joint_state_reorders_and_reads_gripper():
    msg = M.JointState(header=M.Header(stamp=M.Time(sec=2, nanosec=500_000_000)), name=["f1", "b", "x", "a", "f2"],
                       position=[0.02, 0.5, 9.0, -0.25, 0.04], velocity=[0, 1.0, 0, 2.0, 0])
    s = joint_state_to_robot_state(msg, CFG, received=7.0)
    np.testing.assert_array_equal(s.q, [-0.25, 0.5])
    np.testing.assert_array_equal(s.dq, [2.0, 1.0])
    assert s.gripper == pytest.approx(0.75) and s.stamp == 2.5 and s.received == 7.0
    s = joint_state_to_robot_state(M.JointState(name=["a", "b"], position=[0.0, 0.1]), CFG)
    assert s.gripper is None and np.all(s.dq == 0)


@pytest.mark.parametrize("msg, err", [
    (M.JointState(name=["a"], position=[0.0]), r"missing joint\(s\) \['b'\]"),
    (M.JointState(name=["a", "b"], position=[0.0]), "2 names but 1 positions"),
    (M.JointState(name=["a", "b"], position=[0.0, 1.0], velocity=[1.0]), "2 names but 1 velocities"),
    (M.JointState(name=["a", "a"], position=[0.0, 1.0]), "duplicate"),
    (M.JointState(name=["a", "b"], position=[0.0, float("nan")]), "non-finite"),
])
def test_malformed_joint_state_raises(msg, err):
    with pytest.raises(ValueError, match=err):
        joint_state_to_robot_state(msg, CFG)


def test_pose_xyzw_to_wxyz_and_checks():
    msg = M.PoseStamped(pose=M.Pose(position=M.Point(x=1, y=2, z=3), orientation=M.Quaternion(x=0, y=0, z=0.6, w=0.8)))
    pos, quat = pose_from_msg(msg)
    np.testing.assert_allclose(pos, [1, 2, 3])
    np.testing.assert_allclose(quat, [0.8, 0, 0, 0.6])
    msg.pose.orientation = M.Quaternion(x=0, y=0, z=0, w=0)
    with pytest.raises(ValueError, match="norm"):
        pose_from_msg(msg)


def test_image_decoding():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = M.Image(height=2, width=3, encoding="rgb8", step=9, data=img.tobytes())
    np.testing.assert_array_equal(image_from_msg(msg), img)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(image_from_msg(msg), img[..., ::-1])
    msg.encoding, msg.height = "rgb8", 3
    with pytest.raises(ValueError, match="do not make 3x3x3"):
        image_from_msg(msg)
    msg.encoding = "mono16"
    with pytest.raises(ValueError, match="mono16"):
        image_from_msg(msg)


def test_compressed_image_decoding():
    import cv2

    from robolearn.deploy.ros_io import compressed_image_from_msg

    img = np.zeros((8, 10, 3), np.uint8)
    img[:, :5] = (255, 0, 0)  # left half red (RGB)
    ok, png = cv2.imencode(".png", img[..., ::-1])
    assert ok
    msg = M.CompressedImage(format="png", data=png.tobytes())
    np.testing.assert_array_equal(compressed_image_from_msg(msg), img)  # png is lossless
    msg.data = b"not an image"
    with pytest.raises(ValueError, match="do not decode"):
        compressed_image_from_msg(msg)
    msg.format = "theora"
    with pytest.raises(ValueError, match="theora"):
        compressed_image_from_msg(msg)


def test_command_messages():
    msgs = dds_messages()
    t = trajectory_msg(msgs, CFG, np.array([0.1, 0.2]), 0.5, reach=0.01)
    assert t.joint_names == ["a", "b", "g"]
    assert t.points[0].positions == [0.1, 0.2, 0.5]
    assert (t.points[0].time_from_start.sec, t.points[0].time_from_start.nanosec) == (0, 10_000_000)
    assert t.header.stamp.sec > 1_600_000_000
    f = forward_msg(msgs, CFG, np.array([0.1, 0.2]), None)
    assert f.data == [0.1, 0.2, 0.0]
    no_grip = dataclasses.replace(CFG, command_gripper=False)
    assert forward_msg(msgs, no_grip, np.array([0.1, 0.2]), 1.0).data == [0.1, 0.2]


def test_sample_trajectory_hand_values():
    start = np.array([0.0, 0.0])
    times = np.array([1.0, 3.0])
    points = np.array([[1.0, 2.0], [3.0, 2.0]])
    assert np.allclose(sample_trajectory(-1.0, 0.0, start, times, points), [0, 0])
    assert np.allclose(sample_trajectory(0.5, 0.0, start, times, points), [0.5, 1.0])
    assert np.allclose(sample_trajectory(2.0, 0.0, start, times, points), [2.0, 2.0])
    assert np.allclose(sample_trajectory(10.0, 0.0, start, times, points), [3.0, 2.0])  # holds the last point


def test_joint_position_mapper():
    m = JointPositionMapper(lower=[-1, 0], upper=[1, 4], gripper=True)
    out = m.to_targets(np.array([[0.0, 0.0, 0.3], [1.0, -1.0, 5.0], [-3.0, 3.0, -1.0]]), None)
    np.testing.assert_allclose(out, [[0.0, 2.0, 0.3], [1.0, 0.0, 1.0], [-1.0, 4.0, -1.0]])


def test_ee_delta_pure_parts():
    m = EEDeltaMapper(kinematics=object(), pos_scale=0.02, rot_scale=0.1, workspace_low=[0, -1, 0.1],
                      workspace_high=[1, 1, 1], max_lead=0.01)
    quat = np.array([0.0, 0.0, 1.0, 0.0])
    pos, q = m.target_pose(np.array([0.5, 2.0, -1.0, 0, 0, 1.0, 0]), np.array([0.5, 0.0, 0.11]), quat)
    np.testing.assert_allclose(pos, [0.51, 0.02, 0.1])  # y action clipped to 1; z clamped to the workspace
    expected = quat_mul(np.array([np.cos(0.05), 0, 0, np.sin(0.05)]), quat)  # 0.1 rad about world z
    np.testing.assert_allclose(q, expected)
    np.testing.assert_allclose(axis_angle_quat(np.array([0, np.pi, 0])), [0, 0, 1, 0], atol=1e-12)
    base, bq = m.base_pose(np.array([0.5, 0.0, 0.2]), quat, np.array([0.53, -0.005, 0.2]), -quat)
    np.testing.assert_allclose(base, [0.53, -0.005, 0.2])  # the setpoint is the last command
    np.testing.assert_allclose(bq, -quat)
    # the setpoint leads the measured position by at most max_lead (1 cm here) per axis
    pos, _ = m.target_pose(np.array([1.0, -1.0, 0.0, 0, 0, 0, 0]), base, bq, measured=np.array([0.5, 0.0, 0.2]))
    np.testing.assert_allclose(pos, [0.51, -0.01, 0.2])
    with pytest.raises(ValueError, match="kinematics"):
        EEDeltaMapper(kinematics=None, pos_scale=0.02, rot_scale=0.1, workspace_low=[0, 0, 0], workspace_high=[1, 1, 1])


def test_robot_configs_load_and_validate(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "hardware"
    fr3 = RobotConfig.load(root / "franka_fr3.yaml")
    ur = RobotConfig.load(root / "ur5e.yaml")
    sim = RobotConfig.load(root / "sim_arm.yaml")
    assert fr3.joint_names[0] == "fr3_joint1" and len(fr3.joint_names) == 7 and fr3.command_joint_names == fr3.joint_names
    assert len(ur.joint_names) == 6 and ur.trajectory_topic == "/scaled_joint_trajectory_controller/joint_trajectory"
    from robolearn.sim.arm import JOINT_LOWER, JOINT_UPPER

    assert sim.joint_lower == JOINT_LOWER and sim.joint_upper == JOINT_UPPER
    bad = tmp_path / "bad.yaml"
    bad.write_text("command_interface: service\n")
    with pytest.raises(ValueError, match="command_interface"):
        RobotConfig.load(bad)
    bad.write_text("trajectory_topic: no_slash\n")
    with pytest.raises(ValueError, match="absolute ROS topic"):
        RobotConfig.load(bad)
    bad.write_text("joint_speed: 3\n")
    with pytest.raises(ValueError, match="joint_speed"):
        RobotConfig.load(bad)
