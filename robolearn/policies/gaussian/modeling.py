"""Tanh-Gaussian actor and the policy wrapper that ``eval``, ``serve`` and ``collect`` load.

RL algorithms train ``GaussianActor`` on features from the critic's ``FeatureEncoder``; ``GaussianPolicy``
bundles the two (the encoder's weights copied from the critic's) so an RL checkpoint is a policy
folder like a BC one: ``config.json`` + ``model.safetensors`` + ``normalization.safetensors``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robolearn.policies.base import sample_noise
from robolearn.policies.features import FeatureEncoder
from robolearn.policies.gaussian.configuration import GaussianConfig


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = (in_dim, *hidden)
    for a, b in zip(dims[:-1], dims[1:]):
        layers.append(nn.Linear(a, b))
        if layer_norm:
            layers.append(nn.LayerNorm(b))
        layers.append(nn.ReLU())
    layers.append(nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


def tanh_gaussian_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reparameterised tanh-squashed Gaussian sample and its log-probability (summed over action dims).

    log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)) is the numerically stable form.
    """
    std = log_std.exp()
    u = mean + std * noise
    log_prob_u = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
    return torch.tanh(u), log_prob_u - log_det


class GaussianActor(nn.Module):
    """Gaussian head for a tanh-squashed policy: features -> (mean, clipped log_std)."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: tuple[int, ...], layer_norm: bool,
                 log_std_min: float, log_std_max: float):
        super().__init__()
        self.net = mlp(feature_dim, hidden, 2 * action_dim, layer_norm)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(features).chunk(2, dim=-1)
        return mean, log_std.clamp(self.log_std_min, self.log_std_max)

    def sample(self, features: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self(features)
        return tanh_gaussian_sample(mean, log_std, noise)


def obs_to_batch(obs: dict[str, Any], state_dim: int, cameras: tuple[str, ...], device) -> dict[str, Any]:
    """One env observation (numpy) -> a batch of one on ``device``, with errors that name the bad part."""
    if not isinstance(obs, dict) or "state" not in obs:
        raise ValueError("observation must be a dict with a 'state' entry")
    state = np.asarray(obs["state"], dtype=np.float32)
    if state.shape != (state_dim,):
        raise ValueError(f"obs['state'] has shape {state.shape}, expected ({state_dim},)")
    if not np.all(np.isfinite(state)):
        raise ValueError(f"obs['state'] has non-finite values at {np.flatnonzero(~np.isfinite(state)).tolist()}")
    out: dict[str, Any] = {"state": torch.from_numpy(state).unsqueeze(0).to(device)}
    if cameras:
        images = obs.get("images") or {}
        out["images"] = {}
        for cam in cameras:
            if cam not in images:
                raise KeyError(f"observation is missing camera {cam!r} (policy expects {list(cameras)})")
            img = np.asarray(images[cam])
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"camera {cam!r} image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
            out["images"][cam] = torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0).to(device)
    return out


class GaussianPolicy(nn.Module):
    """The per-step policy API of the chunk policies (``reset``, ``act -> (1, A)``, ``select_action``)."""

    type = "gaussian"

    def __init__(self, config: GaussianConfig):
        super().__init__()
        config.require_dims()
        self.config = config
        self.encoder = FeatureEncoder(config.state_dim, config.image_shapes, config.encoder)
        self.actor = GaussianActor(self.encoder.out_dim, config.action_dim, config.hidden, config.layer_norm,
                                   config.log_std_min, config.log_std_max)

    @property
    def device(self) -> torch.device:
        return self.encoder.state_norm.min.device

    def reset(self) -> None:
        """No history or queue: every step is decided from its own observation."""

    def observe(self, obs: dict[str, Any]) -> None:
        """Nothing to remember (the chunk policies' history hook)."""

    @torch.no_grad()
    def act(self, obs: dict[str, Any], generator: torch.Generator | None = None, deterministic: bool = True,
            **_: Any) -> np.ndarray:
        """(1, A) float32: the tanh of the mean (as RL evaluates), or with ``deterministic=False`` a sample
        drawn with ``generator``."""
        batch = obs_to_batch(obs, self.config.state_dim, self.config.cameras, self.device)
        mean, log_std = self.actor(self.encoder(batch))
        if deterministic:
            action = torch.tanh(mean)
        else:
            noise = sample_noise(tuple(mean.shape), generator, mean.device)
            action, _ = tanh_gaussian_sample(mean, log_std, noise)
        return action.cpu().numpy().astype(np.float32)

    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw: Any) -> np.ndarray:
        return self.act(obs, generator=generator, **kw)[0]
