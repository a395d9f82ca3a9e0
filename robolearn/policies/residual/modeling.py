"""The residual policy: a frozen BC chunk policy run open loop, corrected every step by a small residual.

``act(obs)`` is one env step: the base pops the next action of its current chunk (a new chunk every
``n_action_steps`` steps, exactly as BC runs), the residual head looks at [observation features, the
base action normalised by the base's own action normaliser] and the executed action is
``clip(base + alpha * residual, -1, 1)``. The RL algorithm (``rl/residual.py``) trains the head with
the same functions defined here, so the exported policy and the trained one cannot drift apart.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from robolearn.config_io import from_dict
from robolearn.policies import registry
from robolearn.policies.features import FeatureEncoder
from robolearn.policies.gaussian.modeling import mlp, obs_to_batch
from robolearn.policies.residual.configuration import ResidualPolicyConfig

# sampling settings ``eval`` may pass (from config.inference_steps or --steps/--sampler): the base's
BASE_SAMPLE_KEYS = ("steps", "sampler")


def residual_action(base: torch.Tensor, residual: torch.Tensor, alpha: float,
                    noise: torch.Tensor | None = None) -> torch.Tensor:
    """The executed action clip(base + alpha * residual [+ noise], -1, 1): the env's action box bounds it
    whatever the residual says, and with a zero residual (and no noise) it is the base action exactly."""
    a = base + alpha * residual
    if noise is not None:
        a = a + noise
    return a.clamp(-1.0, 1.0)


class ResidualActor(nn.Module):
    """[features, normalised base action] -> residual in [-1, 1] (tanh). The last layer starts at zero so
    that a fresh residual is exactly 0: training starts from the base policy, not from a perturbed one."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: tuple[int, ...], layer_norm: bool = True):
        super().__init__()
        self.net = mlp(feature_dim + action_dim, tuple(hidden), action_dim, layer_norm)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, features: torch.Tensor, base_normalized: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([features, base_normalized], dim=-1)))


def build_base(base_type: str, base_config: dict[str, Any]) -> nn.Module:
    """The base chunk policy from its registered type and config mapping (weights loaded by the caller)."""
    cfg = from_dict(registry.config_class(base_type), dict(base_config), where=f"residual base ({base_type})")
    return registry.policy_class(base_type)(cfg)


class ResidualPolicy(nn.Module):
    type = "residual"

    def __init__(self, config: ResidualPolicyConfig):
        super().__init__()
        config.require_dims()
        self.config = config
        self.base = build_base(config.base_type, config.base_config)
        bc = self.base.config
        if (bc.state_dim, bc.action_dim) != (config.state_dim, config.action_dim):
            raise ValueError(f"residual policy: base has state/action dims {(bc.state_dim, bc.action_dim)}, "
                             f"config says {(config.state_dim, config.action_dim)}")
        self.base.requires_grad_(False)
        self.encoder = FeatureEncoder(config.state_dim, config.image_shapes, config.encoder)
        self.residual = ResidualActor(self.encoder.out_dim, config.action_dim, config.hidden, config.layer_norm)

    @property
    def device(self) -> torch.device:
        return self.encoder.state_norm.min.device

    def reset(self) -> None:
        self.base.reset()

    def observe(self, obs: dict[str, Any]) -> None:
        """A step without an action (the deploy loop's hook): only the base keeps a history."""
        self.base.observe(obs)

    @torch.no_grad()
    def residual_at(self, obs: dict[str, Any], base_action: np.ndarray) -> torch.Tensor:
        """(1, A) residual in [-1, 1] at one observation and the base action executed there."""
        feat = self.encoder(obs_to_batch(obs, self.config.state_dim, self.config.cameras, self.device))
        b = torch.as_tensor(np.asarray(base_action, np.float32), device=self.device).reshape(1, -1)
        return self.residual(feat, self.base.action_norm.normalize(b))

    @torch.no_grad()
    def act(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw: Any) -> np.ndarray:
        """(1, A) float32: this step's base action (open-loop chunk) plus the residual's correction."""
        base_kw = {k: kw[k] for k in BASE_SAMPLE_KEYS if kw.get(k) is not None}
        was = self.base.training
        self.base.eval()
        try:
            a_base = np.asarray(self.base.select_action(obs, generator=generator, **base_kw), np.float32)
        finally:
            self.base.train(was)
        b = torch.from_numpy(a_base).to(self.device).reshape(1, -1)
        action = residual_action(b, self.residual_at(obs, a_base), self.config.alpha)
        return action.cpu().numpy().astype(np.float32)

    def select_action(self, obs: dict[str, Any], generator: torch.Generator | None = None, **kw: Any) -> np.ndarray:
        return self.act(obs, generator=generator, **kw)[0]
