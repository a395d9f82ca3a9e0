"""Scripted experts for the sim tasks, with a noise knob for suboptimal demos.

Experts read the true object pose from the simulator (they are the "teleoperator" here) and
close the loop every step, so noise perturbs but does not derail them. ``noise`` is the std of
Gaussian noise added to the motion part of each action (in action units), plus an occasional
pause, which is what makes demos multi-modal and imperfect like human ones.
"""
from __future__ import annotations

import numpy as np

from robolearn.sim.robot import tool_yaw

_EXPERTS: dict[str, type] = {}


def register_expert(task_name: str):
    def deco(cls):
        _EXPERTS[task_name] = cls
        return cls

    return deco


def make_expert(env, noise: float = 0.0, seed: int | None = None):
    task = getattr(env.unwrapped, "task", None)
    name = getattr(task, "name", None)
    if name not in _EXPERTS:
        raise ValueError(f"no scripted expert for env {name or env!r}; experts exist for: {sorted(_EXPERTS)}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return _EXPERTS[name](env.unwrapped, noise=noise, seed=seed)


def _wrap_angle(a: float, period: float) -> float:
    return (a + period / 2) % period - period / 2


class _Expert:
    def __init__(self, env, noise: float, seed: int | None):
        self.env, self.noise = env, float(noise)
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = 0
        self.counter = 0

    def _move(self, goal: np.ndarray, yaw_goal: float | None, gripper: float, gain: float = 1.0,
               max_speed: float = 1.0, sym: float = np.pi / 2, care: float = 1.0) -> np.ndarray:
        """P-control toward ``goal``; ``care`` < 1 scales the noise down where people slow down (contact)."""
        robot, cfg = self.env.robot, self.env.robot_config
        pos, quat = robot.ee_pose()
        action = np.zeros(7, dtype=np.float32)
        action[:3] = np.clip(gain * (goal - pos) / cfg.pos_scale, -max_speed, max_speed)
        if yaw_goal is not None:
            err = _wrap_angle(yaw_goal - tool_yaw(quat), sym)
            action[5] = np.clip(err / cfg.rot_scale, -1, 1)
        action[6] = gripper
        if self.noise > 0:
            action[:3] += self.rng.normal(0, self.noise * care, 3)
            action[5] += self.rng.normal(0, self.noise * care * 0.5)
            if self.rng.random() < 0.05 * min(1.0, self.noise * 3):
                action[:6] = 0.0  # hesitate, as people do
        return np.clip(action, -1, 1).astype(np.float32)


@register_expert("sim/pick_cube")
class PickCubeExpert(_Expert):
    def act(self, obs=None) -> np.ndarray:
        env, task = self.env, self.env.task
        cube = env.data.xpos[task.cube].copy()
        cube_yaw = _wrap_angle(2 * np.arctan2(env.data.xquat[task.cube][3], env.data.xquat[task.cube][0]), np.pi / 2)
        pos, quat = env.robot.ee_pose()
        grasp_z = cube[2] + 0.012
        if self.phase == 0:  # above the cube, aligned
            goal = cube + [0, 0, 0.07]
            yaw_err = abs(_wrap_angle(cube_yaw - tool_yaw(quat), np.pi / 2))
            if np.linalg.norm((goal - pos)[:2]) < 0.008 and abs(goal[2] - pos[2]) < 0.02 and yaw_err < 0.06:
                self.phase = 1
            return self._move(goal, cube_yaw, -1.0)
        if self.phase == 1:  # descend with the jaws open
            goal = np.array([cube[0], cube[1], grasp_z])
            if abs(pos[2] - grasp_z) < 0.006:
                self.phase, self.counter = 2, 0
            return self._move(goal, cube_yaw, -1.0, max_speed=0.8)
        if self.phase == 2:  # close
            self.counter += 1
            if self.counter >= 5:
                self.phase = 3
            return self._move(np.array([cube[0], cube[1], grasp_z]), None, 1.0)
        # lift; if the cube slipped out, go back and try again
        if env.robot.gripper_opening() < 0.1 and cube[2] < 0.03:
            self.phase = 0
        return self._move(np.array([pos[0], pos[1], 0.2]), None, 1.0)


@register_expert("sim/peg_insert")
class PegInsertExpert(_Expert):
    def act(self, obs=None) -> np.ndarray:
        env, task = self.env, self.env.task
        hole = env.data.xpos[task.hole].copy()
        hq = env.data.xquat[task.hole]
        hole_yaw = _wrap_angle(2 * np.arctan2(hq[3], hq[0]), np.pi / 2)
        pos, quat = env.robot.ee_pose()
        tip = env.data.site_xpos[task.tip]
        tcp_to_tip = tip - pos
        rel = task.tip_in_hole_frame(env)
        yaw_err = abs(_wrap_angle(hole_yaw - tool_yaw(quat), np.pi / 2))
        hover = hole + [0, 0, 0.015] - tcp_to_tip
        near = np.linalg.norm((hover - pos)[:2]) < 0.01
        if self.phase == 0:  # hover above the hole, aligned
            if np.linalg.norm((hover - pos)[:2]) < 0.0012 and abs(hover[2] - pos[2]) < 0.01 and yaw_err < 0.03:
                self.phase, self.counter = 1, 0
            return self._move(hover, hole_yaw, 1.0, care=0.25 if near else 1.0)
        # insert: keep x/y on the axis, go down at a careful speed
        self.counter += 1
        stuck = rel[2] > -0.004 and self.counter > 6 and np.linalg.norm(rel[:2]) > 0.0008
        if stuck:  # landed on the rim: back off and re-align
            self.phase = 0
            return self._move(hover + [0, 0, 0.01], hole_yaw, 1.0, care=0.25)
        goal = np.array([hover[0], hover[1], hole[2] - 0.045 - tcp_to_tip[2]])
        return self._move(goal, hole_yaw, 1.0, max_speed=0.5, care=0.25)
