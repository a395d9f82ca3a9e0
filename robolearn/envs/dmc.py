"""dm_control suite tasks behind the robolearn env contract: ``robolearn.make("dmc/cartpole-swingup")``.

Any suite task is reachable as ``dmc/<domain>-<task>`` (the registry hands the whole ``dmc/`` prefix
to :func:`make_dmc`); the common benchmark tasks are also registered by name so they are listed.

State: the suite's observation dict flattened into one float32 vector, keys in the order the
suite's ``observation_spec()`` gives them (the task's own fixed order, e.g. cartpole: position(3),
velocity(2)); ``env.unwrapped.state_layout`` names the slices. Action: float32 Box [-1, 1] rescaled
linearly to the suite's action spec (dimensions whose bound is infinite or >= 1e6, as in ``lqr``,
are passed through unscaled). Episodes end only by the suite's time limit (-> ``truncated``) or when
the task reports a terminal state with discount 0 (-> ``terminated``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

import robolearn  # noqa: F401  - sets MUJOCO_GL before dm_control/mujoco are imported
from robolearn.config_io import from_dict
from robolearn.envs import api
from robolearn.envs.registry import UnknownEnvError, register

#: Bounds at or beyond this magnitude mean "unbounded" (lqr uses +-1e10): no rescaling there.
UNBOUNDED = 1e6

#: Names registered explicitly so that ``registered()`` lists them.
BENCHMARK_TASKS = (
    "cartpole-swingup",
    "reacher-easy",
    "walker-walk",
    "cheetah-run",
    "finger-spin",
    "ball_in_cup-catch",
)

#: Domains whose default front-facing camera is not id 0 (dm_control's pixel-wrapper convention).
_FRONT_CAMERA = {"quadruped": 2}

#: Tasks with an obvious success: the per-step reward reaches 1 only when the goal is met
#: (ball inside the cup, fingertip inside the target, hinge tip inside the target).
_SUCCESS_AT_REWARD_ONE = {
    ("ball_in_cup", "catch"),
    ("reacher", "easy"),
    ("reacher", "hard"),
    ("finger", "turn_easy"),
    ("finger", "turn_hard"),
}


@dataclass
class DMCConfig:
    """Overrides accepted by ``make("dmc/...", **overrides)``."""

    action_repeat: int = 1
    #: Camera ids or MJCF camera names; "front" means the domain's default tracking camera.
    cameras: tuple = ()
    image_size: int = 84
    #: Truncate after this many agent steps (None: only the suite's own time limit).
    max_episode_steps: int | None = None
    render_mode: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cameras, (str, int)):
            self.cameras = (self.cameras,)
        self.cameras = tuple(self.cameras)
        if not isinstance(self.action_repeat, int) or self.action_repeat < 1:
            raise ValueError(f"action_repeat must be an int >= 1, got {self.action_repeat!r}")
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise ValueError(f"image_size must be an int >= 1, got {self.image_size!r}")
        if self.max_episode_steps is not None and (
            not isinstance(self.max_episode_steps, int) or self.max_episode_steps < 1
        ):
            raise ValueError(f"max_episode_steps must be None or an int >= 1, got {self.max_episode_steps!r}")
        for cam in self.cameras:
            if not isinstance(cam, (str, int)) or isinstance(cam, bool):
                raise ValueError(f"cameras must be ids or names, got {cam!r}")
        if len(set(map(str, self.cameras))) != len(self.cameras):
            raise ValueError(f"duplicate camera in {list(self.cameras)}")
        if self.render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {self.render_mode!r}")


def suite_tasks() -> list[str]:
    """Every suite task as ``domain-task``."""
    from dm_control import suite

    return [f"{d}-{t}" for d, t in suite.ALL_TASKS]


def parse_name(name: str) -> tuple[str, str]:
    """``"ball_in_cup-catch"`` -> ``("ball_in_cup", "catch")``; unknown tasks raise listing the valid ones."""
    valid = suite_tasks()
    domain, sep, task = name.partition("-")
    if not sep or name not in valid:
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f" Did you mean {', '.join('dmc/' + c for c in close)}?" if close else ""
        raise UnknownEnvError(
            f"unknown dm_control task 'dmc/{name}' (expected dmc/<domain>-<task>).{hint} "
            f"Valid suite tasks: {', '.join(valid)}"
        )
    return domain, task


def _bounded(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.isfinite(low) & np.isfinite(high) & (np.abs(low) < UNBOUNDED) & (np.abs(high) < UNBOUNDED)


def action_affine(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mid, half) with suite_action = mid + half * action; unbounded dims (infinite or
    |bound| >= 1e6) get (0, 1): scaling onto +-1e10 would make the action meaningless."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    bounded = _bounded(low, high)
    lo, hi = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)
    return (lo + hi) / 2, (hi - lo) / 2


def rescale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map ``action`` in [-1, 1] linearly onto [low, high] (float64, as dm_control wants)."""
    mid, half = action_affine(low, high)
    return mid + half * np.asarray(action, dtype=np.float64)


def flatten_observation(obs: dict, keys: list[str]) -> np.ndarray:
    """Concatenate the suite's observation dict in ``keys`` order into one float32 vector."""
    return np.concatenate([np.asarray(obs[k], dtype=np.float32).ravel() for k in keys]).astype(np.float32)


class DMCEnv(api.RobotEnv):
    """One dm_control suite task; see the module docstring for the observation/action contract."""

    def __init__(self, name: str, **overrides: Any) -> None:
        from dm_control import suite

        self.domain, self.task = parse_name(name)
        self.name = f"dmc/{name}"
        self.config = from_dict(DMCConfig, overrides, where=self.name)
        self.render_mode = self.config.render_mode
        self._dm = suite.load(self.domain, self.task, task_kwargs={"random": 0})
        physics = self._dm.physics
        # Shadows and multisampling make llvmpipe rendering ~20x slower; this must precede the
        # first render, which creates the GL context with the model's offscreen settings.
        physics.model.vis.quality.shadowsize = 0
        physics.model.vis.quality.offsamples = 0
        self._camera_ids = {str(c): self._camera_id(c) for c in self.config.cameras}
        self._cameras: dict = {}

        spec = self._dm.action_spec()
        self._act_low = np.broadcast_to(np.asarray(spec.minimum, np.float64), spec.shape).copy()
        self._act_high = np.broadcast_to(np.asarray(spec.maximum, np.float64), spec.shape).copy()
        self._act_mid, self._act_half = action_affine(self._act_low, self._act_high)
        obs_spec = self._dm.observation_spec()
        self._obs_keys = list(obs_spec.keys())
        self.state_layout = [(k, int(np.prod(obs_spec[k].shape, dtype=int))) for k in self._obs_keys]
        state_dim = sum(size for _, size in self.state_layout)
        self.action_space = api.action_space(int(np.prod(spec.shape)))
        self.observation_space = api.observation_space(
            state_dim, list(self._camera_ids), self.config.image_size
        )
        self._success_at_one = (self.domain, self.task) in _SUCCESS_AT_REWARD_ONE
        self._steps = 0
        self._needs_reset = True
        self.metadata = dict(self.metadata, render_fps=int(round(1.0 / self.control_timestep)))

    # Properties -----------------------------------------------------------------------------
    @property
    def physics(self):
        return self._dm.physics

    @property
    def action_repeat(self) -> int:
        """Suite control steps per agent step: trainers count env steps as agent steps x this."""
        return self.config.action_repeat

    @property
    def control_timestep(self) -> float:
        """Seconds of simulated time per agent step (the suite's control step x action_repeat)."""
        return self._dm.control_timestep() * self.config.action_repeat

    @property
    def action_low(self) -> np.ndarray:
        return self._act_low.copy()

    @property
    def action_high(self) -> np.ndarray:
        return self._act_high.copy()

    def _camera_id(self, cam: str | int) -> int:
        model = self._dm.physics.model
        if cam == "front":
            return _FRONT_CAMERA.get(self.domain, 0)
        if isinstance(cam, int):
            if not 0 <= cam < model.ncam:
                raise ValueError(f"{self.name}: camera id {cam} out of range (model has {model.ncam} cameras)")
            return cam
        names = [model.id2name(i, "camera") for i in range(model.ncam)]
        if cam not in names:
            raise ValueError(f"{self.name}: unknown camera {cam!r}; cameras: 'front', {names} or ids 0..{model.ncam - 1}")
        return names.index(cam)

    # Env hooks ------------------------------------------------------------------------------
    def _observation(self, time_step) -> dict:
        obs = {"state": flatten_observation(time_step.observation, self._obs_keys)}
        if self._camera_ids:
            obs["images"] = {cam: self._render(cid) for cam, cid in self._camera_ids.items()}
        return obs

    def _render(self, camera_id: int) -> np.ndarray:
        # One dm_control Camera per camera, reused: physics.render() builds a new scene each call,
        # which costs ~4x the render itself (~10 ms vs ~2.5 ms for 84 px cartpole here).
        cam = self._cameras.get(camera_id)
        if cam is None:
            from dm_control.mujoco.engine import Camera

            size = self.config.image_size
            cam = self._cameras[camera_id] = Camera(self._dm.physics, size, size, camera_id)
        return np.array(cam.render(), dtype=np.uint8, copy=True)

    def _reset(self, options: dict):
        # The task draws its initial state from its own RandomState; derive it from gymnasium's
        # np_random so reset(seed=s) is reproducible and unseeded resets continue the sequence.
        self._dm.task._random = np.random.RandomState(int(self.np_random.integers(2**31 - 1)))
        time_step = self._dm.reset()
        self._steps = 0
        self._needs_reset = False
        return self._observation(time_step), {"success": False}

    def _step(self, action: np.ndarray):
        if self._needs_reset:
            raise RuntimeError(f"{self.name}: call reset() before step() (and after an episode ends)")
        dm_action = self._act_mid + self._act_half * action.astype(np.float64)
        reward, success = 0.0, False
        terminated = truncated = False
        for _ in range(self.config.action_repeat):
            time_step = self._dm.step(dm_action)
            r = float(time_step.reward or 0.0)
            reward += r
            success = success or (self._success_at_one and r >= 1.0)
            if time_step.last():
                terminated, truncated = split_last_step(time_step.discount)
                break
        self._steps += 1
        limit = self.config.max_episode_steps
        if limit is not None and self._steps >= limit and not terminated:
            truncated = True
        self._needs_reset = terminated or truncated
        return self._observation(time_step), reward, terminated, truncated, {"success": bool(success)}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        cid = next(iter(self._camera_ids.values()), _FRONT_CAMERA.get(self.domain, 0))
        return self._render(cid)

    def close(self) -> None:
        dm = getattr(self, "_dm", None)
        if dm is not None:
            self._cameras.clear()
            dm.physics.free()
            self._dm = None
        super().close()


def split_last_step(discount: float | None) -> tuple[bool, bool]:
    """(terminated, truncated) for a dm_env LAST step.

    dm_control reports the time limit as discount 1 and a true terminal state (e.g. lqr reaching
    the origin) as discount 0: only the latter may stop value bootstrapping.
    """
    if discount is not None and float(discount) == 0.0:
        return True, False
    return False, True


def make_dmc(name: str, **overrides: Any) -> DMCEnv:
    """Registry factory for ``dmc/<domain>-<task>``."""
    return DMCEnv(name, **overrides)


register("dmc/", make_dmc, prefix=True)
for _task in BENCHMARK_TASKS:
    register(f"dmc/{_task}", partial(make_dmc, _task))

__all__ = [
    "DMCConfig",
    "DMCEnv",
    "BENCHMARK_TASKS",
    "action_affine",
    "flatten_observation",
    "make_dmc",
    "parse_name",
    "rescale_action",
    "split_last_step",
    "suite_tasks",
]
