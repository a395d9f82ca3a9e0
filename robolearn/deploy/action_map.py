"""How a policy action becomes a joint target (registry: name -> mapper class).

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
        self.action_dim = self.lower.shape[0] + int(gripper)

    def to_target(self, action, state, last):
        a = check_vector(action, self.action_dim, "action")
        n = self.lower.shape[0]
        q = scale_to_range(a[:n], self.lower, self.upper)
        return q, (float(np.clip(a[n], -1, 1)) if self.gripper else None)


class EEDeltaMapper:
    action_dim = 7

    def __init__(self, kinematics, pos_scale: float, rot_scale: float, workspace_low, workspace_high, **_):
        if kinematics is None:
            raise ValueError("ee_delta actions need the robot's kinematics (forward_kinematics / solve_ik)")
        self.kin = kinematics
        self.pos_scale, self.rot_scale = float(pos_scale), float(rot_scale)
        self.low, self.high = np.asarray(workspace_low, np.float64), np.asarray(workspace_high, np.float64)

    def target_pose(self, action, pos: np.ndarray, quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pure part: the clamped Cartesian target for ``action`` applied at ``(pos, quat)``."""
        a = np.clip(check_vector(action, 7, "action"), -1.0, 1.0)
        new_pos = clamp_workspace(np.asarray(pos, np.float64) + a[:3] * self.pos_scale, self.low, self.high)
        new_quat = quat_mul(axis_angle_quat(a[3:6] * self.rot_scale), np.asarray(quat, np.float64))
        return new_pos, new_quat / np.linalg.norm(new_quat)

    def to_target(self, action, state, last):
        pos, quat = self.kin.forward_kinematics(np.asarray(state.q, np.float64))
        t_pos, t_quat = self.target_pose(action, pos, quat)
        q = self.kin.solve_ik(np.asarray(state.q, np.float64), t_pos, t_quat)
        return np.asarray(q, np.float64), float(np.clip(action[6], -1.0, 1.0))


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
