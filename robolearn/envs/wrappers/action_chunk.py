"""ActionChunk: the policy emits H actions at once; the env executes them in order."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robolearn.envs.api import InvalidActionError
from robolearn.envs.wrappers._common import check_int


class ActionChunk(gym.Wrapper):
    """``step(chunk)`` with ``chunk`` of shape (H, A) runs the H actions one env step at a time.

    It stops early when a step terminates or truncates, and returns the last observation, the
    summed reward, the last step's flags and info, with ``info["success"]`` true if any executed
    step succeeded and ``info["chunk"]`` holding the per-step transitions (n = executed steps):

    - ``state`` (n, *state) and ``images`` {cam: (n, H, W, 3)}: the observation after each step
    - ``action`` (n, A): the commanded actions; ``executed_action`` (n, A): ``info["intervene_action"]``
      where a person took over, else the commanded action; ``intervened`` (n,) bool
    - ``reward`` (n,) float32; ``terminated``, ``truncated``, ``success`` (n,) bool; ``n_executed`` int

    The whole chunk is checked (shape, finite) before any of it runs, so a bad chunk never moves
    the robot half-way.
    """

    def __init__(self, env: gym.Env, horizon: int):
        self.horizon = check_int("ActionChunk horizon", horizon, 1)
        inner = env.action_space
        if not isinstance(inner, spaces.Box) or len(inner.shape) != 1:
            raise ValueError(f"ActionChunk needs a 1-D Box action space, got {inner}")
        super().__init__(env)
        h = self.horizon
        self.action_space = spaces.Box(
            np.broadcast_to(inner.low, (h,) + inner.shape).copy(),
            np.broadcast_to(inner.high, (h,) + inner.shape).copy(),
            dtype=inner.dtype,
        )

    def _check(self, chunk) -> np.ndarray:
        try:
            arr = np.asarray(chunk, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidActionError(f"action chunk is not numeric: {chunk!r}") from exc
        expected = self.action_space.shape
        if arr.shape != expected:
            raise InvalidActionError(
                f"action chunk has shape {arr.shape}, expected (horizon, action_dim) = {expected}"
            )
        if not np.all(np.isfinite(arr)):
            rows = sorted(set(np.argwhere(~np.isfinite(arr))[:, 0].tolist()))
            raise InvalidActionError(f"action chunk has non-finite values in rows {rows}; nothing was executed")
        return arr

    def step(self, chunk):
        arr = self._check(chunk)
        states, images, rewards, terms, truncs, succ, executed, intervened = [], {}, [], [], [], [], [], []
        total = 0.0
        for action in arr:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            states.append(np.array(obs["state"], copy=True))
            for cam, frame in obs.get("images", {}).items():
                images.setdefault(cam, []).append(np.array(frame, copy=True))  # renderers may reuse buffers
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated)
            succ.append(bool(info.get("success", False)))
            override = info.get("intervene_action")
            intervened.append(override is not None)
            executed.append(np.asarray(override if override is not None else action, dtype=np.float32))
            if terminated or truncated:
                break
        n = len(rewards)
        info["chunk"] = {
            "state": np.stack(states),
            "images": {cam: np.stack(frames) for cam, frames in images.items()},
            "action": arr[:n].copy(),
            "executed_action": np.stack(executed),
            "intervened": np.array(intervened, dtype=bool),
            "reward": np.array(rewards, dtype=np.float32),
            "terminated": np.array(terms, dtype=bool),
            "truncated": np.array(truncs, dtype=bool),
            "success": np.array(succ, dtype=bool),
            "n_executed": n,
        }
        info["success"] = bool(any(succ))
        return obs, total, terminated, truncated, info
