"""Sim-to-real gap injection: observation/action latency and observation noise, seeded per episode."""
from __future__ import annotations

from collections import deque
from typing import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robolearn.envs.api import validate_action
from robolearn.envs.wrappers._common import check_int, copy_obs


def _episode_rng(salt: int, ctor_seed: int | None, reset_seed: int | None, current):
    """reset(seed=s) makes the wrapper's randomness reproducible; otherwise it continues."""
    if reset_seed is None:
        return current
    return np.random.default_rng([int(reset_seed), 0 if ctor_seed is None else int(ctor_seed) + 1, salt])


def _check_seed(seed) -> int | None:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be None or an int >= 0, got {seed!r}")
    return None if seed is None else int(seed)


def _delay_range(name: str, value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a (min, max) pair, got {value!r}")
        lo, hi = (check_int(name, v, 0) for v in value)
        if lo > hi:
            raise ValueError(f"{name} range ({lo}, {hi}) has min > max")
        return lo, hi
    k = check_int(name, value, 0)
    return k, k


class Latency(gym.Wrapper):
    """The observation returned at step t is the one from step t - obs_delay; the action applied
    at step t is the one given at step t - action_delay.

    Before enough history exists, the reset observation and ``initial_action`` (default zeros,
    "hold still" for delta actions) fill in. A delay may be a (min, max) pair, drawn per episode
    from the wrapper's RNG (seeded by reset(seed=...)). Reward, flags and info are not delayed;
    ``info["applied_action"]`` is the action the env actually received this step.
    """

    _SALT = 0x1A7E

    def __init__(self, env: gym.Env, obs_delay_steps=0, action_delay_steps=0, initial_action=None, seed=None):
        self.obs_delay_range = _delay_range("Latency obs_delay_steps", obs_delay_steps)
        self.action_delay_range = _delay_range("Latency action_delay_steps", action_delay_steps)
        act = env.action_space
        if not isinstance(act, spaces.Box):
            raise ValueError(f"Latency needs a Box action space, got {act}")
        if initial_action is None:
            initial = np.zeros(act.shape, dtype=act.dtype)
        else:
            initial = np.asarray(initial_action, dtype=act.dtype)
            if initial.shape != act.shape or not np.all(np.isfinite(initial)) or not act.contains(initial):
                raise ValueError(f"Latency initial_action must be a finite action in {act}, got {initial_action!r}")
        super().__init__(env)
        self.initial_action = initial
        self._seed = _check_seed(seed)
        self._rng = np.random.default_rng(self._seed)
        self.obs_delay = self.obs_delay_range[0]
        self.action_delay = self.action_delay_range[0]
        self._obs: deque = deque()
        self._actions: deque = deque()

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._rng = _episode_rng(self._SALT, self._seed, seed, self._rng)
        self.obs_delay = int(self._rng.integers(self.obs_delay_range[0], self.obs_delay_range[1] + 1))
        self.action_delay = int(self._rng.integers(self.action_delay_range[0], self.action_delay_range[1] + 1))
        self._obs = deque([copy_obs(obs)] * (self.obs_delay + 1), maxlen=self.obs_delay + 1)
        self._actions = deque([self.initial_action.copy()] * self.action_delay)
        return obs, info

    def step(self, action):
        if not self._obs:
            raise RuntimeError("Latency: call reset() before step()")
        # Checked now, not when it comes out of the queue action_delay steps later.
        clip = getattr(self.env.unwrapped, "clip_actions", True)
        self._actions.append(validate_action(action, self.action_space, clip=clip))
        applied = self._actions.popleft()
        obs, reward, terminated, truncated, info = self.env.step(applied)
        self._obs.append(copy_obs(obs))
        info["applied_action"] = applied
        return copy_obs(self._obs[0]), reward, terminated, truncated, info


class ObsNoise(gym.Wrapper):
    """Adds Gaussian noise to ``state`` (std scalar or per-dimension) and to every image (std in
    pixel units, result clipped to [0, 255] uint8). The noise RNG is re-seeded by reset(seed=s)
    (mixed with the constructor seed), so seeded episodes are reproducible."""

    _SALT = 0x0B5E

    def __init__(self, env: gym.Env, state_std: float | Sequence[float] = 0.0, image_noise_std: float = 0.0, seed=None):
        space = env.observation_space
        if not isinstance(space, spaces.Dict) or "state" not in space.spaces:
            raise ValueError(f"ObsNoise needs a Dict observation space with 'state', got {space}")
        state_shape = space["state"].shape
        std = np.asarray(state_std, dtype=np.float64)
        if std.ndim > 0 and std.shape != state_shape[-1:]:
            raise ValueError(f"ObsNoise state_std has shape {std.shape}; expected a scalar or {state_shape[-1:]}")
        if not np.all(np.isfinite(std)) or np.any(std < 0):
            raise ValueError(f"ObsNoise state_std must be finite and >= 0, got {state_std!r}")
        img_std = float(image_noise_std)
        if not np.isfinite(img_std) or img_std < 0:
            raise ValueError(f"ObsNoise image_noise_std must be finite and >= 0, got {image_noise_std!r}")
        super().__init__(env)
        self.state_std = std
        self.image_noise_std = img_std
        self._seed = _check_seed(seed)
        self._rng = np.random.default_rng(self._seed)

    def _noisy(self, obs: dict) -> dict:
        out = dict(obs)
        state = np.asarray(obs["state"])
        if np.any(self.state_std > 0):
            out["state"] = (state + self._rng.normal(size=state.shape) * self.state_std).astype(state.dtype)
        if "images" in obs and self.image_noise_std > 0:
            out["images"] = {
                cam: np.clip(
                    np.asarray(img, np.float32) + self._rng.normal(0.0, self.image_noise_std, img.shape).astype(np.float32),
                    0,
                    255,
                ).round().astype(np.uint8)
                for cam, img in obs["images"].items()
            }
        return out

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._rng = _episode_rng(self._SALT, self._seed, seed, self._rng)
        return self._noisy(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._noisy(obs), reward, terminated, truncated, info
