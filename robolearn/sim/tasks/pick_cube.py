"""sim/pick_cube: grasp a randomly placed cube and lift it."""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robolearn.sim.manipulation_env import Task, TaskConfig, check_box

CUBE_HALF = 0.02


@dataclass
class PickCubeConfig(TaskConfig):
    max_episode_steps: int = 80
    cube_xy_low: tuple[float, float] = (0.42, -0.15)
    cube_xy_high: tuple[float, float] = (0.6, 0.15)
    cube_yaw: float = 0.785  # +- range (radians)
    lift_height: float = 0.06  # success: cube raised this far above the table

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cube_xy_low, self.cube_xy_high = check_box("cube_xy", self.cube_xy_low, self.cube_xy_high)
        if self.lift_height <= 0:
            raise ValueError(f"lift_height must be positive, got {self.lift_height}")


class PickCube(Task):
    name = "sim/pick_cube"
    config_cls = PickCubeConfig
    privileged_layout = [("cube_pos", 3), ("cube_quat", 4)]

    def add_objects(self, root) -> None:
        cube = root.worldbody.add("body", name="cube", pos=(0.5, 0, CUBE_HALF))
        cube.add("freejoint", name="cube_free")
        cube.add("geom", name="cube_geom", type="box", size=(CUBE_HALF,) * 3, rgba=(0.85, 0.2, 0.15, 1), mass=0.05,
                 friction=(1.5, 0.02, 0.0005), condim=4)

    def bind(self, model) -> None:
        self.cube = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "cube")
        self.qadr = model.jnt_qposadr[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, "cube_free")]
        self.fingers = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, f"finger_{s}_geom") for s in ("left", "right")]
        self.cube_geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "cube_geom")

    def randomize(self, env) -> None:
        cfg, rng = self.config, env.np_random
        xy = rng.uniform(cfg.cube_xy_low, cfg.cube_xy_high)
        yaw = rng.uniform(-cfg.cube_yaw, cfg.cube_yaw)
        env.data.qpos[self.qadr:self.qadr + 7] = [xy[0], xy[1], CUBE_HALF, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]

    def privileged_state(self, env) -> np.ndarray:
        pos, quat = env.body_pose(self.cube)
        return np.concatenate([pos, quat])

    def success(self, env) -> bool:
        return bool(env.data.xpos[self.cube][2] >= CUBE_HALF + self.config.lift_height)

    def grasped(self, env) -> bool:
        touching = set()
        for c in env.data.contact[: env.data.ncon]:
            pair = {c.geom1, c.geom2}
            if self.cube_geom in pair:
                touching |= pair & set(self.fingers)
        return len(touching) == 2

    def dense_reward(self, env) -> float:
        """Staged shaping in [0, 1]: reach, grasp, lift; 1 at success."""
        if self.success(env):
            return 1.0
        tcp, _ = env.robot.ee_pose()
        cube = env.data.xpos[self.cube]
        reach = 1.0 - np.tanh(10.0 * np.linalg.norm(tcp - cube))
        grasp = float(self.grasped(env))
        lift = grasp * np.clip((cube[2] - CUBE_HALF) / self.config.lift_height, 0.0, 1.0)
        return float(0.3 * reach + 0.2 * grasp + 0.4 * lift)


def make_env(**overrides):
    from robolearn.sim.tasks import build_env

    return build_env(PickCube, overrides)
