"""sim/peg_insert: insert a square peg held in the gripper into a hole with 1.5 mm clearance.

The peg is rigidly held (as after a successful grasp); the hole's position and yaw are random.
With 1.5 mm of radial clearance and no chamfer, a peg that arrives a few millimetres off
lands on the rim and has to be lifted and re-aligned: the corrections near contact that
behaviour cloning tends to average away.

The observed hole pose carries a per-episode calibration error (``hole_obs_noise``, like a
real camera-to-robot calibration): a policy cannot reach 1.5 mm precision from the
observation alone and must react to contact. The scripted expert, like a human teleoperator
looking at the scene, aims at the true hole.
"""
from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robolearn.sim.manipulation_env import Task, TaskConfig, check_box

PEG_HALF = 0.01  # 2 cm square peg
CLEARANCE = 0.0015  # radial clearance, metres
HOLE_HALF = PEG_HALF + CLEARANCE
HOLE_DEPTH = 0.05  # block top height above the table
PEG_BELOW_TCP = 0.075  # peg tip sits this far beyond the fingertip centre (4 cm past the fingers)
WALL = 0.03
# Stiff peg/hole contacts: softer ones let the peg sink into the rim under the controller's push
# and get squeezed sideways into the hole, which would make precision irrelevant.
RIGID = dict(solref=(0.004, 1), solimp=(0.99, 0.999, 0.0005))


@dataclass
class PegInsertConfig(TaskConfig):
    max_episode_steps: int = 100
    hole_xy_low: tuple[float, float] = (0.45, -0.12)
    hole_xy_high: tuple[float, float] = (0.6, 0.12)
    hole_yaw: float = 0.3  # +- range (radians)
    insert_depth: float = 0.025  # success: peg tip this far below the block top, inside the hole
    hole_obs_noise: float = 0.0015  # std (m) of the per-episode error of the observed hole x/y

    def __post_init__(self) -> None:
        super().__post_init__()
        self.hole_xy_low, self.hole_xy_high = check_box("hole_xy", self.hole_xy_low, self.hole_xy_high)
        if self.hole_obs_noise < 0:
            raise ValueError(f"hole_obs_noise must be >= 0, got {self.hole_obs_noise}")
        if not 0 < self.insert_depth < HOLE_DEPTH:
            raise ValueError(f"insert_depth must be in (0, {HOLE_DEPTH}), got {self.insert_depth}")


class PegInsert(Task):
    name = "sim/peg_insert"
    config_cls = PegInsertConfig
    privileged_layout = [("hole_pos", 3), ("hole_quat", 4)]
    initial_gripper_opening = PEG_HALF / 0.04  # fingers closed on the peg
    fixed_gripper = True

    def add_objects(self, root) -> None:
        hand = root.find("body", "hand")
        # Peg spans from inside the palm to PEG_BELOW_TCP beyond the fingertip centre.
        top, tip = 0.045, 0.105 + PEG_BELOW_TCP
        hand.add("geom", name="peg", type="box", size=(PEG_HALF, PEG_HALF, (tip - top) / 2), pos=(0, 0, (tip + top) / 2),
                 rgba=(0.15, 0.45, 0.85, 1), mass=0.05, friction=(0.6, 0.01, 0.0001), condim=3,
                 **RIGID)
        hand.add("site", name="peg_tip", pos=(0, 0, tip), size=(0.004,), rgba=(1, 1, 0, 1), group=4)
        block = root.worldbody.add("body", name="hole", pos=(0.5, 0, HOLE_DEPTH), mocap=True)
        h, w = HOLE_DEPTH / 2, WALL / 2
        walls = [
            ((w, HOLE_HALF + WALL, h), (HOLE_HALF + w, 0, -h)),
            ((w, HOLE_HALF + WALL, h), (-HOLE_HALF - w, 0, -h)),
            ((HOLE_HALF, w, h), (0, HOLE_HALF + w, -h)),
            ((HOLE_HALF, w, h), (0, -HOLE_HALF - w, -h)),
        ]
        for i, (size, pos) in enumerate(walls):
            block.add("geom", name=f"hole_wall{i}", type="box", size=size, pos=pos, rgba=(0.35, 0.7, 0.35, 1),
                      friction=(0.6, 0.01, 0.0001), condim=3, **RIGID)

    def bind(self, model) -> None:
        self.obs_error = np.zeros(3)
        self.hole = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "hole")
        self.hole_mocap = model.body_mocapid[self.hole]
        self.tip = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "peg_tip")

    def randomize(self, env) -> None:
        cfg, rng = self.config, env.np_random
        xy = rng.uniform(cfg.hole_xy_low, cfg.hole_xy_high)
        yaw = rng.uniform(-cfg.hole_yaw, cfg.hole_yaw)
        env.data.mocap_pos[self.hole_mocap] = [xy[0], xy[1], HOLE_DEPTH]
        env.data.mocap_quat[self.hole_mocap] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.obs_error = np.zeros(3)
        if cfg.hole_obs_noise > 0:
            self.obs_error[:2] = rng.normal(0.0, cfg.hole_obs_noise, 2)

    def privileged_state(self, env) -> np.ndarray:
        """The hole pose as a perception system would report it (with its calibration error)."""
        pos, quat = env.body_pose(self.hole)
        return np.concatenate([pos + self.obs_error, quat])

    def tip_in_hole_frame(self, env) -> np.ndarray:
        rot = env.data.xmat[self.hole].reshape(3, 3)
        return rot.T @ (env.data.site_xpos[self.tip] - env.data.xpos[self.hole])

    def success(self, env) -> bool:
        rel = self.tip_in_hole_frame(env)
        return bool(rel[2] <= -self.config.insert_depth and np.all(np.abs(rel[:2]) <= HOLE_HALF))

    def dense_reward(self, env) -> float:
        """In [0, 1]: align above the hole, then go down inside it; 1 at success."""
        if self.success(env):
            return 1.0
        rel = self.tip_in_hole_frame(env)
        align = 1.0 - np.tanh(20.0 * np.linalg.norm(rel[:2]))
        depth = np.clip(-rel[2] / self.config.insert_depth, 0.0, 1.0) if np.all(np.abs(rel[:2]) <= HOLE_HALF) else 0.0
        height = 1.0 - np.tanh(10.0 * max(rel[2], 0.0))
        return float(0.4 * align + 0.2 * height + 0.3 * depth)


def make_env(**overrides):
    from robolearn.sim.tasks import build_env

    return build_env(PegInsert, overrides)
