"""A MuJoCo task run as a ros2_control robot on DDS: what CI deploys against.

It behaves like the two controllers the node can drive:
- JointTrajectoryController: a new JointTrajectory replaces the current one; the target moves linearly
  from where it was to each point at ``header.stamp`` (0 = now) + ``time_from_start``, then holds the
  last point forever;
- ForwardCommandController: a Float64MultiArray (one value per command joint) is the target until
  the next one, forever (no timeout: the sender's watchdog is what stops the robot).
and publishes ``/joint_states`` (arm + finger joints), the task object's PoseStamped and camera images.
Malformed commands are dropped and counted, the robot keeps running.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from robolearn.deploy import ros_msgs as M
from robolearn.deploy.dds import DdsBus
from robolearn.deploy.ros_io import dds_messages, stamp_now
from robolearn.hardware.robot_config import RobotConfig


def sample_trajectory(t: float, start_time: float, start: np.ndarray, times: np.ndarray,
                      points: np.ndarray) -> np.ndarray:
    """Target at time ``t``: linear from ``start`` (at ``start_time``) through ``points`` (at ``times``), then hold."""
    knots_t = np.concatenate([[start_time], times])
    knots = np.vstack([start[None], points])
    if t <= knots_t[0]:
        return knots[0].copy()
    if t >= knots_t[-1]:
        return knots[-1].copy()
    i = int(np.searchsorted(knots_t, t, side="right")) - 1
    span = knots_t[i + 1] - knots_t[i]
    frac = 1.0 if span <= 0 else (t - knots_t[i]) / span
    return knots[i] + frac * (knots[i + 1] - knots[i])


class SimRobot:
    def __init__(self, env_name: str, cfg: RobotConfig, domain_id: int = 0, rate_hz: float = 100.0,
                 cameras: tuple[str, ...] = (), image_hz: float = 10.0, image_size: int = 84, seed: int = 0,
                 overrides: dict | None = None, bus: DdsBus | None = None):
        import robolearn

        self.cfg = cfg
        kwargs = dict(overrides or {})
        if cameras:
            kwargs.update(cameras=list(cameras), image_size=image_size)
        self.env = robolearn.make(env_name, **kwargs)
        self.env.reset(seed=seed)
        self.u = self.env.unwrapped
        self.robot = self.u.robot
        missing = [j for j in cfg.joint_names if j not in self.robot.joint_names]
        if missing:
            raise ValueError(f"robot config {cfg.name!r} names joint(s) {missing} the sim arm does not have "
                             f"({list(self.robot.joint_names)})")
        self.robot.set_joint_mode()
        self.rate_hz = rate_hz
        self.n_sub = max(1, int(round(1.0 / (rate_hz * self.u.physics_dt))))
        self.cameras = tuple(cameras)
        self.image_every = max(1, int(round(rate_hz / image_hz))) if cameras else 0
        self.image_size = image_size
        self.joints = list(cfg.command_joint_names)
        self.n_arm = len(cfg.joint_names)
        self._arm_idx = [list(self.robot.joint_names).index(j) for j in cfg.joint_names]
        self.q0 = self.robot.qpos()
        grip0 = 1.0 - 2.0 * self.robot.gripper_opening()
        self.target = np.concatenate([self.q0[self._arm_idx], [grip0] if len(self.joints) > self.n_arm else []])
        self._traj = None  # (start_time, start, times, points)
        self._lock = threading.Lock()
        self.counts = {"trajectory": 0, "forward": 0}
        self.last_joint_names: list[str] = []
        self.ever_success = False
        self.ticks = 0
        self.msgs = dds_messages()
        self.bus = bus or DdsBus(domain_id)
        self.js_writer = self.bus.writer(cfg.joint_states_topic, M.JointState)
        self.pose_writer = self.bus.writer(cfg.object_pose_topic, M.PoseStamped) if cfg.object_pose_topic else None
        self.image_writers = {}
        for c in self.cameras:
            topic = cfg.image_topic.format(camera=c)
            self.image_writers[c] = self.bus.writer(topic, M.CompressedImage if topic.endswith("/compressed") else M.Image)
        self.bus.reader(cfg.trajectory_topic, M.JointTrajectory, self.on_trajectory)
        self.bus.reader(cfg.forward_topic, M.Float64MultiArray, self.on_forward)
        from robolearn.sim.arm import FINGER_JOINTS

        self.finger_joints = FINGER_JOINTS

    # ---- controllers -------------------------------------------------------------------------------------
    def on_trajectory(self, msg) -> None:
        names = list(msg.joint_names)
        unknown = [n for n in names if n not in self.joints]
        if unknown or len(set(names)) != len(names) or not names:
            raise ValueError(f"JointTrajectory: bad joint names {names} (known {self.joints})")
        if not msg.points:
            raise ValueError("JointTrajectory: no points")
        times, points = [], []
        for p in msg.points:
            if len(p.positions) != len(names):
                raise ValueError(f"JointTrajectory: point has {len(p.positions)} positions for {len(names)} joints")
            pos = np.asarray(p.positions, np.float64)
            if not np.all(np.isfinite(pos)):
                raise ValueError("JointTrajectory: non-finite position")
            times.append(p.time_from_start.sec + p.time_from_start.nanosec * 1e-9)
            points.append(pos)
        if np.any(np.diff(times) < 0):
            raise ValueError("JointTrajectory: time_from_start must not decrease")
        now = time.time()
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        t0 = stamp if stamp > 0 else now
        idx = [self.joints.index(n) for n in names]
        with self._lock:
            current = self._current_target(now)
            full = np.tile(current, (len(points), 1))
            full[:, idx] = np.array(points)
            self._traj = (now, current, t0 + np.array(times), full)
            self.counts["trajectory"] += 1
            self.last_joint_names = names

    def on_forward(self, msg) -> None:
        data = np.asarray(msg.data, np.float64)
        if data.shape != (len(self.joints),):
            raise ValueError(f"Float64MultiArray: {data.shape[0]} values for {len(self.joints)} joints {self.joints}")
        if not np.all(np.isfinite(data)):
            raise ValueError("Float64MultiArray: non-finite value")
        with self._lock:
            self._traj = None
            self.target = data
            self.counts["forward"] += 1

    def _current_target(self, now: float) -> np.ndarray:
        if self._traj is None:
            return self.target.copy()
        start_time, start, times, points = self._traj
        return sample_trajectory(now, start_time, start, times, points)

    # ---- the robot -----------------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        with self._lock:
            target = self._current_target(now)
            self.target = target
        q_full = self.robot.qpos()
        q_full[self._arm_idx] = target[: self.n_arm]
        gripper = None
        if len(target) > self.n_arm and not getattr(self.u.task, "fixed_gripper", False):
            gripper = float(np.clip(target[self.n_arm], -1.0, 1.0))
        self.robot.command_joints(q_full, gripper)
        self.u.step_physics(self.n_sub)
        self.ticks += 1
        self.publish_state()
        if self.image_every and self.ticks % self.image_every == 0:
            self.publish_images()
        if self.u.task.success(self.u):
            self.ever_success = True

    def publish_state(self) -> None:
        m = self.msgs
        d = self.u.data
        q, dq = self.robot.qpos(), self.robot.qvel()
        fq = [float(d.qpos[i]) for i in self.robot.finger_qpos_idx]
        header = m.Header(stamp=stamp_now(m), frame_id="")
        self.js_writer.write(m.JointState(header=header, name=list(self.robot.joint_names) + list(self.finger_joints),
                                          position=[float(v) for v in q] + fq,
                                          velocity=[float(v) for v in dq] + [0.0] * len(fq), effort=[]))
        if self.pose_writer is not None:
            pos, quat = self.u.object_pose()
            self.pose_writer.write(m.PoseStamped(header=m.Header(stamp=header.stamp, frame_id="world"), pose=m.Pose(
                position=m.Point(x=float(pos[0]), y=float(pos[1]), z=float(pos[2])),
                orientation=m.Quaternion(x=float(quat[1]), y=float(quat[2]), z=float(quat[3]), w=float(quat[0])))))

    def publish_images(self) -> None:
        m = self.msgs
        for cam, w in self.image_writers.items():
            img = self.u.render_camera(cam, self.image_size)
            header = m.Header(stamp=stamp_now(m), frame_id=cam)
            if w.dw.topic.data_type is M.CompressedImage:
                import cv2

                ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                if ok:
                    w.write(m.CompressedImage(header=header, format="jpeg", data=buf.tobytes()))
                continue
            h, wd = img.shape[:2]
            w.write(m.Image(header=header, height=h, width=wd, encoding="rgb8", is_bigendian=0, step=wd * 3,
                            data=img.tobytes()))

    def run(self, seconds: float = 0.0, on_status=None, status_every: float = 0.25) -> None:
        """Real-time loop; ``seconds`` <= 0 runs until interrupted."""
        period = 1.0 / self.rate_hz
        start = next_t = time.monotonic()
        next_status = start
        while seconds <= 0 or time.monotonic() - start < seconds:
            now = time.monotonic()
            if now < next_t:
                time.sleep(next_t - now)
            self.tick(time.time())
            next_t += period
            if time.monotonic() > next_t + 5 * period:  # fell behind: do not try to catch up
                next_t = time.monotonic()
            if on_status is not None and time.monotonic() >= next_status:
                on_status(self.status())
                next_status += status_every
        if on_status is not None:
            on_status(self.status())

    def status(self) -> dict:
        q = self.robot.qpos()
        return {
            "ticks": self.ticks, "sim_time": float(self.u.data.time), "commands": dict(self.counts),
            "dropped": dict(self.bus.dropped), "drop_reasons": dict(self.bus.last_error),
            "received": dict(self.bus.received), "success": bool(self.u.task.success(self.u)),
            "ever_success": self.ever_success, "q": q.tolist(), "q0": self.q0.tolist(),
            "moved": float(np.max(np.abs(q - self.q0))), "last_joint_names": self.last_joint_names,
            "target": self.target.tolist(), "ee_pos": self.robot.ee_pose()[0].tolist(), "time": time.time(),
        }
