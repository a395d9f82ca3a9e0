"""The simulated arm as a robot: Cartesian impedance (default) or joint-position control.

Everything a real robot driver would expose lives here (joint state, end-effector pose,
commands), so the env, the scripted experts and the ros2_control-like sim robot share one
implementation.
"""
from __future__ import annotations

import mujoco
import numpy as np

from robolearn.sim.arm import ARM_JOINTS, FINGER_JOINTS, FINGER_RANGE, HOME_QPOS, JOINT_LOWER, JOINT_UPPER, TCP_OFFSET


def mat_to_quat(mat: np.ndarray) -> np.ndarray:
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(mat, dtype=np.float64).reshape(9))
    return quat


def quat_to_mat(quat: np.ndarray) -> np.ndarray:
    mat = np.empty(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    return mat.reshape(3, 3)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(4)
    mujoco.mju_mulQuat(out, np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return out


def axis_angle_to_quat(rotvec: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.array([1.0, 0.0, 0.0, 0.0])
    axis = np.asarray(rotvec, dtype=np.float64) / angle
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def quat_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Rotation vector taking ``current`` to ``target`` (world frame)."""
    err = np.empty(3)
    mujoco.mju_subQuat(err, np.asarray(target, dtype=np.float64), np.asarray(current, dtype=np.float64))
    # mju_subQuat returns the error in the frame of ``current``; express it in world.
    return quat_to_mat(current) @ err


def canonical_tool_quat(quat: np.ndarray) -> np.ndarray:
    """Pick the quaternion sign that is continuous around the tool-down posture.

    Tool-down with yaw psi is (0, -sin(psi/2), cos(psi/2), 0): its y component stays positive
    for |psi| < pi, while w sits at 0 and would flip sign under the usual w >= 0 rule.
    """
    return -quat if quat[2] < 0 else quat


def tool_down_quat(yaw: float = 0.0) -> np.ndarray:
    return np.array([0.0, -np.sin(yaw / 2), np.cos(yaw / 2), 0.0])


def tool_yaw(quat: np.ndarray) -> float:
    """Yaw of the tool's x axis about world z."""
    x_axis = quat_to_mat(quat)[:, 0]
    # Tool-down flips x; yaw 0 has the tool x axis along world -x.
    return float(np.arctan2(-x_axis[1], -x_axis[0]))


class ArmRobot:
    """Bindings to one compiled arm model and its data."""

    joint_names = ARM_JOINTS
    joint_lower = np.array(JOINT_LOWER)
    joint_upper = np.array(JOINT_UPPER)

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.model, self.data = model, data
        jid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in ARM_JOINTS]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in jid])
        self.qvel_idx = np.array([model.jnt_dofadr[j] for j in jid])
        fid = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, n) for n in FINGER_JOINTS]
        self.finger_qpos_idx = np.array([model.jnt_qposadr[j] for j in fid])
        self.arm_act = np.array([mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{n}_pos") for n in ARM_JOINTS])
        self.finger_act = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_ACTUATOR, f"{n}_pos") for n in FINGER_JOINTS]
        )
        self._finger_act0, self._finger_act1 = int(self.finger_act[0]), int(self.finger_act[1])
        self.tcp_site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self.mocap = model.body_mocapid[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "ee_target")]
        self.weld = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_EQUALITY, "ee_weld")
        self._arm_gain = model.actuator_gainprm[self.arm_act].copy()
        self._arm_bias = model.actuator_biasprm[self.arm_act].copy()
        self._scratch = mujoco.MjData(model)  # kinematics queries never touch the live data
        self._jac = np.zeros((6, model.nv))
        self.mode = "cartesian"
        self.set_cartesian_mode()
        self.target_pos, self.target_quat = self.ee_pose()
        self._tool_axis = quat_to_mat(self.target_quat)[:, 2].copy()

    # --- state -------------------------------------------------------------------------
    def qpos(self) -> np.ndarray:
        return self.data.qpos[self.qpos_idx].copy()

    def qvel(self) -> np.ndarray:
        return self.data.qvel[self.qvel_idx].copy()

    def gripper_opening(self) -> float:
        """0 = closed, 1 = fully open."""
        q = self.data.qpos
        return (q[self.finger_qpos_idx[0]] + q[self.finger_qpos_idx[1]]) / (2 * FINGER_RANGE[1])

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        pos = self.data.site_xpos[self.tcp_site].copy()
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.tcp_site])
        return pos, canonical_tool_quat(quat)

    # --- control modes -----------------------------------------------------------------
    def set_cartesian_mode(self) -> None:
        """Weld on, joint servos off: the hand follows the mocap target compliantly."""
        self.model.actuator_gainprm[self.arm_act] = 0.0
        self.model.actuator_biasprm[self.arm_act] = 0.0
        self.data.eq_active[self.weld] = 1
        self.mode = "cartesian"

    def set_joint_mode(self) -> None:
        """Weld off, joint position servos on (ros2_control's position interface)."""
        self.model.actuator_gainprm[self.arm_act] = self._arm_gain
        self.model.actuator_biasprm[self.arm_act] = self._arm_bias
        self.data.eq_active[self.weld] = 0
        self.data.ctrl[self.arm_act] = self.qpos()
        self.mode = "joint"

    def set_gripper(self, command: float) -> None:
        """command in [-1, 1]: -1 fully open, +1 closed."""
        command = min(max(float(command), -1.0), 1.0)
        opening = (1.0 - command) / 2.0 * FINGER_RANGE[1]
        ctrl = self.data.ctrl
        ctrl[self._finger_act0] = opening
        ctrl[self._finger_act1] = opening

    def set_ee_target(self, pos: np.ndarray, quat: np.ndarray) -> None:
        """Absolute TCP setpoint for the impedance controller."""
        if self.mode != "cartesian":
            self.set_cartesian_mode()
        self.target_pos = np.array(pos, dtype=np.float64)
        self.target_quat = np.array(quat, dtype=np.float64)
        self._tool_axis = quat_to_mat(self.target_quat)[:, 2].copy()
        self._write_mocap()

    def move_ee_target(self, dpos: np.ndarray, drot: np.ndarray | None, max_lead: float,
                       low: np.ndarray, high: np.ndarray) -> None:
        """Shift the setpoint by a delta, as a real impedance controller's reference.

        The setpoint accumulates (so a zero action holds still and a constant action moves at
        a constant speed without lag), but never leads the measured TCP by more than
        ``max_lead`` per axis: pushing against an obstacle cannot wind up an unbounded force.
        """
        if self.mode != "cartesian":
            self.set_cartesian_mode()
            self.target_pos, self.target_quat = self.ee_pose()
            self._tool_axis = quat_to_mat(self.target_quat)[:, 2].copy()
        # Three scalars: plain Python beats numpy's per-call overhead on this hot path.
        measured, tgt = self.data.site_xpos[self.tcp_site], self.target_pos
        for i in range(3):
            v = min(max(tgt[i] + dpos[i], measured[i] - max_lead), measured[i] + max_lead)
            tgt[i] = min(max(v, low[i]), high[i])
        if drot is not None:
            self.target_quat = quat_mul(axis_angle_to_quat(drot), self.target_quat)
            self._tool_axis = quat_to_mat(self.target_quat)[:, 2].copy()
        self._write_mocap()

    def _write_mocap(self) -> None:
        np.subtract(self.target_pos, self._tool_axis * TCP_OFFSET, out=self.data.mocap_pos[self.mocap])
        self.data.mocap_quat[self.mocap] = self.target_quat

    def command_joints(self, q_target: np.ndarray, gripper: float | None = None) -> None:
        q_target = np.asarray(q_target, dtype=np.float64)
        if q_target.shape != (len(ARM_JOINTS),) or not np.all(np.isfinite(q_target)):
            raise ValueError(f"joint command must be {len(ARM_JOINTS)} finite values, got {q_target!r}")
        if self.mode != "joint":
            self.set_joint_mode()
        self.data.ctrl[self.arm_act] = np.clip(q_target, self.joint_lower, self.joint_upper)
        if gripper is not None:
            self.set_gripper(gripper)

    # --- kinematics --------------------------------------------------------------------
    def forward_kinematics(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self._scratch
        d.qpos[:] = self.data.qpos
        d.qpos[self.qpos_idx] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self.tcp_site].copy(), canonical_tool_quat(mat_to_quat(d.site_xmat[self.tcp_site]))

    def solve_ik(self, q_init: np.ndarray, pos: np.ndarray, quat: np.ndarray, iters: int = 100,
                 tol: float = 1e-4, damping: float = 1e-3, rest_weight: float = 0.05) -> np.ndarray:
        """Damped least squares to the TCP pose, with a small pull toward the home posture."""
        m, d = self.model, self._scratch
        d.qpos[:] = self.data.qpos
        q = np.array(q_init, dtype=np.float64)
        home = np.array(HOME_QPOS)
        for _ in range(iters):
            d.qpos[self.qpos_idx] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            cur_pos = d.site_xpos[self.tcp_site]
            cur_quat = mat_to_quat(d.site_xmat[self.tcp_site])
            err = np.concatenate([pos - cur_pos, quat_error(quat, cur_quat)])
            if np.linalg.norm(err[:3]) < tol and np.linalg.norm(err[3:]) < 10 * tol:
                break
            mujoco.mj_jacSite(m, d, self._jac[:3], self._jac[3:], self.tcp_site)
            jac = self._jac[:, self.qvel_idx]
            jjt = jac @ jac.T + damping * np.eye(6)
            dq = jac.T @ np.linalg.solve(jjt, err)
            null = np.eye(len(q)) - jac.T @ np.linalg.solve(jjt, jac)
            dq += rest_weight * null @ (home - q)
            q = np.clip(q + dq, self.joint_lower, self.joint_upper)
        return q

    def teleport(self, q: np.ndarray, gripper_opening: float) -> None:
        """Place the arm at ``q`` (reset only) and park the mocap target on the hand."""
        d = self.data
        d.qpos[self.qpos_idx] = q
        d.qvel[self.qvel_idx] = 0.0
        d.qpos[self.finger_qpos_idx] = gripper_opening * FINGER_RANGE[1]
        d.ctrl[self.finger_act] = gripper_opening * FINGER_RANGE[1]
        d.ctrl[self.arm_act] = q
        mujoco.mj_forward(self.model, d)
        pos, quat = self.ee_pose()
        self.set_ee_target(pos, quat)
