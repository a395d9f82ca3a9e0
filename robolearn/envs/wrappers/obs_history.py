"""ObsHistory: stack the last n observations along a new leading axis."""
from __future__ import annotations

from collections import deque

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robolearn.envs.wrappers._common import check_int, copy_obs


def _stack_space(space: spaces.Space, n: int) -> spaces.Space:
    if isinstance(space, spaces.Dict):
        return spaces.Dict({k: _stack_space(s, n) for k, s in space.spaces.items()})
    if isinstance(space, spaces.Box):
        return spaces.Box(
            np.broadcast_to(space.low, (n,) + space.shape).copy(),
            np.broadcast_to(space.high, (n,) + space.shape).copy(),
            dtype=space.dtype,
        )
    raise ValueError(f"ObsHistory can stack Box and Dict observation spaces, not {space}")


def _stack(frames: list) -> object:
    first = frames[0]
    if isinstance(first, dict):
        return {k: _stack([f[k] for f in frames]) for k in first}
    return np.stack(frames)


class ObsHistory(gym.Wrapper):
    """Each observation leaf gains a leading axis of the last ``n`` values, oldest first:
    ``state`` (D,) -> (n, D), each image (H, W, 3) -> (n, H, W, 3).

    At reset the history is padded with copies of the first observation (so a policy sees a
    stationary past rather than zeros it never saw in training).
    """

    def __init__(self, env: gym.Env, n: int):
        self.n = check_int("ObsHistory n", n, 1)
        super().__init__(env)
        self.observation_space = _stack_space(env.observation_space, self.n)
        self._frames: deque = deque(maxlen=self.n)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._frames.clear()
        first = copy_obs(obs)
        self._frames.extend([first] * self.n)
        return _stack(list(self._frames)), info

    def step(self, action):
        if not self._frames:
            raise RuntimeError("ObsHistory: call reset() before step()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(copy_obs(obs))
        return _stack(list(self._frames)), reward, terminated, truncated, info
