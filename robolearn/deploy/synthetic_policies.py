"""Untrained policies with the real networks, for measuring the controller loop.

Inference latency depends on the network and the sampler, not on the weights, so ``robolearn bench
loop`` drives the loop with a diffusion policy (DDIM-10 / DDPM-100) and its one-step consistency
twin built from a recipe with random weights (or from a diffusion checkpoint), plus a zero policy
that measures the loop alone. They live in ``deploy`` rather than ``bench`` because the inference
child process (``robolearn.deploy.inference_proc``) builds them too, and deploy must not import bench.
"""
from __future__ import annotations

from typing import Any

import numpy as np

NAMES = ("consistency", "ddim10", "ddpm100", "none")
# The loop benchmark serves sim/peg_insert on the sim arm: its privileged state and arm action sizes.
STATE_DIM, ACTION_DIM = 15, 7


class TorchPolicy:
    """A torch policy whose act() runs without autograd, with fixed sampler settings."""

    def __init__(self, policy, **act_kwargs):
        self.policy, self.kw = policy, act_kwargs

    def reset(self):
        self.policy.reset()

    def observe(self, obs):
        self.policy.observe(obs)

    def act(self, obs):
        import torch

        with torch.inference_mode():
            return self.policy.act(obs, **self.kw)


class ZeroPolicy:
    """Commands a chunk of zero actions: the loop's own cost with no inference."""

    def __init__(self, horizon: int = 8, action_dim: int = ACTION_DIM):
        self.shape = (horizon, action_dim)

    def reset(self):
        pass

    def act(self, obs):
        return np.zeros(self.shape)


def diffusion_consistency_pair(checkpoint: str | None, recipe: str, state_dim: int, action_dim: int,
                               device=None) -> tuple[Any, Any]:
    """(diffusion teacher, consistency student) sharing one network and its weights, both in eval mode.

    The teacher is loaded from ``checkpoint`` when given, else built from the diffusion ``recipe``
    with random weights; sizes the recipe leaves open are ``state_dim`` / ``action_dim``. Both are
    moved to ``device`` when one is given (the controller loop itself runs them on the CPU).
    """
    from dataclasses import replace

    from robolearn.policies.consistency.configuration import ConsistencyConfig
    from robolearn.policies.consistency.modeling import ConsistencyPolicy
    from robolearn.policies.registry import policy_class
    from robolearn.train.distill import student_config

    if checkpoint:
        from robolearn.train.checkpoint import load_policy

        teacher = load_policy(checkpoint, expected_type="diffusion")
    else:
        from robolearn.train.bc import load_recipe

        spec = load_recipe(recipe)
        if spec.type != "diffusion":
            raise ValueError(f"recipe {recipe} must be a diffusion recipe, got {spec.type!r}")
        cfg = replace(spec.policy, state_dim=spec.policy.state_dim or state_dim,
                      action_dim=spec.policy.action_dim or action_dim)
        teacher = policy_class("diffusion")(cfg)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(), sigma_max=80.0))
    student.load_state_dict(teacher.state_dict())  # same network, same weights
    if device is not None:
        teacher, student = teacher.to(device), student.to(device)
    return teacher.eval(), student.eval()


def build_synthetic_policies(names: list[str], *, checkpoint: str | None = None,
                             recipe: str = "policies/diffusion.yaml", threads: int = 1) -> dict[str, Any]:
    """name -> policy for each of ``names`` (see ``NAMES``); torch seeded 0 and set to ``threads`` threads."""
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}; use {', '.join(NAMES)}")
    import torch

    torch.set_num_threads(int(threads))
    torch.manual_seed(0)
    out: dict[str, Any] = {}
    pair = None
    for name in names:
        if name == "none":
            out[name] = ZeroPolicy()
            continue
        if pair is None:
            pair = diffusion_consistency_pair(checkpoint, recipe, STATE_DIM, ACTION_DIM)
            cfg = pair[0].config
            if cfg.state_dim != STATE_DIM or cfg.action_dim != ACTION_DIM:
                raise ValueError(f"the network must take the peg_insert state ({STATE_DIM}) and action ({ACTION_DIM}), "
                                 f"got {cfg.state_dim}/{cfg.action_dim}")
        dp, cp = pair
        net, kw = {"consistency": (cp, dict(steps=1)), "ddim10": (dp, dict(sampler="ddim", steps=10)),
                   "ddpm100": (dp, dict(sampler="ddpm", steps=100))}[name]
        out[name] = TorchPolicy(net, **kw)
    return out
