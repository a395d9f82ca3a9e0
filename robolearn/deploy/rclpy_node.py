"""The node on rclpy (when ROS 2 is sourced): the same NodeCore, parameters as ROS parameters.

Run it through ``launch/robolearn.launch.py`` or ``robolearn serve --transport rclpy``. Parameters:
``robot_config`` (YAML path), ``checkpoint`` or ``policy`` (file.py:Name), ``start_enabled``,
the chunk-queue knobs, and every deployment field of the robot config (topics, rates, limits...),
which override the YAML's values.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from types import SimpleNamespace

from robolearn.config_io import from_dict
from robolearn.hardware.robot_config import RobotConfig

NODE_PARAMS = {"robot_config": "sim_arm", "checkpoint": "", "policy": "", "start_enabled": False,
               "inference": "process", "torch_threads": 1, "rt_priority": 0,
               "refill_threshold": 4, "new_weight": 0.5, "freeze": 0, "status_period": 5.0}
# Robot-config fields exposed as ROS parameters (plain scalars and lists; `extra` is not).
ROBOT_PARAMS = tuple(f.name for f in dataclasses.fields(RobotConfig) if f.name != "extra")


def robot_parameter_defaults(cfg: RobotConfig) -> dict:
    """ROS parameter defaults from a robot config: tuples become typed arrays (numbers as doubles);
    empty lists are left out (ROS cannot infer an array's type from an empty default), so they keep
    the YAML's value."""
    out = {}
    for name in ROBOT_PARAMS:
        v = getattr(cfg, name)
        if dataclasses.is_dataclass(v):
            continue  # a nested table (the DH `kinematics`) is no ROS parameter: it keeps the YAML's value
        if isinstance(v, tuple):
            if not v:
                continue
            v = [float(x) for x in v] if all(isinstance(x, (int, float)) for x in v) else [str(x) for x in v]
        elif isinstance(v, int) and not isinstance(v, bool) and name.endswith("_hz"):
            v = float(v)  # rates are doubles whatever the YAML wrote
        out[name] = v
    return out


def config_from_parameters(base: RobotConfig, values: dict) -> RobotConfig:
    """Robot config = YAML values overridden by ROS parameters; validated like the YAML."""
    merged = {**dataclasses.asdict(base), **{k: v for k, v in values.items() if k in ROBOT_PARAMS}}
    return from_dict(RobotConfig, merged, where="ROS parameters")


def rclpy_messages() -> SimpleNamespace:
    from builtin_interfaces.msg import Duration, Time
    from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
    from sensor_msgs.msg import CompressedImage, Image, JointState
    from std_msgs.msg import Bool, Float64MultiArray, Header, MultiArrayDimension, MultiArrayLayout
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    return SimpleNamespace(Time=Time, Duration=Duration, Header=Header, Bool=Bool, JointState=JointState,
                           JointTrajectory=JointTrajectory, JointTrajectoryPoint=JointTrajectoryPoint,
                           Float64MultiArray=Float64MultiArray, MultiArrayLayout=MultiArrayLayout,
                           MultiArrayDimension=MultiArrayDimension, PoseStamped=PoseStamped, Pose=Pose, Point=Point,
                           Quaternion=Quaternion, Image=Image, CompressedImage=CompressedImage)


def make_node(policy=None, cfg: RobotConfig | None = None, overrides: dict | None = None, name: str = "robolearn"):
    """Build the rclpy node (rclpy.init() must have been called)."""
    from collections import Counter

    from rclpy.node import Node
    from rclpy.qos import QoSProfile, qos_profile_sensor_data

    from robolearn.deploy.node import NodeCore, load_policy_object

    class RobolearnNode(Node):
        def __init__(self):
            super().__init__(name)
            for key, default in NODE_PARAMS.items():
                self.declare_parameter(key, default)
            p = lambda key: self.get_parameter(key).value  # noqa: E731
            base = cfg or RobotConfig.load(p("robot_config"))
            declared = robot_parameter_defaults(base)
            for key, default in declared.items():
                self.declare_parameter(key, default)
            self.cfg = config_from_parameters(base, {k: p(k) for k in declared})
            spec = None
            if policy is None and p("inference") == "process":  # the loop keeps its GIL to itself
                spec = {"checkpoint": p("checkpoint") or None, "policy": p("policy") or None,
                        "threads": int(p("torch_threads"))}
                if bool(spec["checkpoint"]) == bool(spec["policy"]):
                    raise ValueError("set exactly one of the parameters checkpoint / policy")
            elif p("inference") not in ("process", "thread"):
                raise ValueError(f"parameter inference must be 'process' or 'thread', got {p('inference')!r}")
            pol = policy if policy is not None or spec else load_policy_object(p("checkpoint") or None,
                                                                               p("policy") or None)
            loop_over = dict(refill_threshold=p("refill_threshold"), new_weight=p("new_weight"), freeze=p("freeze"),
                             rt_priority=p("rt_priority"))
            loop_over.update({k: v for k, v in (overrides or {}).items() if v is not None})
            msgs = rclpy_messages()
            self.core = NodeCore(self.cfg, pol, lambda m: None, msgs, loop_over, inference_spec=spec)
            cmd_type = msgs.JointTrajectory if self.cfg.command_interface == "trajectory" else msgs.Float64MultiArray
            self.pub = self.create_publisher(cmd_type, self.core.command_topic, QoSProfile(depth=10))
            self.core._publish_msg = self.pub.publish
            self.received, self.dropped = Counter(), Counter()
            sub = self._subscribe
            sub(msgs.JointState, self.cfg.joint_states_topic, self.core.on_joint_state, qos_profile_sensor_data)
            sub(msgs.Bool, self.cfg.enable_topic, self.core.on_enable, 10)
            sub(msgs.Bool, self.cfg.estop_topic, self.core.on_estop, 10)
            if self.cfg.object_pose_topic:
                sub(msgs.PoseStamped, self.cfg.object_pose_topic, self.core.on_object_pose, qos_profile_sensor_data)
            for cam, topic in self.core.image_topics().items():
                typ = msgs.CompressedImage if self.core.is_compressed(topic) else msgs.Image
                sub(typ, topic, lambda m, cam=cam: self.core.on_image(cam, m), qos_profile_sensor_data)
            self.create_timer(max(0.5, float(p("status_period"))), self._print_status)
            self.core.loop.start()
            if p("start_enabled"):
                self.core.loop.set_enabled(True)

        def _subscribe(self, typ, topic, callback, qos):
            def guarded(msg):
                self.received[topic] += 1
                try:
                    callback(msg)
                except Exception as exc:  # malformed message: drop, count, keep running
                    self.dropped[topic] += 1
                    self.get_logger().warning(f"dropped message on {topic}: {exc}", throttle_duration_sec=1.0)
            return self.create_subscription(typ, topic, guarded, qos)

        def _print_status(self):
            self.get_logger().info(f"[{self.core.loop.mode}] {self.core.loop.stats.format()} dropped {dict(self.dropped)}")

        def destroy_node(self):
            self.core.loop.stop()
            return super().destroy_node()

    return RobolearnNode()


def run_rclpy(cfg: RobotConfig, policy, overrides: dict, seconds: float = 0.0, enable: bool = False) -> int:
    try:
        import rclpy
    except ImportError:
        raise ValueError("--transport rclpy needs ROS 2 (rclpy): source your ROS 2 setup, or use --transport dds") from None
    rclpy.init()
    node = make_node(policy, cfg, overrides)
    if enable:
        node.core.loop.set_enabled(True)
    start = time.monotonic()
    try:
        while rclpy.ok() and (seconds <= 0 or time.monotonic() - start < seconds):
            rclpy.spin_once(node, timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for the launch file: ``python -m robolearn.deploy.rclpy_node --ros-args ...``."""
    import rclpy

    rclpy.init(args=sys.argv if argv is None else argv)
    node = make_node()
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
