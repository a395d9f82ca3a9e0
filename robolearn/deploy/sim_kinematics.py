"""The robot's kinematics and the policy observation, rebuilt on the serving side from ROS messages.

For the sim arm the serving process builds its own copy of the MuJoCo task (never stepped): forward
kinematics of the measured joints gives the end-effector pose, the finger joints give the gripper
opening, and the object pose topic fills the privileged object slot, so the policy sees exactly the
state vector it was trained on (``env.state_layout``).
"""
from __future__ import annotations

import threading

import numpy as np

from robolearn.deploy.inference import ObservationNotReady


class SimKinematics:
    """FK / IK of a registered sim task's arm; thread-safe (the model's scratch data is shared)."""

    def __init__(self, env_name: str, **overrides):
        import robolearn

        self.env = robolearn.make(env_name, **overrides)
        self.env.reset(seed=0)
        self.robot = self.env.unwrapped.robot
        self._lock = threading.Lock()

    def forward_kinematics(self, q):
        with self._lock:
            return self.robot.forward_kinematics(np.asarray(q, np.float64))

    def solve_ik(self, q_init, pos, quat, iters: int = 100):
        with self._lock:
            return self.robot.solve_ik(np.asarray(q_init, np.float64), pos, quat, iters=iters)


class SimTaskObs:
    """Builds ``{"state": ...}`` in the task's ``state_layout`` order from a RobotState."""

    def __init__(self, kin: SimKinematics, object_topic: str = "", cameras: tuple[str, ...] = ()):
        self.kin = kin
        self.layout = list(kin.env.unwrapped.state_layout)
        self.object_topic = object_topic
        names = [n for n, _ in self.layout]
        if names[:3] != ["ee_pos", "ee_quat", "gripper"]:
            raise ValueError(f"unsupported state layout {self.layout}: expected ee_pos, ee_quat, gripper first")
        extra = sum(n for _, n in self.layout[3:])
        if extra not in (0, 7):
            raise ValueError(f"state layout {self.layout}: the privileged part must be one object pose (7 values)")
        self.needs_object = extra == 7
        self.cameras = tuple(cameras)  # the robot config's cameras (the kinematic copy renders nothing)

    def build(self, state) -> dict:
        pos, quat = self.kin.forward_kinematics(state.q)
        if state.gripper is None:
            raise ObservationNotReady("no gripper opening in /joint_states (gripper_state_joints missing)")
        parts = [pos, quat, [state.gripper]]
        if self.needs_object:
            pose = state.extras.get("object_pose")
            if pose is None:
                raise ObservationNotReady(f"no object pose received yet on {self.object_topic or '(object_pose_topic unset)'}")
            parts += [pose[0], pose[1]]
        obs = {"state": np.concatenate(parts).astype(np.float32)}
        if self.cameras:
            images = state.extras.get("images", {})
            missing = [c for c in self.cameras if c not in images]
            if missing:
                raise ObservationNotReady(f"no image received yet for camera(s) {missing}")
            obs["images"] = {c: images[c] for c in self.cameras}
        return obs
