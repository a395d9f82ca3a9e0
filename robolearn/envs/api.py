"""The env contract every robolearn env (sim, dm_control, real) follows.

Observation: a dict with ``"state"`` (float32 vector) and, when cameras are on, ``"images"``
(a dict of HxWx3 uint8 frames keyed by camera name). Action: float32 Box in [-1, 1]; the env
scales it by its robot config. ``info`` always carries ``"success"`` and, when a person took
over, ``"intervene_action"`` (the action that was actually executed).
"""
from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

ACTION_LOW, ACTION_HIGH = -1.0, 1.0


class InvalidActionError(ValueError):
    """An action that must never reach physics or a robot (wrong shape, NaN, out of range)."""


def action_space(dim: int) -> spaces.Box:
    return spaces.Box(ACTION_LOW, ACTION_HIGH, shape=(dim,), dtype=np.float32)


def observation_space(state_dim: int, cameras: Sequence[str] = (), image_size: int = 84) -> spaces.Dict:
    parts: dict[str, spaces.Space] = {
        "state": spaces.Box(-np.inf, np.inf, shape=(state_dim,), dtype=np.float32)
    }
    if cameras:
        parts["images"] = spaces.Dict(
            {
                cam: spaces.Box(0, 255, shape=(image_size, image_size, 3), dtype=np.uint8)
                for cam in cameras
            }
        )
    return spaces.Dict(parts)


def _uniform_bounds(space: spaces.Box) -> tuple[float, float] | None:
    """Scalar bounds when every dimension shares them (cached on the space: the hot path)."""
    cached = getattr(space, "_robolearn_bounds", False)
    if cached is False:
        low, high = np.asarray(space.low), np.asarray(space.high)
        cached = (float(low.flat[0]), float(high.flat[0])) if np.all(low == low.flat[0]) and np.all(
            high == high.flat[0]) else None
        space._robolearn_bounds = cached
    return cached


def validate_action(action: Any, space: spaces.Box, clip: bool = True, tol: float = 1e-6) -> np.ndarray:
    """Return a float32 copy of ``action`` that is safe to apply, or raise InvalidActionError.

    Non-finite values and wrong shapes always raise. Out-of-range values are clipped when
    ``clip`` (the robot config's ``clip_actions``) is true, and raise otherwise.
    """
    try:
        arr = np.array(action, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidActionError(f"action is not numeric: {action!r}") from exc
    if arr.shape != space.shape:
        raise InvalidActionError(f"action has shape {arr.shape}, expected {space.shape}")
    bounds = _uniform_bounds(space)
    if bounds is not None:
        lo, hi = arr.min(), arr.max()  # NaN propagates, failing both comparisons
        if lo >= bounds[0] and hi <= bounds[1]:
            return arr
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()
        raise InvalidActionError(f"action has non-finite values at indices {bad}: {arr.tolist()}")
    low, high = space.low, space.high
    if np.any(arr < low - tol) or np.any(arr > high + tol):
        if not clip:
            raise InvalidActionError(
                f"action out of range [{float(low.min())}, {float(high.max())}]: {arr.tolist()}"
            )
    return np.clip(arr, low, high).astype(np.float32)


class RobotEnv(gym.Env):
    """Base class: subclasses set ``observation_space``/``action_space`` and implement the hooks.

    The base does the parts every env must get right the same way: action validation, the
    ``info["success"]`` key, and seeding ``self.np_random`` through gymnasium.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}
    clip_actions: bool = True

    def step(self, action):  # noqa: D401 - gymnasium signature
        act = validate_action(action, self.action_space, clip=self.clip_actions)
        obs, reward, terminated, truncated, info = self._step(act)
        info.setdefault("success", False)
        return obs, float(reward), bool(terminated), bool(truncated), info

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self._reset(options or {})
        info.setdefault("success", False)
        return obs, info

    # Subclass hooks -----------------------------------------------------------------------
    def _step(self, action: np.ndarray):
        raise NotImplementedError

    def _reset(self, options: dict):
        raise NotImplementedError
