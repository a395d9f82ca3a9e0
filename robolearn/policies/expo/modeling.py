"""EXPO's on-the-fly policy as pure tensor functions, and the exported policy that acts with them.

The RL algorithm (``rl/expo.py``) and the exported checkpoint call the same functions here, so the
action a run evaluates with is the action ``robolearn eval`` reproduces from the saved folder:
draw ``num_samples`` base actions, edit the first ``n_edit`` of them
(``clip(a + beta * tanh(u))``), rank all of them with the Q ensemble (min over a subset of members)
and take the best.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from robolearn.policies.base import ChunkPolicy, sample_noise
from robolearn.policies.expo.configuration import ExpoPolicyConfig
from robolearn.policies.features import FeatureEncoder
from robolearn.policies.gaussian.modeling import GaussianActor, obs_to_batch, tanh_gaussian_sample
from robolearn.policies.q_ensemble import Critic

QFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# Pure pieces ---------------------------------------------------------------------------------------
def select_best(candidates: torch.Tensor, q_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, A) candidates and their (B, K) values -> the best candidate per row (B, A) and its index (B,).
    Ties go to the lowest index (the unedited base samples come first)."""
    if candidates.dim() != 3 or q_values.shape != candidates.shape[:2]:
        raise ValueError(f"select_best needs candidates (B, K, A) and q_values (B, K), got {tuple(candidates.shape)} "
                         f"and {tuple(q_values.shape)}")
    idx = q_values.argmax(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), idx], idx


def edit_actions(base_actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, beta: float,
                 noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The edited action clip(a + beta * tanh(u)) and log pi(tanh(u)) of the unscaled tanh-Gaussian sample;
    ``noise`` None = the deterministic edit tanh(mean) (no log-prob). |edited - a| <= beta always."""
    if noise is None:
        return (base_actions + beta * torch.tanh(mean)).clamp(-1.0, 1.0), None
    squashed, log_prob = tanh_gaussian_sample(mean, log_std, noise)
    return (base_actions + beta * squashed).clamp(-1.0, 1.0), log_prob


def draw_members(num_critics: int, subset: int, generator: torch.Generator | None,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """The random subset of ensemble members whose min ranks the candidates (EXPO / RLPD's subset min)."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randperm(num_critics, generator=generator, device=gen_device)[:subset].to(device)


def _repeat_rows(obs: dict, n: int) -> dict:
    return {k: (_repeat_rows(v, n) if isinstance(v, dict) else v.repeat_interleave(n, dim=0)) for k, v in obs.items()}


def _rows(obs: dict) -> int:
    v = next(iter(obs.values()))
    return _rows(v) if isinstance(v, dict) else int(v.shape[0])


@torch.no_grad()
def sample_base(policy: ChunkPolicy, obs_history: dict, n: int, generator: torch.Generator | None = None,
                **sample_kw: Any) -> torch.Tensor:
    """(B, n, A) raw actions the base would run now (chunk index n_obs_steps - 1), n samples per history row,
    drawn as one batched forward."""
    b = _rows(obs_history)
    was = policy.training
    policy.eval()
    try:
        chunk = policy.sample_actions(_repeat_rows(obs_history, n) if n > 1 else obs_history, generator=generator,
                                      **sample_kw)
    finally:
        policy.train(was)
    c = policy.config
    return chunk.reshape(b, n, c.horizon, c.action_dim)[:, :, c.n_obs_steps - 1]


def candidate_set(base: ChunkPolicy, edit: GaussianActor, features: torch.Tensor, obs_history: dict,
                  num_samples: int, n_edit: int, beta: float, generator: torch.Generator | None,
                  deterministic_edit: bool, sample_kw: dict | None = None) -> torch.Tensor:
    """(B, num_samples + n_edit, A): the base samples, then the edits of the first ``n_edit`` of them.
    Draws from ``generator`` in a fixed order (base samples, then edit noise)."""
    base_a = sample_base(base, obs_history, num_samples, generator, **(sample_kw or {}))
    if n_edit == 0:
        return base_a
    b, a_dim = base_a.shape[0], base_a.shape[-1]
    to_edit = base_a[:, :n_edit].reshape(b * n_edit, a_dim)
    with torch.no_grad():
        mean, log_std = edit(torch.cat([features.repeat_interleave(n_edit, dim=0), to_edit], dim=-1))
        noise = None if deterministic_edit else sample_noise(tuple(mean.shape), generator, mean.device)
        edited, _ = edit_actions(to_edit, mean, log_std, beta, noise)
    return torch.cat([base_a, edited.reshape(b, n_edit, a_dim)], dim=1)


@torch.no_grad()
def rank(q_fn: QFn, features: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(B, K) values of (B, K, A) candidates; ``q_fn(feature rows, action rows) -> (rows,)``."""
    b, k, a_dim = candidates.shape
    return q_fn(features.repeat_interleave(k, dim=0), candidates.reshape(b * k, a_dim)).reshape(b, k)


# Per-step history ----------------------------------------------------------------------------------
class ObsHistory:
    """The base's observation window for per-step acting: after ``reset`` the first observation fills
    every slot (as the chunk policies' own history does), then each step shifts one in."""

    def __init__(self, n_obs_steps: int, state_dim: int, cameras: tuple[str, ...] = ()):
        self.n_obs_steps, self.state_dim, self.cameras = int(n_obs_steps), int(state_dim), tuple(cameras)
        self._items: deque = deque(maxlen=self.n_obs_steps)

    def reset(self) -> None:
        self._items.clear()

    def observe(self, obs: dict, device: torch.device | str = "cpu") -> dict:
        """Add ``obs`` (one env observation, numpy) and return the (1, n_obs, ...) history batch."""
        one = obs_to_batch(obs, self.state_dim, self.cameras, "cpu")
        if not self._items:
            for _ in range(self.n_obs_steps - 1):
                self._items.append(one)
        self._items.append(one)
        items = list(self._items)
        out: dict = {"state": torch.stack([it["state"][0] for it in items])[None].to(device)}
        if self.cameras:
            out["images"] = {cam: torch.stack([it["images"][cam][0] for it in items])[None].to(device)
                             for cam in self.cameras}
        return out


# The exported policy -------------------------------------------------------------------------------
class ExpoPolicy(nn.Module):
    """EMA base + edit head + feature encoder + Q ensemble; acts closed loop, one selection per step."""

    type = "expo"

    def __init__(self, config: ExpoPolicyConfig):
        super().__init__()
        from robolearn.policies import registry

        config.require_dims()
        self.config = config
        self.base: ChunkPolicy = registry.policy_class(config.base_type)(config.base)
        self.encoder = FeatureEncoder(config.state_dim, config.image_shapes, config.encoder)
        fdim = self.encoder.out_dim
        self.edit = GaussianActor(fdim + config.action_dim, config.action_dim, config.edit_hidden,
                                  config.edit_layer_norm, config.log_std_min, config.log_std_max)
        self.critic = Critic(fdim, config.action_dim, config.critic_hidden, config.num_critics,
                             config.critic_layer_norm)
        self.history = ObsHistory(config.base.n_obs_steps, config.base.state_dim, tuple(config.base.cameras))

    @property
    def device(self) -> torch.device:
        return self.encoder.state_norm.min.device

    def reset(self) -> None:
        self.history.reset()

    def observe(self, obs: dict[str, Any]) -> None:
        self.history.observe(obs, self.device)

    @torch.no_grad()
    def act(self, obs: dict[str, Any], generator: torch.Generator | None = None, **_: Any) -> np.ndarray:
        """(1, A): the best of the base and edited candidates at ``obs``. The candidate draws and the
        ranking members come from ``generator``; the edit is the deterministic tanh(mean). Evaluation's
        sampling settings are ignored: the base samples as it did during training (``base_sample``)."""
        c = self.config
        hist = self.history.observe(obs, self.device)
        feat = self.encoder(obs_to_batch(obs, c.state_dim, c.cameras, self.device))
        cands = candidate_set(self.base, self.edit, feat, hist, c.num_samples, c.n_edit, c.beta, generator,
                              deterministic_edit=True, sample_kw=c.base_sample)
        members = draw_members(c.num_critics, c.critic_subset, generator, self.device)
        q = rank(lambda f, a: self.critic(f, a, members).min(dim=0).values, feat, cands)
        best, _ = select_best(cands, q)
        return best.cpu().numpy().astype(np.float32)

    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw: Any) -> np.ndarray:
        return self.act(obs, generator=generator, **kw)[0]
