"""The shared MuJoCo manipulation env: the arm, the action semantics, observations, cameras.

A task (pick_cube, peg_insert, ...) only adds its objects, randomizes them, and says what
success and the shaped reward are. Everything that must match the real robot (action
scaling, workspace clipping, control rate) lives here once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import mujoco
import numpy as np

from robolearn.envs.api import RobotEnv, action_space, observation_space
from robolearn.hardware.robot_config import RobotConfig
from robolearn.sim.arm import HOME_QPOS, SceneOptions, build_arm_scene
from robolearn.sim.rendering import CameraRenderer
from robolearn.sim.robot import ArmRobot, tool_down_quat

CAMERAS = ("front", "wrist")
ACTION_DIM = 7  # dx, dy, dz, drx, dry, drz, gripper


def check_box(name: str, low, high) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Validate a randomization box given as ``<name>_low`` / ``<name>_high``; returns tuples."""
    low, high = tuple(float(v) for v in low), tuple(float(v) for v in high)
    if len(low) != len(high) or any(lo > hi for lo, hi in zip(low, high)):
        raise ValueError(f"{name}_low must be <= {name}_high elementwise, got {low} / {high}")
    return low, high


@dataclass
class TaskConfig:
    """Fields every task shares; tasks subclass this with their randomization ranges."""

    max_episode_steps: int = 100
    ee_start_low: tuple[float, float, float] = (0.45, -0.05, 0.2)
    ee_start_high: tuple[float, float, float] = (0.55, 0.05, 0.26)
    ee_start_yaw: float = 0.0  # +- range (radians)
    terminate_on_success: bool = True

    def __post_init__(self) -> None:
        if self.max_episode_steps <= 0:
            raise ValueError(f"max_episode_steps must be positive, got {self.max_episode_steps}")
        self.ee_start_low, self.ee_start_high = check_box("ee_start", self.ee_start_low, self.ee_start_high)


class Task:
    """Hooks a task implements. ``env`` gives access to model, data, robot and np_random."""

    config_cls = TaskConfig
    privileged_layout: list[tuple[str, int]] = []
    initial_gripper_opening: float = 1.0
    fixed_gripper: bool = False  # e.g. a peg held in the gripper: the gripper action is ignored

    def __init__(self, config: TaskConfig):
        self.config = config

    def add_objects(self, root) -> None:
        raise NotImplementedError

    def bind(self, model: mujoco.MjModel) -> None:
        """Cache ids after compiling."""

    def randomize(self, env: "ManipulationEnv") -> None:
        """Place objects; called after the arm is at its start pose."""

    def privileged_state(self, env: "ManipulationEnv") -> np.ndarray:
        return np.zeros(0)

    def success(self, env: "ManipulationEnv") -> bool:
        raise NotImplementedError

    def dense_reward(self, env: "ManipulationEnv") -> float:
        return 0.0


class ManipulationEnv(RobotEnv):
    """``robolearn.make("sim/<task>")``. See the README for observation and action layouts."""

    def __init__(
        self,
        task: Task,
        *,
        robot: RobotConfig | str | None = None,
        cameras: Sequence[str] = (),
        image_size: int = 84,
        privileged: bool = True,
        dense_reward: bool = False,
        render_mode: str | None = None,
        scene: SceneOptions = SceneOptions(),
    ):
        if isinstance(robot, str):
            robot = RobotConfig.load(robot)
        self.robot_config = robot or RobotConfig()
        self.clip_actions = self.robot_config.clip_actions
        if isinstance(cameras, str):
            cameras = [c for c in cameras.split(",") if c]
        unknown = [c for c in cameras if c not in CAMERAS]
        if unknown:
            raise ValueError(f"unknown camera(s) {unknown}; available: {list(CAMERAS)}")
        if image_size < 16 or image_size > 512:
            raise ValueError(f"image_size must be in [16, 512], got {image_size}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task = task
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        self.privileged = bool(privileged)
        self.dense = bool(dense_reward)
        self.render_mode = render_mode

        root = build_arm_scene(scene)
        task.add_objects(root)
        self.model = mujoco.MjModel.from_xml_string(root.to_xml_string(), assets=root.get_assets())
        self.data = mujoco.MjData(self.model)
        self.robot = ArmRobot(self.model, self.data)
        task.bind(self.model)
        self.physics_dt = self.model.opt.timestep
        self.control_hz = self.robot_config.control_hz
        self.n_substeps = max(1, int(round(1.0 / (self.control_hz * self.physics_dt))))
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": int(self.control_hz)}

        self.state_layout: list[tuple[str, int]] = [("ee_pos", 3), ("ee_quat", 4), ("gripper", 1)]
        if self.privileged:
            self.state_layout += list(task.privileged_layout)
        state_dim = self._state_dim = sum(n for _, n in self.state_layout)
        self.observation_space = observation_space(state_dim, self.cameras, self.image_size)
        self.action_space = action_space(ACTION_DIM)
        self._renderers: dict[int, CameraRenderer] = {}
        self._steps = 0
        self._ws_low = np.array(self.robot_config.workspace_low)
        self._ws_high = np.array(self.robot_config.workspace_high)
        self._max_lead = 2.0 * self.robot_config.pos_scale

    # --- gymnasium API -----------------------------------------------------------------
    def _reset(self, options: dict):
        m, d, cfg = self.model, self.data, self.task.config
        mujoco.mj_resetData(m, d)
        rng = self.np_random
        start = rng.uniform(cfg.ee_start_low, cfg.ee_start_high)
        yaw = rng.uniform(-cfg.ee_start_yaw, cfg.ee_start_yaw) if cfg.ee_start_yaw > 0 else 0.0
        q = self.robot.solve_ik(np.array(HOME_QPOS), start, tool_down_quat(yaw), iters=200)
        self.robot.set_cartesian_mode()
        self.robot.teleport(q, self.task.initial_gripper_opening)
        self.robot.set_gripper(1.0 - 2.0 * self.task.initial_gripper_opening)
        self.task.randomize(self)
        mujoco.mj_forward(m, d)
        # Let objects settle on the table with the arm holding still.
        mujoco.mj_step(m, d, nstep=self.n_substeps)
        self._steps = 0
        return self._observation(), {"success": self.task.success(self)}

    def _step(self, action: np.ndarray):
        self.apply_action(action)
        mujoco.mj_step(self.model, self.data, nstep=self.n_substeps)
        self._steps += 1
        success = self.task.success(self)
        reward = self.task.dense_reward(self) if self.dense else float(success)
        terminated = success and self.task.config.terminate_on_success
        truncated = self._steps >= self.task.config.max_episode_steps and not terminated
        return self._observation(), reward, terminated, truncated, {"success": success}

    def apply_action(self, action: np.ndarray) -> None:
        """End-effector delta on the impedance setpoint, clipped to the workspace box."""
        cfg = self.robot_config
        rot = action[3:6]
        drot = rot * cfg.rot_scale if (rot[0] or rot[1] or rot[2]) else None
        self.robot.move_ee_target(action[:3] * cfg.pos_scale, drot, self._max_lead, self._ws_low, self._ws_high)
        if not self.task.fixed_gripper:
            self.robot.set_gripper(float(action[6]))

    def render(self):
        return self.render_camera("front", max(self.image_size, 128))

    def close(self):
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    # --- helpers for tasks, experts, deployment ----------------------------------------
    def render_camera(self, camera: str, size: int) -> np.ndarray:
        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._renderers[size] = CameraRenderer(self.model, size)
        return renderer.render(self.data, camera)

    def state_from_physics(self) -> np.ndarray:
        state = np.empty(self._state_dim, np.float32)
        state[:3], state[3:7] = self.robot.ee_pose()
        state[7] = self.robot.gripper_opening()
        if self.privileged:
            state[8:] = self.task.privileged_state(self)
        return state

    def _observation(self) -> dict:
        obs = {"state": self.state_from_physics()}
        if self.cameras:
            obs["images"] = {cam: self.render_camera(cam, self.image_size) for cam in self.cameras}
        return obs

    def step_physics(self, n_substeps: int = 1) -> None:
        """Advance physics without an env step (the ros2_control sim robot drives this)."""
        mujoco.mj_step(self.model, self.data, nstep=int(n_substeps))

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        state = self.task.privileged_state(self)
        return state[:3].copy(), state[3:7].copy()

    def body_pose(self, body_id: int) -> tuple[np.ndarray, np.ndarray]:
        quat = self.data.xquat[body_id].copy()
        return self.data.xpos[body_id].copy(), -quat if quat[0] < 0 else quat
