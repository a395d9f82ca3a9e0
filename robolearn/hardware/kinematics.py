"""Forward kinematics, the geometric Jacobian and damped-least-squares IK of a serial arm (numpy only).

Why here and in numpy: a real robot env turns the sim's end-effector delta actions
[dx, dy, dz, drx, dry, drz] into joint targets (franka_ros2 and the UR driver take joint targets, not
Cartesian ones), so every real arm needs FK and IK from its published kinematic parameters - the DH
table in the robot config's ``kinematics`` section (robot_config.KinematicsConfig). A 7- or 6-joint
chain is a handful of 4x4 products; a dependency such as pinocchio or mink would bring a URDF parser
and a QP solver for what damped least squares does within the control period.

Conventions: poses are in the frame actions are expressed in (the config's ``base`` transform maps
the DH base frame into it); quaternions are (w, x, y, z) with w >= 0; a rotation delta is a rotation
vector applied in that same frame (left-multiplied), as the sim env and deploy/action_map.py apply it.

IK (``SerialArm.ik``) is damped least squares (Levenberg-Marquardt style: the damping grows with the
remaining error, so it takes full Gauss-Newton steps near the goal and short, safe ones far from it or
near a singularity), with the joint limits as hard bounds: a joint that reaches a bound and is pushed
further is frozen for that step and the step is re-solved on the remaining joints, so the others take
up the motion instead of the result being clipped after the fact. On a redundant arm (FR3: 7 joints)
the spare freedom pushes joints away from their limits only once they come within 10 % of the range
of a bound, so a small delta from a comfortable posture moves the joints as little as possible.
IK never jumps to another solution branch (no random restarts unless asked): from the current joints
it returns the nearest solution it reaches, or its best effort with ``converged=False``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robolearn.hardware.robot_config import KinematicsConfig, RobotConfig

# ---- rotations -----------------------------------------------------------------------------------------


def rot_x(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def xyz_rpy_transform(xyz_rpy) -> np.ndarray:
    """4x4 transform of [x, y, z, roll, pitch, yaw] (URDF: R = Rz(yaw) Ry(pitch) Rx(roll))."""
    x, y, z, roll, pitch, yaw = (float(v) for v in xyz_rpy)
    out = np.eye(4)
    out[:3, :3] = rot_z(yaw) @ rot_y(pitch) @ rot_x(roll)
    out[:3, 3] = (x, y, z)
    return out


def _rz_tz(theta: float, d: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s, 0.0, 0.0], [s, c, 0.0, 0.0], [0.0, 0.0, 1.0, d], [0.0, 0.0, 0.0, 1.0]])


def _rx_tx(alpha: float, a: float) -> np.ndarray:
    """Rx(alpha) Tx(a): Tx along x commutes with a rotation about x."""
    c, s = math.cos(alpha), math.sin(alpha)
    return np.array([[1.0, 0.0, 0.0, a], [0.0, c, -s, 0.0], [0.0, s, c, 0.0], [0.0, 0.0, 0.0, 1.0]])


def _tx_rx(a: float, alpha: float) -> np.ndarray:
    return _rx_tx(alpha, a)


def rotvec_to_matrix(rotvec) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis * angle), by Rodrigues' formula."""
    v = np.asarray(rotvec, np.float64)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * kx + (1.0 - np.cos(angle)) * (kx @ kx)


def matrix_to_rotvec(rot: np.ndarray) -> np.ndarray:
    """Rotation vector of a rotation matrix; exact near 0 and near pi (where the sine formula fails)."""
    q = matrix_to_quat(rot)
    w, xyz = q[0], q[1:]
    s = float(np.linalg.norm(xyz))
    if s < 1e-12:
        return 2.0 * xyz  # first order: angle ~ 2 |xyz|
    angle = 2.0 * np.arctan2(s, w)  # in [0, pi] since w >= 0
    return xyz / s * angle


def matrix_to_quat(rot: np.ndarray) -> np.ndarray:
    """(w, x, y, z) with w >= 0 of a rotation matrix (Shepperd's method: stable for every angle)."""
    m = np.asarray(rot, np.float64)
    tr = m[0, 0] + m[1, 1] + m[2, 2]
    if tr > 0:
        s = 2.0 * np.sqrt(1.0 + tr)
        q = np.array([0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s])
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = np.array([(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s])
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = np.array([(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s])
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = np.array([(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s])
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def quat_to_matrix(quat) -> np.ndarray:
    """Rotation matrix of a (w, x, y, z) quaternion (normalised here, so any non-zero scale works)."""
    q = np.asarray(quat, np.float64)
    norm = float(np.linalg.norm(q))
    if q.shape != (4,) or not np.isfinite(norm) or norm < 1e-9:
        raise ValueError(f"quaternion must be 4 finite numbers (w, x, y, z) of non-zero norm, got {quat!r}")
    w, x, y, z = q / norm
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def pose_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """6-vector [position error; rotation vector taking ``current`` to ``target``], both in the base frame."""
    return np.concatenate([target[:3, 3] - current[:3, 3], matrix_to_rotvec(target[:3, :3] @ current[:3, :3].T)])


# ---- the arm -------------------------------------------------------------------------------------------


@dataclass
class IKResult:
    q: np.ndarray            # joint positions, always within the limits
    converged: bool          # both errors under their tolerances
    pos_error: float         # metres, |target - reached|
    rot_error: float         # radians, angle between target and reached orientation
    iterations: int


class SerialArm:
    """A chain of revolute joints described by a DH table (standard or modified), with joint limits."""

    def __init__(self, kinematics: KinematicsConfig, lower, upper, name: str = "arm"):
        self.cfg = kinematics
        self.name = name
        self.n_joints = kinematics.n_joints
        self.lower = np.asarray(lower, np.float64)
        self.upper = np.asarray(upper, np.float64)
        if self.lower.shape != (self.n_joints,) or self.upper.shape != (self.n_joints,):
            raise ValueError(f"{name}: joint limits must have {self.n_joints} entries (one per DH row), "
                             f"got {self.lower.shape[0]} and {self.upper.shape[0]}")
        if np.any(self.lower >= self.upper):
            i = int(np.argmax(self.lower >= self.upper))
            raise ValueError(f"{name}: joint {i}: lower limit {self.lower[i]} must be < upper limit {self.upper[i]}")
        self.modified = kinematics.convention == "modified"
        self._a = np.asarray(kinematics.a)
        self._d = np.asarray(kinematics.d)
        self._alpha = np.asarray(kinematics.alpha)
        self._offset = np.asarray(kinematics.theta_offset)
        fa, fd, falpha, ftheta = kinematics.flange
        self._flange = self._row(fa, fd, falpha, ftheta)
        # the constant part of each row, so a chain evaluation builds one matrix per joint
        self._const = [_rx_tx(al, a) if self.modified else _tx_rx(a, al) for a, al in zip(self._a, self._alpha)]
        self._base = xyz_rpy_transform(kinematics.base)
        self._tool = xyz_rpy_transform(kinematics.tool)

    @classmethod
    def from_robot_config(cls, cfg: RobotConfig) -> "SerialArm":
        """The arm of a robot config with a DH ``kinematics`` section. The IK bounds are the config's
        joint limits shrunk by ``joint_margin``, exactly what the deploy safety filter clamps to, so
        the filter never moves an IK solution (and with it the end effector) after the fact."""
        kin = cfg.arm_kinematics
        if kin is None:
            raise ValueError(f"robot {cfg.name!r}: `kinematics` is {cfg.kinematics!r}, not a DH table; "
                             "a real arm needs its DH parameters in the config's kinematics section")
        lower = np.asarray(cfg.joint_lower) + cfg.joint_margin
        upper = np.asarray(cfg.joint_upper) - cfg.joint_margin
        return cls(kin, lower, upper, name=cfg.name)

    # ---- forward kinematics ----------------------------------------------------------------------------
    def _row(self, a: float, d: float, alpha: float, theta: float) -> np.ndarray:
        """One DH row's transform: modified Rx(alpha) Tx(a) Rz(theta) Tz(d), standard Rz(theta) Tz(d) Tx(a) Rx(alpha)."""
        if self.modified:
            return _rx_tx(alpha, a) @ _rz_tz(theta, d)
        return _rz_tz(theta, d) @ _tx_rx(a, alpha)

    def _check_q(self, q) -> np.ndarray:
        q = np.asarray(q, np.float64)
        if q.shape != (self.n_joints,):
            raise ValueError(f"{self.name}: expected {self.n_joints} joint positions, got shape {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"{self.name}: joint positions must be finite, got {q}")
        return q

    def _chain(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(end-effector pose, joint axes (n, 3), points on the axes (n, 3)), all in the base frame."""
        t = self._base
        axes = np.empty((self.n_joints, 3))
        points = np.empty((self.n_joints, 3))
        theta = q + self._offset
        for i in range(self.n_joints):
            if self.modified:  # joint i turns about z of the frame after Rx(alpha_{i-1}) Tx(a_{i-1})
                t = t @ self._const[i]
                axes[i], points[i] = t[:3, 2], t[:3, 3]
                t = t @ _rz_tz(theta[i], self._d[i])
            else:  # joint i turns about z of frame i-1
                axes[i], points[i] = t[:3, 2], t[:3, 3]
                t = t @ _rz_tz(theta[i], self._d[i]) @ self._const[i]
        return t @ self._flange @ self._tool, axes, points

    def fk(self, q) -> np.ndarray:
        """4x4 pose of the end effector (the config's tool frame) for joint positions ``q``."""
        return self._chain(self._check_q(q))[0]

    def forward_kinematics(self, q) -> tuple[np.ndarray, np.ndarray]:
        """(position, quaternion wxyz): the interface deploy/action_map.EEDeltaMapper calls."""
        pose = self.fk(q)
        return pose[:3, 3].copy(), matrix_to_quat(pose[:3, :3])

    def jacobian(self, q) -> np.ndarray:
        """Geometric Jacobian (6, n) at the end effector: rows 0-2 linear velocity, 3-5 angular velocity,
        both in the base frame (column i = [z_i x (p_ee - p_i); z_i] for a revolute joint)."""
        pose, axes, points = self._chain(self._check_q(q))
        return _geometric_jacobian(pose, axes, points)

    # ---- inverse kinematics ----------------------------------------------------------------------------
    def ik(self, q_init, target: np.ndarray, *, iters: int = 200, pos_tol: float = 1e-5, rot_tol: float = 1e-4,
           rot_weight: float = 0.5, damping: float = 1e-4, max_step: float = 0.3, limit_zone: float = 0.1,
           limit_gain: float = 0.2, restarts: int = 0, seed: int = 0) -> IKResult:
        """Joints reaching the 4x4 ``target`` pose from ``q_init`` (clipped into the limits first).

        ``rot_weight`` (metres per radian) weighs orientation against position error; ``damping`` is
        the floor of the LM damping; ``max_step`` caps a step's largest joint change (rad) so a far
        target is approached along a path rather than overshot. ``restarts`` > 0 retries from random
        joint positions when the local solve fails - for a global solve only: a restart may land on
        another branch, so never for streaming deltas to a real robot.
        """
        target = np.asarray(target, np.float64)
        if target.shape != (4, 4) or not np.all(np.isfinite(target)):
            raise ValueError(f"{self.name}: IK target must be a finite 4x4 pose, got shape {target.shape}")
        q0 = np.clip(self._check_q(q_init), self.lower, self.upper)
        best = self._solve(q0, target, iters, pos_tol, rot_tol, rot_weight, damping, max_step, limit_zone, limit_gain)
        rng = np.random.default_rng(seed)
        for _ in range(restarts):
            if best.converged:
                break
            q_start = rng.uniform(self.lower, self.upper)
            res = self._solve(q_start, target, iters, pos_tol, rot_tol, rot_weight, damping, max_step,
                              limit_zone, limit_gain)
            if res.converged or res.pos_error + rot_weight * res.rot_error < best.pos_error + rot_weight * best.rot_error:
                best = res
        return best

    def _solve(self, q, target, iters, pos_tol, rot_tol, rot_weight, damping, max_step, limit_zone, limit_gain):
        n = self.n_joints
        span = self.upper - self.lower
        weights = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        pose, axes, points = self._chain(q)
        err = pose_error(target, pose)
        cost = float((err * weights) @ (err * weights))
        scale = 1.0  # grows after a rejected step (LM), shrinks after an accepted one
        it = 0
        while it < iters and not (np.linalg.norm(err[:3]) < pos_tol and np.linalg.norm(err[3:]) < rot_tol):
            it += 1
            jac = _geometric_jacobian(pose, axes, points) * weights[:, None]
            e = err * weights
            lam = scale * (damping + cost)  # heavier damping far from the goal and near singularities
            dq = self._step(q, jac, e, lam, span, limit_zone, limit_gain / scale if n > 6 else 0.0)
            biggest = float(np.max(np.abs(dq)))
            if biggest > max_step:
                dq *= max_step / biggest
            q_new = np.clip(q + dq, self.lower, self.upper)
            pose_new, axes_new, points_new = self._chain(q_new)
            err_new = pose_error(target, pose_new)
            cost_new = float((err_new * weights) @ (err_new * weights))
            if cost_new < cost:
                q, pose, axes, points, err, cost = q_new, pose_new, axes_new, points_new, err_new, cost_new
                scale = max(scale / 10.0, 1.0)
            else:
                scale *= 10.0
                if scale > 1e9:  # no step helps: out of reach, or held by the limits - best effort
                    break
        pos_err, rot_err = float(np.linalg.norm(err[:3])), float(np.linalg.norm(err[3:]))
        return IKResult(q=q, converged=pos_err < pos_tol and rot_err < rot_tol, pos_error=pos_err,
                        rot_error=rot_err, iterations=it)

    def _step(self, q, jac, e, lam, span, limit_zone, limit_gain) -> np.ndarray:
        """One damped least-squares step; joints at a bound that it pushes outward are frozen and the
        step is re-solved on the others, so they take up the motion."""
        n = self.n_joints
        lo_gap = (q - self.lower) / span
        hi_gap = (self.upper - q) / span
        push = (np.where(lo_gap < limit_zone, limit_zone - lo_gap, 0.0)
                - np.where(hi_gap < limit_zone, limit_zone - hi_gap, 0.0)) * span * limit_gain
        free = np.ones(n, bool)
        dq = np.zeros(n)
        for _ in range(n):
            jf = jac[:, free]
            jjt = jf @ jf.T + lam * np.eye(6)
            dq = np.zeros(n)
            dq[free] = jf.T @ np.linalg.solve(jjt, e)
            if limit_gain > 0 and np.any(push[free]) and int(free.sum()) > 6:
                # exact null space of the free columns (pinv, not the damped inverse, whose "null
                # space" leaks into the task and would stall the solve near the goal)
                null = np.eye(int(free.sum())) - np.linalg.pinv(jf, rcond=1e-6) @ jf
                dq[free] += null @ push[free]
            outward = free & (((q <= self.lower) & (dq < 0)) | ((q >= self.upper) & (dq > 0)))
            if not outward.any():
                break
            free &= ~outward
            if not free.any():
                return np.zeros(n)
        return dq

    def solve_ik(self, q_init, pos, quat, iters: int = 200) -> np.ndarray:
        """Joints reaching (position, quaternion wxyz) from ``q_init``: the interface
        deploy/action_map.EEDeltaMapper calls. Always within the limits; best effort when unreachable
        (use ``ik`` to see whether it converged)."""
        return self.ik(q_init, make_pose(pos, quat), iters=iters).q

    def delta_target(self, q, dpos, drot, **ik_kwargs) -> IKResult:
        """Joint target for an end-effector delta from joints ``q``: pose = FK(q), moved by ``dpos``
        (metres) and rotated by the rotation vector ``drot`` (radians), both in the base frame, then
        IK from ``q``. This is the real env's action -> joint target step (after scaling and clipping
        the action to the workspace, which the env does)."""
        q = self._check_q(q)
        dpos = np.asarray(dpos, np.float64)
        drot = np.asarray(drot, np.float64)
        if dpos.shape != (3,) or drot.shape != (3,) or not (np.all(np.isfinite(dpos)) and np.all(np.isfinite(drot))):
            raise ValueError(f"{self.name}: dpos and drot must be 3 finite numbers each, got {dpos!r}, {drot!r}")
        target = self.fk(q)
        target[:3, 3] += dpos
        target[:3, :3] = rotvec_to_matrix(drot) @ target[:3, :3]
        return self.ik(q, target, **ik_kwargs)


def _geometric_jacobian(pose: np.ndarray, axes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[z_i x (p_ee - p_i); z_i] per column (np.cross costs more than the whole chain at this size)."""
    r = pose[:3, 3] - points
    out = np.empty((6, axes.shape[0]))
    out[0] = axes[:, 1] * r[:, 2] - axes[:, 2] * r[:, 1]
    out[1] = axes[:, 2] * r[:, 0] - axes[:, 0] * r[:, 2]
    out[2] = axes[:, 0] * r[:, 1] - axes[:, 1] * r[:, 0]
    out[3:] = axes.T
    return out


def make_pose(pos, quat) -> np.ndarray:
    """4x4 pose from a position and a (w, x, y, z) quaternion."""
    pos = np.asarray(pos, np.float64)
    if pos.shape != (3,) or not np.all(np.isfinite(pos)):
        raise ValueError(f"position must be 3 finite numbers, got {pos!r}")
    out = np.eye(4)
    out[:3, :3] = quat_to_matrix(quat)
    out[:3, 3] = pos
    return out
