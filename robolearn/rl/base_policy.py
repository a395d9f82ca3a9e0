"""A BC chunk policy (diffusion or consistency) inside an RL algorithm: the base that residual RL, EXPO and
ConRFT refine. The trainer loads the checkpoint (``--base RUN``) and hands the policy object here, so the
RL layer never touches files.

Two views of one policy:
- per step, for acting: ``reset()`` per episode and ``step(obs)``, which runs the chunk open loop for
  ``n_action_steps`` (the base's own queue), so the executed base action is what BC would execute;
- batched, for losses and targets: ``sample(obs_history)`` -> the action to run now at each row (the
  chunk's index ``n_obs_steps - 1``), optionally ``n`` candidates per row, in raw action units.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from robolearn.policies.base import ChunkPolicy


class BasePolicy:
    def __init__(self, policy: ChunkPolicy, device: torch.device, sample_kw: dict[str, Any] | None = None,
                 trainable: bool = False):
        if not isinstance(policy, ChunkPolicy):
            raise TypeError(f"the base must be a diffusion or consistency policy, got {type(policy).__name__} "
                            f"({getattr(policy, 'type', '?')!r})")
        self.policy = policy.to(device)
        self.device = torch.device(device)
        self.config = policy.config
        self.sample_kw = dict(sample_kw or {})
        self.trainable = trainable
        if not trainable:
            self.policy.eval().requires_grad_(False)

    @property
    def n_obs_steps(self) -> int:
        return int(self.config.n_obs_steps)

    @property
    def horizon(self) -> int:
        return int(self.config.horizon)

    @property
    def n_action_steps(self) -> int:
        return int(self.config.n_action_steps)

    @property
    def action_dim(self) -> int:
        return int(self.config.action_dim)

    # Per step ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.policy.reset()

    @torch.no_grad()
    def step(self, obs: dict, generator: torch.Generator | None = None) -> np.ndarray:
        """The base's executed action now (open-loop chunk: a new chunk every ``n_action_steps`` steps)."""
        was = self.policy.training
        self.policy.eval()
        try:
            return np.asarray(self.policy.select_action(obs, generator=generator, **self.sample_kw), np.float32)
        finally:
            self.policy.train(was)

    # Batched -------------------------------------------------------------------------------------
    def sample_chunks(self, obs_history: dict, generator: torch.Generator | None = None, n: int = 1) -> torch.Tensor:
        """(B, n, horizon, A) raw chunks: ``n`` samples per row of ``obs_history`` ((B, n_obs, ...) tensors)."""
        hist = _repeat(obs_history, n) if n > 1 else obs_history
        was = self.policy.training
        self.policy.eval()
        try:
            with torch.no_grad():
                chunk = self.policy.sample_actions(hist, generator=generator, **self.sample_kw)
        finally:
            self.policy.train(was)
        b = next(iter(_leaves(obs_history))).shape[0]
        return chunk.reshape(b, n, self.horizon, self.action_dim)

    def sample(self, obs_history: dict, generator: torch.Generator | None = None, n: int = 1) -> torch.Tensor:
        """(B, n, A): the action each sampled chunk runs now (index n_obs_steps - 1)."""
        return self.sample_chunks(obs_history, generator, n)[:, :, self.n_obs_steps - 1]

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        return self.policy.action_norm.normalize(action)

    def bc_loss(self, obs_history: dict, action_chunk: torch.Tensor) -> torch.Tensor:
        """The base's own imitation loss on (history, chunk) windows (EXPO keeps training the base with it)."""
        return self.policy.compute_loss({**obs_history, "action": action_chunk})


def _leaves(obs: dict):
    for v in obs.values():
        if isinstance(v, dict):
            yield from _leaves(v)
        else:
            yield v


def _repeat(obs: dict, n: int) -> dict:
    """Each row repeated n times (row-major: row 0 n times, then row 1...)."""
    return {k: (_repeat(v, n) if isinstance(v, dict) else v.repeat_interleave(n, dim=0)) for k, v in obs.items()}
