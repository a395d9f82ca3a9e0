"""Intervention: a person's device input replaces the policy's action (SERL's convention, for sim and real).

Each step the wrapper polls a teleop device. Input above the deadzone (motion, or a gripper button)
takes control: the device's action is executed instead of the policy's, and ``info["intervene_action"]``
holds it, so the episode store, the replay buffers and ActionChunk record what the robot actually did.
Control stays with the person through short pauses and returns to the policy only after
``quiet_period_s`` without input - otherwise every hesitation would hand a half-finished correction
back to the policy for one step. While the person holds control without moving, the robot holds still.

The gripper is absolute (-1 open, +1 closed), so a takeover starts from the policy's gripper command and
only a gripper button changes it; the device's own latch is not used, or taking over would snap the
gripper to wherever the device last left it.

The device is anything with ``poll()`` returning an object with ``action`` (7,), ``buttons`` (a set of
role names pressed since the last poll) and ``active`` (bool): robolearn.hardware.teleop's devices, a
replay, or a test double. This module does not import the hardware layer (envs sit below it).
Put Intervention innermost, directly on the env as SERL does: each env step is decided separately (below
ActionChunk), the person moves the arm in the robot's base frame, and RelativeFrame above it re-expresses
``intervene_action`` in the end-effector frame of the policy's actions.
"""
from __future__ import annotations

import math
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

GRIPPER_CLOSED, GRIPPER_OPEN = 1.0, -1.0


class TeleopInput(Protocol):
    """What the wrapper needs from a device (robolearn.hardware.teleop.TeleopDevice has it)."""

    def poll(self) -> Any: ...


class Intervention(gym.Wrapper):
    """Replaces the policy's action with the device's while a person intervenes; counts interventions.

    ``info`` gains ``intervening`` (bool), ``intervention_count`` and ``intervention_rate`` (this
    episode's takeovers and the fraction of its steps a person acted), ``teleop_buttons`` (the roles
    pressed this step, e.g. ``success`` for a person's success mark) and, on intervened steps,
    ``intervene_action``. ``summary()`` reports the same over every episode so far.
    """

    def __init__(self, env: gym.Env, device: TeleopInput, quiet_period_s: float | None = None,
                 control_hz: float | None = None, gripper_index: int | None = 6):
        if not callable(getattr(device, "poll", None)):
            raise ValueError(f"Intervention needs a device with a poll() method, got {type(device).__name__}")
        space = env.action_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"Intervention needs a 1-D Box action space, got {space}")
        if quiet_period_s is None:  # a hardware device carries it in its YAML config
            quiet_period_s = getattr(getattr(device, "config", None), "quiet_period_s", 0.5)
        if not isinstance(quiet_period_s, (int, float)) or not math.isfinite(quiet_period_s) or quiet_period_s < 0:
            raise ValueError(f"Intervention quiet_period_s must be a number >= 0, got {quiet_period_s!r}")
        hz = control_hz if control_hz is not None else (env.metadata or {}).get("render_fps")
        if not isinstance(hz, (int, float)) or not hz > 0:
            raise ValueError(f"Intervention needs the env's control rate: pass control_hz (env.metadata has "
                             f"render_fps={hz!r})")
        if gripper_index is not None and not 0 <= gripper_index < space.shape[0]:
            raise ValueError(f"Intervention gripper_index {gripper_index} is outside the action ({space.shape[0]},)")
        super().__init__(env)
        self.device = device
        self.quiet_period_s = float(quiet_period_s)
        self.control_hz = float(hz)
        # Steps, not wall-clock seconds: the hand-back happens at the same step in sim (often faster
        # than real time) and on the robot (which runs at control_hz).
        self.quiet_steps = int(math.ceil(self.quiet_period_s * self.control_hz - 1e-9))
        self.gripper_index = gripper_index
        self.intervening = False
        self._quiet = 0
        self._gripper = GRIPPER_OPEN
        self._ep = {"steps": 0, "intervened_steps": 0, "interventions": 0}
        self._total = {"episodes": 0, "steps": 0, "intervened_steps": 0, "interventions": 0}

    # -- bookkeeping ----------------------------------------------------------------------------------
    def reset(self, **kwargs):
        if self._ep["steps"]:  # the finished episode joins the totals
            self._total["episodes"] += 1
            for k in ("steps", "intervened_steps", "interventions"):
                self._total[k] += self._ep[k]
        self._ep = {"steps": 0, "intervened_steps": 0, "interventions": 0}
        self.intervening = False
        self._quiet = 0
        return self.env.reset(**kwargs)

    @staticmethod
    def _rate(d: dict) -> float:
        return d["intervened_steps"] / d["steps"] if d["steps"] else 0.0

    def summary(self) -> dict[str, Any]:
        """Interventions (takeovers) and the intervened fraction of steps: this episode and all so far."""
        total = {k: self._total[k] + self._ep.get(k, 0) for k in ("steps", "intervened_steps", "interventions")}
        total["episodes"] = self._total["episodes"] + (1 if self._ep["steps"] else 0)
        return {
            "episode": {**self._ep, "rate": self._rate(self._ep)},
            "total": {**total, "rate": self._rate(total),
                      "per_episode": total["interventions"] / total["episodes"] if total["episodes"] else 0.0},
            "quiet_period_s": self.quiet_period_s,
            "quiet_steps": self.quiet_steps,
        }

    # -- the step -------------------------------------------------------------------------------------
    def _takeover_action(self, cmd, policy_action: np.ndarray) -> np.ndarray:
        act = np.asarray(cmd.action, dtype=np.float32).reshape(-1)
        n = self.action_space.shape[0]
        if act.shape[0] != n:
            raise ValueError(f"Intervention: the device gives a ({act.shape[0]},) action, the env takes ({n},)")
        act = act.copy()
        g = self.gripper_index
        if g is not None:
            buttons = getattr(cmd, "buttons", ()) or ()
            if "gripper_close" in buttons:
                self._gripper = GRIPPER_CLOSED
            if "gripper_open" in buttons:
                self._gripper = GRIPPER_OPEN
            if "gripper_toggle" in buttons:
                self._gripper = GRIPPER_OPEN if self._gripper > 0 else GRIPPER_CLOSED
            act[g] = self._gripper
        return np.clip(act, self.action_space.low, self.action_space.high).astype(np.float32)

    def step(self, action):
        cmd = self.device.poll()
        policy_action = np.asarray(action, dtype=np.float32)
        if cmd.active:
            if not self.intervening:
                self.intervening = True
                self._ep["interventions"] += 1
                if self.gripper_index is not None and policy_action.shape == self.action_space.shape:
                    self._gripper = GRIPPER_CLOSED if policy_action[self.gripper_index] > 0 else GRIPPER_OPEN
            self._quiet = 0
        elif self.intervening:
            self._quiet += 1
            if self._quiet > self.quiet_steps:
                self.intervening = False
        executed = self._takeover_action(cmd, policy_action) if self.intervening else action
        obs, reward, terminated, truncated, info = self.env.step(executed)
        self._ep["steps"] += 1
        if self.intervening:
            self._ep["intervened_steps"] += 1
            info["intervene_action"] = executed
        info["intervening"] = self.intervening
        info["intervention_count"] = self._ep["interventions"]
        info["intervention_rate"] = self._rate(self._ep)
        info["teleop_buttons"] = sorted(getattr(cmd, "buttons", ()) or ())
        return obs, reward, terminated, truncated, info
