"""How a policy action chunk becomes joint targets (registry: name -> mapper class).

Mapping runs in the inference worker, once per chunk, so the fixed-rate loop never pays for IK.
A mapper turns a chunk (H, A) into command vectors (H, C): the n joint targets, then the gripper
command when the robot has one.

``joint_position``: actions in [-1, 1] scaled onto the joint range (plus an optional gripper entry).
``ee_delta``: the sim tasks' 7-D end-effector deltas [dx, dy, dz, drx, dry, drz, gripper] scaled by
the robot config, applied to the measured end-effector pose, clamped into the workspace box, and turned
into joint targets by the robot's IK (an object with ``forward_kinematics(q)`` and ``solve_ik(q, pos, quat)``).
"""
from __future__ import annotations

import numpy as np

from robolearn.deploy.safety import check_vector, clamp_workspace


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of wxyz quaternions."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
                     w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
                     w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def axis_angle_quat(rotvec: np.ndarray) -> np.ndarray:
    """wxyz quaternion of a rotation vector (axis * angle)."""
    rotvec = np.asarray(rotvec, dtype=np.float64)
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = rotvec / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def scale_to_range(a: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Map [-1, 1] onto [lower, upper] (values outside are clipped to [-1, 1] first)."""
    a = np.clip(a, -1.0, 1.0)
    return lower + (a + 1.0) * 0.5 * (upper - lower)


class JointPositionMapper:
    def __init__(self, lower, upper, gripper: bool = True, **_):
        self.lower = np.asarray(lower, np.float64)
        self.upper = np.asarray(upper, np.float64)
        self.gripper = gripper
        self.n_joints = self.lower.shape[0]
        self.action_dim = self.command_dim = self.n_joints + int(gripper)

    def to_targets(self, chunk, state, last_command=None) -> np.ndarray:
        chunk = np.asarray(chunk, np.float64)
        n = self.n_joints
        out = np.clip(chunk, -1.0, 1.0)
        out[:, :n] = scale_to_range(chunk[:, :n], self.lower, self.upper)
        return out


class EEDeltaMapper:
    """Chunk of end-effector deltas -> joint targets.

    The deltas accumulate on the setpoint (the pose of the last command), which may lead the measured
    pose by at most ``max_lead`` per axis, exactly as the sim env's impedance setpoint does (a zero action
    holds still, a position servo under load still reaches its goal, and pushing on an obstacle cannot
    wind up). Later deltas of a chunk chain from the previous target. Each target is clamped into the workspace and
    solved with IK warm-started from the previous solution.
    """

    action_dim = 7

    def __init__(self, kinematics, pos_scale: float, rot_scale: float, workspace_low, workspace_high,
                 lower=None, gripper: bool = True, ik_iters: int = 30, max_lead: float | None = None, **_):
        if kinematics is None:
            raise ValueError("ee_delta actions need the robot's kinematics (forward_kinematics / solve_ik): "
                             "set `kinematics` in the robot config")
        self.kin = kinematics
        self.n_joints = len(lower) if lower is not None else 7
        self.gripper = gripper
        self.command_dim = self.n_joints + int(gripper)
        self.ik_iters = ik_iters
        # the sim env's bound: two full-scale steps
        self.max_lead = float(2.0 * pos_scale if max_lead is None else max_lead)
        self.pos_scale, self.rot_scale = float(pos_scale), float(rot_scale)
        self.low, self.high = np.asarray(workspace_low, np.float64), np.asarray(workspace_high, np.float64)

    def target_pose(self, action, pos: np.ndarray, quat: np.ndarray,
                    measured: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pure part: the Cartesian target for ``action`` applied to the setpoint ``(pos, quat)``: at most
        ``max_lead`` per axis from the ``measured`` position (as the sim env's impedance setpoint), then
        clamped into the workspace box."""
        a = np.clip(check_vector(action, 7, "action"), -1.0, 1.0)
        new_pos = np.asarray(pos, np.float64) + a[:3] * self.pos_scale
        if measured is not None:
            new_pos = np.clip(new_pos, measured - self.max_lead, measured + self.max_lead)
        new_pos = clamp_workspace(new_pos, self.low, self.high)
        new_quat = quat_mul(axis_angle_quat(a[3:6] * self.rot_scale), np.asarray(quat, np.float64))
        return new_pos, new_quat / np.linalg.norm(new_quat)

    def base_pose(self, meas_pos, meas_quat, cmd_pos=None, cmd_quat=None):
        """Pure part: where the chunk's first delta starts: the last command's pose (the setpoint), or
        the measured pose when nothing was commanded yet."""
        if cmd_pos is None:
            return np.asarray(meas_pos, np.float64), np.asarray(meas_quat, np.float64)
        return np.asarray(cmd_pos, np.float64), np.asarray(cmd_quat, np.float64)

    def to_targets(self, chunk, state, last_command=None) -> np.ndarray:
        q = np.asarray(state.q, np.float64)
        pos, quat = self.kin.forward_kinematics(q)
        measured = pos.copy()
        if last_command is not None:
            q = np.asarray(last_command, np.float64)[: self.n_joints]
            pos, quat = self.base_pose(pos, quat, *self.kin.forward_kinematics(q))
        out = np.zeros((len(chunk), self.command_dim))
        for i, action in enumerate(np.asarray(chunk, np.float64)):
            pos, quat = self.target_pose(action, pos, quat, measured)
            q = np.asarray(self.kin.solve_ik(q, pos, quat, iters=self.ik_iters), np.float64)
            out[i, : self.n_joints] = q
            if self.gripper:
                out[i, self.n_joints] = np.clip(action[6], -1.0, 1.0)
        return out


MAPPERS = {"joint_position": JointPositionMapper, "ee_delta": EEDeltaMapper}


def make_mapper(name: str, **kwargs):
    if name not in MAPPERS:
        raise KeyError(f"unknown action mode {name!r}; known: {', '.join(sorted(MAPPERS))}")
    return MAPPERS[name](**kwargs)


class JointStateObs:
    """Policy observation = measured joint positions, velocities and gripper (when known)."""

    def build(self, state) -> dict:
        parts = [np.asarray(state.q, np.float32), np.asarray(state.dq, np.float32)]
        if state.gripper is not None:
            parts.append(np.array([state.gripper], np.float32))
        obs = {"state": np.concatenate(parts)}
        if "images" in state.extras:
            obs["images"] = state.extras["images"]
        return obs
