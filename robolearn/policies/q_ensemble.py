"""The Q-ensemble network: one batched LayerNorm MLP per member axis. It lives with the policies because a
policy may rank actions with it (EXPO's on-the-fly selection); the RL critic (rl/critic.py) trains it.

The critic ensemble is ONE network whose weights carry a leading member axis (E, in, out), so all
members run as a single batched matmul (``torch.baddbmm``) instead of a Python loop over modules.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """E independent linear layers evaluated as one batched matmul: (E, B, in) or (B, in) -> (E, B, out)."""

    def __init__(self, members: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default range, drawn per member
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.weight, self.bias
        if members is not None:  # only these members (e.g. the target's random pair): no wasted FLOPs
            w, b = w.index_select(0, members), b.index_select(0, members)
        if x.dim() == 2:  # shared input: broadcast matmul avoids materialising E copies of x
            return torch.matmul(x, w) + b
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with per-member affine parameters."""

    def __init__(self, members: int, features: int) -> None:
        super().__init__()
        self.features = features
        self.weight = nn.Parameter(torch.ones(members, 1, features))
        self.bias = nn.Parameter(torch.zeros(members, 1, features))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.weight, self.bias
        if members is not None:
            w, b = w.index_select(0, members), b.index_select(0, members)
        return torch.addcmul(b, F.layer_norm(x, (self.features,)), w)


class EnsembleMLP(nn.Module):
    """E MLPs (Linear -> [LayerNorm] -> ReLU)* -> Linear, batched over the member axis."""

    def __init__(self, members: int, in_dim: int, hidden: tuple[int, ...], out_dim: int, layer_norm: bool = True):
        super().__init__()
        self.members = members
        layers: list[nn.Module] = []
        dims = (in_dim, *hidden)
        for a, b in zip(dims[:-1], dims[1:]):
            layers.append(EnsembleLinear(members, a, b))
            if layer_norm:
                layers.append(EnsembleLayerNorm(members, b))
            layers.append(nn.ReLU())
        layers.append(EnsembleLinear(members, dims[-1], out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """All members, or only ``members`` (a 1-D index tensor): (B, in) -> (E or len(members), B, out)."""
        if members is None:
            return self.net(x)
        for layer in self.net:
            x = layer(x, members) if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)) else layer(x)
        return x

    def member(self, i: int) -> nn.Sequential:
        """A plain nn.Sequential holding a copy of member ``i`` (for tests and the loop-of-modules benchmark)."""
        mods: list[nn.Module] = []
        for layer in self.net:
            if isinstance(layer, EnsembleLinear):
                lin = nn.Linear(layer.in_features, layer.out_features)
                with torch.no_grad():
                    lin.weight.copy_(layer.weight[i].T)
                    lin.bias.copy_(layer.bias[i, 0])
                mods.append(lin)
            elif isinstance(layer, EnsembleLayerNorm):
                ln = nn.LayerNorm(layer.features)
                with torch.no_grad():
                    ln.weight.copy_(layer.weight[i, 0])
                    ln.bias.copy_(layer.bias[i, 0])
                mods.append(ln)
            else:
                mods.append(nn.ReLU())
        return nn.Sequential(*mods)


class Critic(nn.Module):
    """Q-ensemble: Q(features, action) -> (E, B)."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: tuple[int, ...], members: int, layer_norm: bool):
        super().__init__()
        self.members = members
        self.net = EnsembleMLP(members, feature_dim + action_dim, hidden, 1, layer_norm)

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(torch.cat([features, action], dim=-1), members).squeeze(-1)


class LoopCritic(nn.Module):
    """The same ensemble as a Python loop over separate modules (the baseline the benchmark compares)."""

    def __init__(self, critic: Critic):
        super().__init__()
        self.members = nn.ModuleList(critic.net.member(i) for i in range(critic.members))

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.cat([features, action], dim=-1)
        chosen = self.members if members is None else [self.members[int(i)] for i in members]
        return torch.stack([m(x).squeeze(-1) for m in chosen])
