"""Shared machinery of chunk policies: normalization, observation encoding, history and action queues.

Two APIs:
- batched torch, for training: ``compute_loss(batch)`` and ``sample_actions(obs_batch)`` where
  batch = {"state": (B, n_obs, D), "images": {cam: (B, n_obs, H, W, 3) uint8}, "action": (B, horizon, A)}
  in raw (unnormalized) units;
- per-step numpy, for envs and robots: ``reset()``, ``act(obs) -> (n_action_steps, A)`` and
  ``select_action(obs) -> (A,)`` (LeRobot-style queue: infers a new chunk only when the queue is empty).
  Every observation passed in joins the history, so the history is consecutive env steps whenever
  the caller passes each step's observation (``observe(obs)`` adds one without inference).
"""
from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from robolearn.policies.configuration import PolicyConfig
from robolearn.policies.encoders import ObsEncoder
from robolearn.policies.normalize import MIN_RANGE, Normalizer
from robolearn.policies.unet1d import ConditionalUnet1D


def sample_noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Standard normal noise on ``device`` from ``generator``, wherever that generator lives.

    An evaluator that seeds a CPU generator per episode must get the same noise whether the policy runs on
    CPU or on a GPU, so a generator on another device draws there and the result is copied over (diffusers'
    schedulers do the same for their per-step noise).
    """
    if generator is None or generator.device.type == torch.device(device).type:
        return torch.randn(shape, generator=generator, device=device)
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


class ChunkPolicy(nn.Module):
    type: ClassVar[str] = ""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        config.require_dims()
        self.config = config
        c = config
        self.state_norm = Normalizer(c.state_dim)
        self.action_norm = Normalizer(c.action_dim)
        self.obs_encoder = ObsEncoder(
            c.state_dim, c.state_hidden, c.state_feature_dim, c.cameras, c.crop_size,
            c.image_channels, c.image_keypoints, c.image_feature_dim, c.n_obs_steps,
        )
        self.net = ConditionalUnet1D(
            c.action_dim, self.obs_encoder.out_dim, c.down_dims, c.step_embed_dim, c.kernel_size, c.n_groups
        )
        self._obs_history: deque = deque(maxlen=c.n_obs_steps)
        self._action_queue: deque = deque()

    @property
    def device(self) -> torch.device:
        return self.action_norm.min.device

    # ------------------------------------------------------------------ normalization
    def set_normalization(self, state_min, state_max, action_min, action_max) -> None:
        """Actions are outputs: a dimension the demos hold constant (a closed gripper, an unused rotation) must
        come out as that constant. The normalizer widens constant dimensions to +-1 around the value, which
        suits inputs (an unseen value stays finite) but would let samples wander over that whole interval, so
        constant action dimensions get the narrowest range it accepts instead. Training targets are the same
        (the constant maps to 0 either way); only what a sample unnormalizes to changes."""
        self.state_norm.set_stats(state_min, state_max)
        lo = np.asarray(action_min, dtype=np.float64).copy()
        hi = np.asarray(action_max, dtype=np.float64).copy()
        if lo.shape == hi.shape:  # else set_stats names the mismatch
            flat = (hi - lo) < MIN_RANGE
            mid = (hi + lo) / 2
            lo[flat], hi[flat] = mid[flat] - MIN_RANGE, mid[flat] + MIN_RANGE
        self.action_norm.set_stats(lo, hi)

    def encode_obs(self, obs: dict[str, Any]) -> torch.Tensor:
        state = obs["state"]
        if state.dim() != 3 or state.shape[-1] != self.config.state_dim:
            raise ValueError(
                f"state batch must be (B, n_obs, {self.config.state_dim}), got {tuple(state.shape)}"
            )
        return self.obs_encoder(self.state_norm.normalize(state.float()), obs.get("images"))

    # ------------------------------------------------------------------ to implement
    def compute_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def sample_normalized(self, cond: torch.Tensor, generator: torch.Generator | None = None, **kw) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ batched sampling
    @torch.no_grad()
    def sample_actions(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw) -> torch.Tensor:
        """Full predicted chunk (B, horizon, A) in raw action units."""
        cond = self.encode_obs(obs)
        x = self.sample_normalized(cond, generator=generator, **kw)
        return self.action_norm.unnormalize(x.clamp(-1.0, 1.0))

    def executable(self, chunk: torch.Tensor) -> torch.Tensor:
        """The n_action_steps actions to run now: they start at index n_obs_steps - 1 (the current step)."""
        start = self.config.n_obs_steps - 1
        return chunk[:, start : start + self.config.n_action_steps]

    # ------------------------------------------------------------------ per-step API
    def reset(self) -> None:
        self._obs_history.clear()
        self._action_queue.clear()

    def _check_obs(self, obs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(obs, dict) or "state" not in obs:
            raise ValueError("observation must be a dict with a 'state' entry")
        state = np.asarray(obs["state"], dtype=np.float32)
        if state.shape != (self.config.state_dim,):
            raise ValueError(f"obs['state'] has shape {state.shape}, expected ({self.config.state_dim},)")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"obs['state'] has non-finite values at {np.flatnonzero(~np.isfinite(state)).tolist()}")
        out: dict[str, Any] = {"state": state}
        if self.config.cameras:
            images = obs.get("images") or {}
            out["images"] = {}
            for cam in self.config.cameras:
                if cam not in images:
                    raise KeyError(f"observation is missing camera {cam!r} (policy expects {list(self.config.cameras)})")
                img = np.asarray(images[cam])
                if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                    raise ValueError(f"camera {cam!r} image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
                out["images"][cam] = img
        return out

    def observe(self, obs: dict[str, Any]) -> None:
        """Add one observation to the history; after reset the first one fills every slot."""
        o = self._check_obs(obs)
        if not self._obs_history:
            for _ in range(self.config.n_obs_steps - 1):
                self._obs_history.append(o)
        self._obs_history.append(o)

    def _history_batch(self) -> dict[str, Any]:
        device = self.device
        hist = list(self._obs_history)
        batch: dict[str, Any] = {"state": torch.from_numpy(np.stack([h["state"] for h in hist]))[None].to(device)}
        if self.config.cameras:
            batch["images"] = {
                cam: torch.from_numpy(np.stack([h["images"][cam] for h in hist]))[None].to(device)
                for cam in self.config.cameras
            }
        return batch

    @torch.no_grad()
    def act(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw) -> np.ndarray:
        """Observe ``obs`` and return the chunk to execute now, (n_action_steps, A) float32."""
        self.observe(obs)
        was_training = self.training
        if was_training:  # toggling walks every submodule: skip it on the hot path
            self.eval()
        chunk = self.executable(self.sample_actions(self._history_batch(), generator=generator, **kw))
        if was_training:
            self.train()
        return chunk[0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw) -> np.ndarray:
        """One action per env step; a new chunk is inferred when the previous one is used up."""
        if not self._action_queue:
            self._action_queue.extend(self.act(obs, generator=generator, **kw))
        else:
            self.observe(obs)
        return self._action_queue.popleft()
