"""The rclpy transport: parameters, launch files (checked here) and the node itself (needs ROS 2)."""
import importlib.util
import py_compile
from pathlib import Path

import pytest
import yaml

from robolearn.deploy.rclpy_node import (NODE_PARAMS, ROBOT_PARAMS, config_from_parameters,
                                         robot_parameter_defaults)
from robolearn.hardware.robot_config import RobotConfig

ROOT = Path(__file__).resolve().parents[1]
HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None
NO_RCLPY = "rclpy (ROS 2) is not installable on this machine"


def test_params_yaml_names_only_known_parameters_and_validates():
    doc = yaml.safe_load((ROOT / "launch/params.yaml").read_text())
    params = doc["robolearn"]["ros__parameters"]
    unknown = set(params) - set(NODE_PARAMS) - set(ROBOT_PARAMS)
    assert not unknown, f"params.yaml has parameters the node does not declare: {unknown}"
    base = RobotConfig.load(ROOT / params["robot_config"])
    cfg = config_from_parameters(base, params)
    assert cfg.command_hz == params["command_hz"] and cfg.max_joint_velocity == params["max_joint_velocity"]
    assert cfg.joint_names == base.joint_names  # not overridden: the YAML's value
    with pytest.raises(ValueError, match="command_interface"):
        config_from_parameters(base, {"command_interface": "action"})


@pytest.mark.parametrize("robot", ["franka_fr3", "ur5e", "sim_arm"])
def test_parameter_defaults_are_typed_ros_values(robot):
    cfg = RobotConfig.load(ROOT / f"hardware/{robot}.yaml")
    d = robot_parameter_defaults(cfg)
    for name, v in d.items():
        assert isinstance(v, (bool, int, float, str, list)), name
        if isinstance(v, list):
            assert v and len({type(x) for x in v}) == 1, f"{name}: ROS arrays must be non-empty and one type"
    assert config_from_parameters(cfg, d) == cfg  # round trip


def test_launch_file_compiles_and_builds():
    py_compile.compile(str(ROOT / "launch/robolearn.launch.py"), doraise=True)
    try:  # (the repository's own launch/ folder shadows nothing: it has no LaunchDescription)
        from launch import LaunchDescription  # noqa: F401
    except ImportError:
        pytest.skip("the ROS 2 `launch` package is not installable on this machine (only compiled)")
    spec = importlib.util.spec_from_file_location("robolearn_launch", ROOT / "launch/robolearn.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.generate_launch_description().entities


def test_serve_rclpy_without_ros_is_a_clear_error():
    if HAVE_RCLPY:
        pytest.skip("rclpy is installed here: the error path cannot happen")
    from robolearn.deploy.rclpy_node import run_rclpy

    with pytest.raises(ValueError, match="needs ROS 2"):
        run_rclpy(RobotConfig(), policy=None, overrides={})


@pytest.mark.skipif(not HAVE_RCLPY, reason=NO_RCLPY)
def test_rclpy_node_commands_on_ros_topics():
    """With ROS 2 sourced: the rclpy node, enabled, turns joint states into JointTrajectory commands."""
    import threading
    import time

    import numpy as np
    import rclpy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Bool
    from trajectory_msgs.msg import JointTrajectory

    from robolearn.deploy.rclpy_node import make_node

    class Hold:
        def reset(self):
            pass

        def act(self, obs):
            return np.zeros((4, 8))

    cfg = RobotConfig.load(ROOT / "hardware/sim_arm.yaml")
    import dataclasses

    cfg = dataclasses.replace(cfg, action_mode="joint_position", kinematics="", object_pose_topic="")
    rclpy.init()
    try:
        node = make_node(Hold(), cfg)
        peer = rclpy.create_node("robolearn_test_peer")
        got = []
        peer.create_subscription(JointTrajectory, cfg.trajectory_topic, got.append, 10)
        js = peer.create_publisher(JointState, cfg.joint_states_topic, 10)
        en = peer.create_publisher(Bool, cfg.enable_topic, 10)
        ex = rclpy.executors.MultiThreadedExecutor()
        ex.add_node(node)
        ex.add_node(peer)
        threading.Thread(target=ex.spin, daemon=True).start()
        deadline = time.time() + 5
        while time.time() < deadline and not got:
            js.publish(JointState(name=list(cfg.joint_names), position=[0.0, 0.3, 0.0, 1.5, 0.0, 1.0, 0.0]))
            en.publish(Bool(data=True))
            time.sleep(0.01)
        assert got and list(got[-1].joint_names) == list(cfg.command_joint_names)
        node.destroy_node()
        peer.destroy_node()
    finally:
        rclpy.try_shutdown()
