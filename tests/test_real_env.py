"""real/<robot> envs without the simulator: a real arm's joint states published over loopback DDS (what
franka_ros2's joint_state_broadcaster sends), and the bad inputs a lab meets first - joint names that do
not match the robot's, a camera index that does not open, a camera delivering another mode."""
import os
import threading
import time
import warnings

import numpy as np
import pytest

pytest.importorskip("cyclonedds")

FR3_Q = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785]
FR3_JOINTS = [f"fr3_joint{i}" for i in range(1, 8)]
FR3_FINGERS = ["fr3_finger_joint1", "fr3_finger_joint2"]


class JointStatePublisher:
    """Publishes a fixed /joint_states at 100 Hz on its own DDS participant, as a robot driver does."""

    def __init__(self, domain, names, q):
        from robolearn.deploy import ros_msgs as M
        from robolearn.deploy.dds import DdsBus
        from robolearn.deploy.ros_io import dds_messages, stamp_now

        self.bus = DdsBus(domain)
        self.msgs, self.stamp_now = dds_messages(), stamp_now
        self.writer = self.bus.writer("/joint_states", M.JointState)
        self.names, self.q = list(names), [float(v) for v in q]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        m = self.msgs
        while not self._stop.is_set():
            self.writer.write(m.JointState(header=m.Header(stamp=self.stamp_now(m)), name=self.names,
                                           position=self.q, velocity=[0.0] * len(self.q), effort=[]))
            time.sleep(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(2)
        self.bus.close()


def _make(name, **kw):
    import robolearn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no success topic" is expected for a bare arm
        return robolearn.make(name, **kw)


def test_fr3_reset_and_step_send_rate_limited_joint_targets_over_dds():
    """The observation is the sim's layout from FR3 forward kinematics; one step of +z sends
    command_hz / control_hz JointTrajectory points for the FR3's joints that raise the hand, each within
    the safety filter's rate limit, and takes one control period."""
    from robolearn.deploy import ros_msgs as M
    from robolearn.deploy.dds import DdsBus, free_domain_id
    from robolearn.hardware.kinematics import SerialArm
    from robolearn.hardware.robot_config import RobotConfig

    cfg = RobotConfig.load("franka_fr3")
    arm = SerialArm.from_robot_config(cfg)
    domain = free_domain_id(os.getpid() + 131)
    q = np.array(FR3_Q)
    with JointStatePublisher(domain, FR3_JOINTS + FR3_FINGERS, FR3_Q + [0.03, 0.03]):
        probe = DdsBus(domain)
        sent = []
        probe.reader(cfg.trajectory_topic, M.JointTrajectory, sent.append)
        env = _make("real/franka_fr3", domain=domain, connect_timeout=5.0)
        try:
            assert env.observation_space["state"].shape == (8,) and env.action_space.shape == (7,)
            assert env.success_source == "none"
            obs, info = env.reset(seed=0)
            pos, quat = arm.forward_kinematics(q)
            np.testing.assert_allclose(obs["state"][:3], pos, atol=1e-5)
            np.testing.assert_allclose(np.abs(obs["state"][3:7]), np.abs(quat), atol=1e-5)
            assert obs["state"][7] == pytest.approx(0.75)  # 0.03 / gripper_max_position 0.04
            assert info == {"success": False}
            deadline = time.time() + 3
            while env.node.writer.matched() == 0 and time.time() < deadline:
                time.sleep(0.01)
            t0 = time.perf_counter()
            obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 1, 0, 0, 0, 0], np.float32))
            took = time.perf_counter() - t0
            assert 0.09 < took < 0.3, took  # one control period at control_hz 10
            deadline = time.time() + 2
            while len(sent) < 10 and time.time() < deadline:
                time.sleep(0.01)
            assert len(sent) == 10  # command_hz 100 / control_hz 10
            assert all(list(m.joint_names) == FR3_JOINTS for m in sent)
            targets = np.array([m.points[0].positions for m in sent])
            steps = np.abs(np.diff(np.vstack([q, targets]), axis=0))
            assert steps.max() <= cfg.max_joint_velocity / cfg.command_hz + 1e-9  # the safety filter's rate limit
            z_last = arm.forward_kinematics(targets[-1])[0][2]
            assert z_last > pos[2] + 1e-3  # the hand goes up
            assert reward == 0.0 and not terminated and not truncated and info["success"] is False
            assert env.report()["safety"]["rate_limited"] > 0
            # e-stop: the loop holds at once, the step ends the episode, reset refuses until it is cleared
            from robolearn.deploy.real_env import RobotStopped

            estop = probe.writer(cfg.estop_topic, M.Bool)
            deadline = time.time() + 3
            while not env.loop.filter.estopped and time.time() < deadline:
                estop.write(M.Bool(data=True))
                time.sleep(0.02)
            obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            assert truncated and info["estop"] is True
            with pytest.raises(RobotStopped, match=f"e-stop latched on {cfg.estop_topic}"):
                env.reset()
        finally:
            env.close()
            probe.close()


def test_joint_names_mismatch_names_the_file_the_field_and_both_lists():
    from robolearn.deploy.dds import free_domain_id
    from robolearn.deploy.real_env import JointNamesMismatch
    from robolearn.hardware.robot_config import resolve_robot

    domain = free_domain_id(os.getpid() + 137)
    wrong = [f"panda_joint{i}" for i in range(1, 8)]
    with JointStatePublisher(domain, wrong, FR3_Q):
        env = _make("real/franka_fr3", domain=domain, connect_timeout=5.0)
        try:
            t0 = time.monotonic()
            with pytest.raises(JointNamesMismatch) as err:
                env.reset()
            assert time.monotonic() - t0 < 4.5  # named as soon as the first message arrives, not at the timeout
        finally:
            env.close()
    msg = str(err.value)
    assert str(resolve_robot("franka_fr3")) in msg and "joint_names" in msg
    assert str(FR3_JOINTS) in msg and str(wrong) in msg


def test_no_joint_states_says_which_topic_and_domain():
    from robolearn.deploy.dds import free_domain_id

    domain = free_domain_id(os.getpid() + 139)
    env = _make("real/ur5e", domain=domain, connect_timeout=0.5)
    try:
        with pytest.raises(TimeoutError, match=rf"/joint_states \(DDS domain {domain}\)"):
            env.reset()
    finally:
        env.close()


def test_camera_index_that_does_not_open():
    from robolearn.deploy.cameras import CameraError

    with pytest.raises(CameraError, match=r"camera 'front': OpenCV could not open device 99; video devices here"):
        _make("real/franka_fr3", cameras={"front": {"source": 99, "width": 640, "height": 480, "fps": 30}})


def _video(path, w, h, fps, n=12):
    import cv2

    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert out.isOpened()
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        frame[:, : w // 2] = (0, 0, 200)  # BGR: red on the left half
        frame[:, w // 2:] = (i * 10, 120, 0)
        out.write(frame)
    out.release()
    return path


def test_camera_resolution_and_fps_mismatch_name_configured_and_delivered(tmp_path):
    from robolearn.deploy.cameras import CameraError

    video = str(_video(tmp_path / "cam.avi", 64, 48, 10))
    with pytest.raises(CameraError, match=r"configured 640x480 @ 10 fps, delivered 64x48 @ 10 fps"):
        _make("real/franka_fr3", cameras={"front": {"source": video, "width": 640, "height": 480, "fps": 10}})
    with pytest.raises(CameraError, match=r"configured 64x48 @ 30 fps, delivered 64x48 @ 10 fps"):
        _make("real/franka_fr3", cameras={"front": {"source": video, "width": 64, "height": 48, "fps": 30}})
    with pytest.raises(CameraError, match="no such video file"):
        _make("real/franka_fr3", cameras={"front": {"source": str(tmp_path / "nope.avi"), "width": 64,
                                                    "height": 48, "fps": 10}})


def test_opencv_camera_delivers_rgb_frames_cropped_and_resized(tmp_path):
    from robolearn.deploy.cameras import CameraSpec, open_camera, square_resize

    video = str(_video(tmp_path / "cam.avi", 64, 48, 10))
    cam = open_camera(CameraSpec("front", source=video, width=64, height=48, fps=10))
    try:
        frame, _t = cam.latest()
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert frame[24, 10, 0] > 150 and frame[24, 10, 2] < 50  # red stays red: BGR was turned into RGB
        img = square_resize(frame, 84)
        assert img.shape == (84, 84, 3)
        time.sleep(0.35)
        assert cam.frames >= 3  # the reader thread replays the file at its frame rate
    finally:
        cam.close()


def test_bad_options_and_camera_specs_are_named(tmp_path):
    from robolearn.config_io import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option 'sucess_topic' \(did you mean 'success_topic'\?\)"):
        _make("real/franka_fr3", sucess_topic="/ok")
    with pytest.raises(ValueError, match="an OpenCV camera needs width, height and fps"):
        _make("real/franka_fr3", cameras={"front": {"source": 0}})
    with pytest.raises(ValueError, match="give exactly one of source"):
        _make("real/franka_fr3", cameras={"front": {"source": 0, "topic": "/a", "width": 1, "height": 1, "fps": 1}})
    from robolearn.hardware.robot_config import resolve_robot

    bad = tmp_path / "arm.yaml"
    bad.write_text(resolve_robot("ur5e").read_text() + "\nextra:\n  real_env:\n    home: [0.0, 0.0]\n")
    with pytest.raises(ConfigError, match=rf"{bad}: extra.real_env.home must be 6 joint positions"):
        _make(f"real/{bad}")
    bad.write_text(resolve_robot("ur5e").read_text() + "\nextra:\n  real_env:\n    succes_topic: /x\n")
    with pytest.raises(ConfigError, match=rf"{bad}: extra.real_env: unknown key 'succes_topic'"):
        _make(f"real/{bad}")
    with pytest.raises(FileNotFoundError, match="shipped robots: franka_fr3, sim_arm, ur5e"):
        _make("real/nope")


def test_envs_layer_does_not_import_deploy():
    """The registry reaches real/ by a string entry point: importing the env registry loads no deploy module."""
    import subprocess
    import sys

    code = ("import sys, robolearn.envs.registry as r; r._load_builtins(); "
            "print([m for m in sys.modules if m.startswith('robolearn.deploy')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
