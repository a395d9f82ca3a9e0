"""TimeLimit: truncate an episode after a fixed number of steps of the wrapped env."""
from __future__ import annotations

import gymnasium as gym

from robolearn.envs.wrappers._common import check_int


class TimeLimit(gym.Wrapper):
    """Sets ``truncated`` at step ``max_steps``; ``info["TimeLimit.truncated"]`` is True when the
    limit (not the task) ended the episode, so learners can keep bootstrapping there.

    It counts steps of the env it wraps: outside ActionChunk it counts chunks, inside it env steps.
    """

    def __init__(self, env: gym.Env, max_steps: int):
        self.max_steps = check_int("TimeLimit max_steps", max_steps, 1)
        super().__init__(env)
        self._elapsed: int | None = None

    @property
    def elapsed_steps(self) -> int | None:
        return self._elapsed

    def reset(self, **kwargs):
        self._elapsed = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        if self._elapsed is None:
            raise RuntimeError("TimeLimit: call reset() before step()")
        if self._elapsed >= self.max_steps:
            raise RuntimeError(f"TimeLimit: the episode was truncated at {self.max_steps} steps; call reset()")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._elapsed += 1
        hit = self._elapsed >= self.max_steps
        info["TimeLimit.truncated"] = bool(hit and not terminated)
        return obs, reward, terminated, bool(truncated or hit), info
