"""The critic every algorithm shares: observation encoder, LayerNorm Q-ensemble, its Polyak target, and
one TD update with two hooks.

Hooks, so no algorithm copies the update:
- ``next_action(next_features) -> (a', bonus)``: the action the TD target bootstraps from (SAC: a
  sample of the actor, with ``bonus = -alpha log pi`` for an entropy backup; EXPO: the best of base and
  edited candidates; residual RL: the next base action plus the residual);
- ``extra_loss(features, q) -> loss``: added to the TD loss (ConRFT's Cal-QL term).

Backends (``backend`` in the algorithm config) change how the critic step runs, never what it computes:
``eager`` (autograd + torch.optim.Adam), ``compile`` (the encoder and ensemble as torch.compile'd
modules, the same autograd step), ``native`` (the C++ operators of ``native_ops.py``: the ensemble one
member per thread, its TD-loss gradient, Adam and Polyak in one pass; state features on the CPU only, no
extra loss). ``q(features, actions)``, which actor losses call, is differentiable in the actions on every
backend (the native one through the operators' input gradient). ``auto`` picks native where it can run.
"""
from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
from torch import nn

from robolearn.policies.features import FeatureEncoder
from robolearn.rl import losses, native_ops
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec, adam
from robolearn.policies.q_ensemble import Critic

NextAction = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]
ExtraLoss = Callable[[torch.Tensor, torch.Tensor], "tuple[torch.Tensor, dict[str, float]]"]


class BackendError(ValueError):
    """The requested backend cannot run this algorithm / critic; the message names both."""


class _NativeQ(torch.autograd.Function):
    """Q of every member at (features, actions) from the C++ operator, differentiable in the actions
    (d Q / d a comes from the same pass); the critic's weights get no gradient here (actor losses only).
    ``pre`` = (Q, dQ/da) already computed at these inputs (by the critic step, see ``SharedCritic.update``)."""

    @staticmethod
    def forward(ctx, features: torch.Tensor, actions: torch.Tensor, params: list, pre=None) -> torch.Tensor:
        if pre is None:
            x = torch.cat([features.detach(), actions.detach()], dim=-1).contiguous()
            pre = native_ops.q_input_grad(x, params, features.shape[-1])
        q, dq_da = pre
        ctx.save_for_backward(dq_da)
        return q

    @staticmethod
    def backward(ctx, grad_q: torch.Tensor):
        (dq_da,) = ctx.saved_tensors
        return None, (grad_q.unsqueeze(-1) * dq_da).sum(0), None, None


class SharedCritic:
    """Encoder + ensemble + target + optimizer, and the TD step."""

    def __init__(self, cfg: AlgoConfig, spec: AlgoSpec, device: torch.device, algo_name: str,
                 extra_loss: bool = False):
        self.cfg, self.device = cfg, torch.device(device)
        self.encoder = FeatureEncoder(spec.state_dim, spec.image_shapes, cfg.encoder).to(self.device)
        fdim = self.encoder.out_dim
        self.net = Critic(fdim, spec.action_dim, cfg.hidden, cfg.num_critics, cfg.layer_norm).to(self.device)
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.params = list(self.encoder.parameters()) + list(self.net.parameters())
        self.opt = adam(self.params, cfg.critic_lr, cfg.fused_adam)
        self._net_params = list(self.net.parameters())
        self._target_params = list(self.target.parameters())
        self.backend = self._resolve_backend(cfg.backend, algo_name, extra_loss)
        self._fwd_net, self._fwd_target, self._fwd_encoder = self.net, self.target, self.encoder
        if self.backend == "compile":
            self._fwd_net = torch.compile(self.net, dynamic=False)
            self._fwd_target = torch.compile(self.target, dynamic=False)
            if self.encoder.has_params:
                self._fwd_encoder = torch.compile(self.encoder, dynamic=False)
        self._native_key = None
        self._prefetch = None  # (actions, Q, dQ/da) evaluated by the last native step at the actor's actions

    # Backend choice ------------------------------------------------------------------------------
    def native_unsupported(self, extra_loss: bool) -> str | None:
        """Why the native operators cannot run this critic (None when they can)."""
        if self.device.type != "cpu":
            return f"the native operators run on the CPU only (device is {self.device})"
        if extra_loss:
            return "the algorithm adds a loss to the critic's TD loss, which the operators do not implement"
        if not self.cfg.layer_norm:
            return "the operators implement the LayerNorm critic only"
        if self.encoder.has_params:
            return "the critic's gradient also trains an observation encoder (image observations)"
        return native_ops.load()

    def _resolve_backend(self, requested: str, algo_name: str, extra_loss: bool) -> str:
        if requested in ("eager", "compile"):
            return requested
        why = self.native_unsupported(extra_loss)
        if requested == "native":
            if why is not None:
                raise BackendError(f"backend 'native' cannot run algorithm {algo_name!r}: {why}; "
                                   "use backend: eager (or compile, or auto)")
            return "native"
        if why is None:
            return "native"
        if native_ops.load() is not None and not self.encoder.has_params and self.device.type == "cpu" \
                and not extra_loss and self.cfg.layer_norm:
            warnings.warn(f"native critic operators unavailable ({why}); backend auto uses eager", RuntimeWarning,
                          stacklevel=3)
        return "eager"

    # Evaluation ----------------------------------------------------------------------------------
    def encode(self, obs: dict) -> torch.Tensor:
        return self._fwd_encoder(obs)

    def q(self, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q of every member, (E, B), differentiable in ``actions`` (for actor losses)."""
        if self.backend == "native":
            pre, self._prefetch = self._prefetch, None
            if pre is not None and (pre[0] is not actions or pre[1].shape[1] != features.shape[0]):
                pre = None
            return _NativeQ.apply(features, actions, self._net_params, None if pre is None else pre[1:])
        return self._fwd_net(features, actions)

    @torch.no_grad()
    def target_min(self, features: torch.Tensor, actions: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
        """min over ``members`` of the target ensemble: (B,). Only the drawn members run."""
        if self.backend == "native":
            x = torch.cat([features, actions], dim=-1).contiguous()
            return native_ops.forward(x, self._target_params, members).min(dim=0).values
        return self._fwd_target(features, actions, members).min(dim=0).values

    # The TD step ---------------------------------------------------------------------------------
    def td_target(self, reward, discount, next_obs: dict, next_action: NextAction, members) -> torch.Tensor:
        with torch.no_grad():
            next_feat = self.encode(next_obs)
            a_next, bonus = next_action(next_feat)
            next_q = self.target_min(next_feat, a_next, members)
            if bonus is not None:
                next_q = next_q + bonus
            return losses.td_target(reward, discount, next_q, clip=self.cfg.target_clip)

    def update(self, obs: dict, action: torch.Tensor, reward: torch.Tensor, discount: torch.Tensor,
               next_obs: dict, next_action: NextAction, members: torch.Tensor,
               extra_loss: ExtraLoss | None = None,
               actor_actions: Callable[[torch.Tensor], torch.Tensor] | None = None
               ) -> tuple[dict[str, float], torch.Tensor]:
        """One TD step (+ Polyak). Returns (metrics, the batch's features, detached) for the actor side.

        ``actor_actions(features) -> actions`` (optional) is called with the batch's features before the
        step; a later ``q(features, those actions)`` then reuses the native step's own pass over the updated
        members (same values as a separate call, without reading the weights again)."""
        target = self.td_target(reward, discount, next_obs, next_action, members)
        if self.backend == "native":
            if extra_loss is not None:
                raise BackendError("backend 'native' cannot add an extra critic loss")
            with torch.no_grad():
                feat = self.encoder(obs)
            pi = actor_actions(feat) if actor_actions is not None else None
            with torch.no_grad():
                x = torch.cat([feat, action], dim=-1).contiguous()
                args = self._native_args()
                torch._foreach_add_(args[3], 1.0)  # Adam's step counters (the operator expects them incremented)
                if pi is None:
                    loss, q = native_ops.critic_step(x, target.contiguous(), self._net_params, args[0], args[1],
                                                     self._target_params, args[3][0], *args[2], self.cfg.tau)
                else:
                    x_pi = torch.cat([feat, pi.detach()], dim=-1).contiguous()
                    loss, q, q_pi, dq = native_ops.critic_step_q(
                        x, target.contiguous(), self._net_params, args[0], args[1], self._target_params, args[3][0],
                        *args[2], self.cfg.tau, x_pi, feat.shape[-1])
                    self._prefetch = (pi, q_pi, dq)
            return {"critic_loss": float(loss), "q_mean": float(q.mean())}, feat
        feat = self.encode(obs)
        if actor_actions is not None:
            actor_actions(feat.detach())
        q = self._fwd_net(feat, action)
        loss = losses.critic_loss(q, target)
        metrics: dict[str, float] = {}
        if extra_loss is not None:
            extra, metrics = extra_loss(feat, q)
            loss = loss + extra
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        losses.polyak_(self._target_params, self._net_params, self.cfg.tau)
        return {"critic_loss": float(loss.detach()), "q_mean": float(q.detach().mean()), **metrics}, feat.detach()

    def _native_args(self):
        """Adam's own state tensors (created as torch.optim.Adam creates them), cached until a checkpoint
        load replaces the optimizer state."""
        key = id(self.opt.state), len(self.opt.state)
        if self._native_key != key or not self.opt.state:
            group = self.opt.param_groups[0]
            if group.get("weight_decay", 0) or group.get("amsgrad", False) or group.get("maximize", False):
                raise BackendError("backend 'native' implements plain Adam only (no weight decay, amsgrad or maximize)")
            states = []
            for p in self._net_params:
                st = self.opt.state[p]
                if not st:
                    st["step"] = torch.tensor(0.0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                states.append(st)
            hp = (float(group["lr"]), float(group["betas"][0]), float(group["betas"][1]), float(group["eps"]))
            self._native_cache = ([s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], hp,
                                  [s["step"] for s in states])
            self._native_key = (id(self.opt.state), len(self.opt.state))
        return self._native_cache

    def invalidate(self) -> None:
        """After a checkpoint load: the optimizer's state tensors were replaced."""
        self._native_key = None

    # Checkpoint modules --------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "critic": self.net, "target_critic": self.target}
