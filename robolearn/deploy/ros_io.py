"""ROS message <-> controller-loop conversions shared by the DDS and rclpy transports.

The functions only use message field names, which are the same for our IDL structs and for
rclpy's generated classes; outgoing messages are built from a ``msgs`` namespace holding either set.
Malformed input raises ``ValueError`` naming the problem; the transport drops and counts it.
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from robolearn.deploy.loop import RobotState
from robolearn.hardware.robot_config import RobotConfig


def joint_state_to_robot_state(msg, cfg: RobotConfig, received: float | None = None) -> RobotState:
    """Pick the configured joints (any order on the wire) out of a JointState."""
    names = list(msg.name)
    pos = np.asarray(msg.position, dtype=np.float64)
    vel = np.asarray(msg.velocity, dtype=np.float64)
    if len(set(names)) != len(names):
        raise ValueError("JointState: duplicate joint names")
    if pos.shape[0] != len(names):
        raise ValueError(f"JointState: {len(names)} names but {pos.shape[0]} positions")
    if vel.shape[0] not in (0, len(names)):
        raise ValueError(f"JointState: {len(names)} names but {vel.shape[0]} velocities")
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in cfg.joint_names if j not in index]
    if missing:
        raise ValueError(f"JointState: missing joint(s) {missing}")
    idx = [index[j] for j in cfg.joint_names]
    q = pos[idx]
    dq = vel[idx] if vel.shape[0] else np.zeros_like(q)
    if not (np.all(np.isfinite(q)) and np.all(np.isfinite(dq))):
        raise ValueError("JointState: non-finite position or velocity")
    gripper = None
    if cfg.gripper_state_joints and all(j in index for j in cfg.gripper_state_joints):
        g = pos[[index[j] for j in cfg.gripper_state_joints]]
        if np.all(np.isfinite(g)):
            gripper = float(np.mean(g) / cfg.gripper_max_position)
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    return RobotState(q=q, dq=dq, received=time.monotonic() if received is None else received,
                      stamp=stamp, gripper=gripper)


def pose_from_msg(msg) -> tuple[np.ndarray, np.ndarray]:
    """PoseStamped -> (pos (3,), quat wxyz (4,)); geometry_msgs orders the quaternion xyzw."""
    p, o = msg.pose.position, msg.pose.orientation
    pos = np.array([p.x, p.y, p.z], dtype=np.float64)
    quat = np.array([o.w, o.x, o.y, o.z], dtype=np.float64)
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
        raise ValueError("PoseStamped: non-finite pose")
    norm = np.linalg.norm(quat)
    if not 0.5 < norm < 1.5:
        raise ValueError(f"PoseStamped: quaternion norm {norm:.3f} is not ~1")
    return pos, quat / norm


def image_from_msg(msg) -> np.ndarray:
    """sensor_msgs/Image rgb8 -> (H, W, 3) uint8."""
    if msg.encoding not in ("rgb8", "bgr8"):
        raise ValueError(f"Image: encoding {msg.encoding!r} not supported (rgb8, bgr8)")
    h, w = int(msg.height), int(msg.width)
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.step != w * 3 or data.size != h * w * 3:
        raise ValueError(f"Image: {data.size} bytes do not make {h}x{w}x3 (step {msg.step})")
    img = data.reshape(h, w, 3)
    return img[..., ::-1].copy() if msg.encoding == "bgr8" else img


def compressed_image_from_msg(msg) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg / png, image_transport's "rgb8; jpeg compressed bgr8" too) -> RGB uint8."""
    import cv2

    fmt = msg.format.lower()
    if not any(k in fmt for k in ("jpeg", "jpg", "png")):
        raise ValueError(f"CompressedImage: format {msg.format!r} not supported (jpeg, png)")
    img = cv2.imdecode(np.frombuffer(bytes(msg.data), dtype=np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"CompressedImage: {len(msg.data)} bytes do not decode as {msg.format!r}")
    return img[..., ::-1].copy()  # OpenCV decodes to BGR


def stamp_now(msgs, t: float | None = None):
    t = time.time() if t is None else t
    sec = int(t)
    return msgs.Time(sec=sec, nanosec=min(int((t - sec) * 1e9), 999_999_999))


def command_values(cfg: RobotConfig, q: np.ndarray, gripper: float | None) -> list[float]:
    values = [float(v) for v in q]
    if cfg.command_gripper and cfg.gripper_joint:
        values.append(0.0 if gripper is None else float(gripper))
    return values


def trajectory_msg(msgs, cfg: RobotConfig, q: np.ndarray, gripper: float | None, reach: float):
    """One-point JointTrajectory reached ``reach`` seconds from now (JTC replaces the old trajectory)."""
    sec = int(reach)
    point = msgs.JointTrajectoryPoint(positions=command_values(cfg, q, gripper),
                                      time_from_start=msgs.Duration(sec=sec, nanosec=int((reach - sec) * 1e9)))
    return msgs.JointTrajectory(header=msgs.Header(stamp=stamp_now(msgs), frame_id=""),
                                joint_names=list(cfg.command_joint_names), points=[point])


def forward_msg(msgs, cfg: RobotConfig, q: np.ndarray, gripper: float | None):
    """Float64MultiArray in command_joint_names order (ForwardCommandController)."""
    return msgs.Float64MultiArray(data=command_values(cfg, q, gripper))


def dds_messages() -> SimpleNamespace:
    from robolearn.deploy import ros_msgs as m

    return SimpleNamespace(**{n: getattr(m, n) for n in (
        "Time", "Duration", "Header", "Bool", "JointState", "JointTrajectory", "JointTrajectoryPoint",
        "Float64MultiArray", "MultiArrayLayout", "MultiArrayDimension", "PoseStamped", "Pose", "Point",
        "Quaternion", "Image", "CompressedImage")})
