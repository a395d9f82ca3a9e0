"""RelativeFrame (SERL semantics): actions in the end-effector frame, pose relative to the reset pose.

Why: a policy that acts in its own tool frame and sees its pose relative to where the episode
started is invariant to where the task sits in the robot's workspace, which is what lets SERL
policies transfer across start poses.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robolearn.envs.api import validate_action

# Quaternion helpers (w, x, y, z), pure functions --------------------------------------------


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b, then a)."""
    aw, ax, ay, az = np.asarray(a, dtype=np.float64)
    bw, bx, by, bz = np.asarray(b, dtype=np.float64)
    return np.array(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ]
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    return np.array([q[0], -q[1], -q[2], -q[3]])


def quat_normalize(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-8:
        raise ValueError(f"end-effector quaternion is not a rotation: {q.tolist()}")
    return q / norm


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    w, x, y, z = quat_normalize(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def relative_pose(p0, q0, p, q) -> tuple[np.ndarray, np.ndarray]:
    """Pose (p, q) expressed in the frame (p0, q0): T0^-1 T. The quaternion has w >= 0."""
    q0 = quat_normalize(q0)
    p_rel = quat_to_mat(q0).T @ (np.asarray(p, np.float64) - np.asarray(p0, np.float64))
    q_rel = quat_mul(quat_conj(q0), quat_normalize(q))
    return p_rel, (-q_rel if q_rel[0] < 0 else q_rel)


def _fit_unit_box(v: np.ndarray) -> np.ndarray:
    """Scale a rotated 3-vector back into [-1, 1]^3 keeping its direction (per-axis clipping
    downstream would bend it)."""
    peak = float(np.max(np.abs(v)))
    return v / peak if peak > 1.0 else v


class RelativeFrame(gym.Wrapper):
    """Actions (x, y, z, rx, ry, rz, ...) are given in the current end-effector frame and rotated
    into the base frame before the env applies them (translation and rotation parts by the EE
    orientation; the rest, e.g. the gripper, untouched). Unlike SERL's twist adjoint, no
    position-rotation coupling term is added: our actions are deltas about the EE point, not twists
    about the base origin.

    With ``relative_pose`` (default) the observed ``ee_pos``/``ee_quat`` are replaced by the pose
    relative to the pose at reset: position difference rotated into the reset frame, orientation
    as the relative quaternion q0^-1 * q (wxyz, w >= 0). A base-frame ``info["intervene_action"]``
    is rotated into the EE frame (as SERL does), so interventions are recorded in the policy's frame.

    The env must expose ``env.unwrapped.state_layout`` with slices ``ee_pos`` (3) and ``ee_quat``
    (4, wxyz). Apply it directly on the env, below ObsHistory.
    """

    def __init__(self, env: gym.Env, relative_pose: bool = True):
        layout = getattr(env.unwrapped, "state_layout", None)
        name = getattr(env.unwrapped, "name", type(env.unwrapped).__name__)
        if not layout:
            raise ValueError(
                f"RelativeFrame needs env.unwrapped.state_layout naming the 'ee_pos' (3) and 'ee_quat' (4) "
                f"state slices; {name} has none (it is not an end-effector-controlled env)"
            )
        slices, offset = {}, 0
        for key, size in layout:
            slices[key] = slice(offset, offset + int(size))
            offset += int(size)
        for key, size in (("ee_pos", 3), ("ee_quat", 4)):
            if key not in slices or slices[key].stop - slices[key].start != size:
                raise ValueError(f"RelativeFrame needs a state slice {key!r} of size {size}; {name} layout: {layout}")
        act = env.action_space
        if not isinstance(act, spaces.Box) or len(act.shape) != 1 or act.shape[0] < 6:
            raise ValueError(f"RelativeFrame needs a (>=6,) Box action (x, y, z, rx, ry, rz, ...), got {act}")
        if not isinstance(relative_pose, bool):
            raise ValueError(f"relative_pose must be a bool, got {relative_pose!r}")
        super().__init__(env)
        self.relative_pose = relative_pose
        self._pos, self._quat = slices["ee_pos"], slices["ee_quat"]
        self._rot: np.ndarray | None = None  # current EE orientation (base <- EE)
        self._p0 = self._q0 = None

    # Frame maps ------------------------------------------------------------------------------
    def action_to_base(self, action: np.ndarray) -> np.ndarray:
        out = np.array(action, dtype=np.float32, copy=True)
        out[:3] = _fit_unit_box(self._rot @ out[:3].astype(np.float64))
        out[3:6] = _fit_unit_box(self._rot @ out[3:6].astype(np.float64))
        return out

    def action_to_ee(self, action: np.ndarray) -> np.ndarray:
        out = np.array(action, dtype=np.float32, copy=True)
        out[:3] = self._rot.T @ out[:3].astype(np.float64)
        out[3:6] = self._rot.T @ out[3:6].astype(np.float64)
        return out

    @staticmethod
    def _state(obs: dict) -> np.ndarray:
        state = np.asarray(obs["state"])
        if state.ndim != 1:
            raise ValueError(f"RelativeFrame needs the raw (D,) state, got shape {state.shape}; wrap it below ObsHistory")
        return state

    def _observe(self, obs: dict) -> dict:
        state = self._state(obs)
        p, q = state[self._pos].astype(np.float64), state[self._quat].astype(np.float64)
        self._rot = quat_to_mat(q)
        if not self.relative_pose:
            return obs
        new_state = state.copy()
        p_rel, q_rel = relative_pose(self._p0, self._q0, p, q)
        new_state[self._pos] = p_rel
        new_state[self._quat] = q_rel
        return {**obs, "state": new_state.astype(state.dtype)}

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        state = self._state(obs)
        self._p0 = state[self._pos].astype(np.float64).copy()
        self._q0 = quat_normalize(state[self._quat])
        return self._observe(obs), info

    def step(self, action):
        if self._rot is None:
            raise RuntimeError("RelativeFrame: call reset() before step()")
        unwrapped = self.env.unwrapped
        act = validate_action(action, self.action_space, clip=getattr(unwrapped, "clip_actions", True))
        obs, reward, terminated, truncated, info = self.env.step(self.action_to_base(act))
        if info.get("intervene_action") is not None:  # frame of the pose the action was applied in
            info["intervene_action"] = self.action_to_ee(np.asarray(info["intervene_action"]))
        return self._observe(obs), reward, terminated, truncated, info
