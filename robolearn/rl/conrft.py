"""ConRFT (Chen et al. 2025): fine-tune a consistency policy itself with RL, in two stages.

Why this shape: a one-step consistency policy is a deterministic, differentiable map from (noise, obs) to
an action chunk, so -Q(s, pi(s)) can be back-propagated straight into it, like a DDPG actor, while its
own denoise-to-clean loss keeps it on the demonstrations. ConRFT's actor loss is
``beta * L_consistency-BC + eta * (-mean_members Q(s, pi(s)))``.

- Offline stage (``offline_update``, demos only, ``train.offline_steps`` of them): beta = 1, eta = 0 (pure
  BC) while the critic learns with TD + Cal-QL (``rl/calql.py``), so that the online stage starts from a
  critic that is conservative but calibrated (sampled-action Q floored at the Monte-Carlo return).
- Online stage (``update``): beta = 0.1, eta = 1, plain TD; the trainer mixes demos (and interventions)
  50/50 with online data and updates the actor every ``train.actor_every`` critic steps.

Facts from the official learner (cccedric/conrft, ``conrft_single_octo_cp.py``) this follows:
- pi(s) is the one-step sample from x = sigma_max * z, clipped to [-1, 1] (``clip_denoised``), evaluated
  with gradient; the Q term is the mean over all members; the BC term averages over the whole batch,
  online rows included (``bc_rows: all``; ``demos`` restricts it to demo / intervention rows);
- the TD target bootstraps from the current actor's sample at s' (min over the members);
- Cal-QL's sampled actions are 10 uniform in the action box, 10 of the current policy at s and 10 at s',
  all scored at s; only they are floored at the return-to-go, the data action's Q joins the logsumexp;
- acting is the consistency policy's own stochastic sample (a fresh z each chunk) with no added noise:
  the random z is the exploration. The same sample is the evaluation action (the policy has no mode).

Where the shipped recipe departs from the official values (policies/conrft.yaml, measured): with
beta 0.1 / eta 1 on raw Q and actor lr 3e-4, Adam takes a full lr-sized step along the Q gradient's
consistent direction every actor step while the BC gradient, at its optimum, is only noise, so a few
hundred steps moved the whole chunk off the demos (pick_cube 45% -> 0%). The recipe runs beta 1,
eta 0.1 on Q / mean|Q| (``q_normalize``) at lr 1e-5 with the TD target clipped to the reward's range, plus
an online anchor (``anchor_weight``) to the frozen starting policy's sample from the same noise, a pull
back that grows with the distance moved (measured, 3 seeds from bases 45/70/80%: 65/75/90% at 4k env
steps, 80/100/80% at 10k).

Here the policy predicts chunks (the ``--base`` consistency BC run): the critic scores the action the
chunk runs now (index ``n_obs_steps - 1``) in raw env units, and acting runs the chunk open loop for the
policy's ``n_action_steps``, exactly as the exported checkpoint (``policy()``, type ``consistency``) does.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robolearn.policies.base import ChunkPolicy
from robolearn.policies.features import augment
from robolearn.rl import calql
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec, Algorithm, adam
from robolearn.rl.base_policy import BasePolicy
from robolearn.rl.critic import SharedCritic

__all__ = ["ConRFT", "ConRFTConfig", "actor_loss"]

BC_ROWS = ("all", "demos")


def actor_loss(bc: torch.Tensor | None, q: torch.Tensor | None, bc_weight: float, q_weight: float,
               q_normalize: bool = False, anchor: torch.Tensor | None = None, anchor_weight: float = 0.0) -> torch.Tensor:
    """beta * L_bc + eta * (-mean over members and rows of Q(s, pi(s))); ``q`` is (E, B). A term whose
    weight is 0 may be None (it is then not computed at all: the offline stage needs no Q of pi).

    ``q_normalize`` divides the Q term by the batch's mean |Q| (no gradient), as TD3+BC does: with raw Q
    the BC term's weight relative to the Q term changes as the values grow, and on a 0/1 reward the
    official eta = 1, beta = 0.1 let the Q term pull the whole chunk off the demos within a few hundred
    actor steps (measured: pick_cube 45% -> 0% by the first online evaluation).

    ``anchor`` (+ anchor_weight * anchor) is the mean squared distance between the actor's sample and the
    frozen starting policy's sample from the same noise: unlike the BC loss, whose gradient at its optimum
    is noise, it pulls back in proportion to how far the chunk has moved (the residual's L2 anchor, here)."""
    if anchor_weight and anchor is None:
        raise ValueError("anchor_weight > 0 needs the anchor term")
    if (bc is None and bc_weight) or (q is None and q_weight):
        raise ValueError("a term with a non-zero weight must be given")
    if bc is None and q is None:
        raise ValueError("actor_loss needs at least one term")
    loss = None
    if bc is not None and bc_weight:
        loss = bc_weight * bc
    if q is not None and q_weight:
        q_mean = q.mean()
        if q_normalize:
            q_mean = q_mean / q.detach().abs().mean().clamp_min(1e-6)
        term = -q_weight * q_mean
        loss = term if loss is None else loss + term
    if loss is None:  # both weights 0: a zero that still carries the graph
        loss = 0.0 * (bc if bc is not None else q.mean())
    if anchor is not None and anchor_weight:
        loss = loss + anchor_weight * anchor
    return loss


@dataclass
class ConRFTConfig(AlgoConfig):
    # ConRFT's critic: 2 LayerNorm members, min over both, gamma 0.98
    num_critics: int = 2
    critic_subset: int = 2
    discount: float = 0.98
    actor_lr: float = 3e-4
    # stage weights of the actor loss beta * BC + eta * (-Q)
    offline_bc_weight: float = 1.0
    offline_q_weight: float = 0.0
    online_bc_weight: float = 0.1
    online_q_weight: float = 1.0
    bc_rows: str = "all"                # rows of the BC term: all (official) or demos (demo + intervention rows)
    # Cal-QL (offline stage only)
    cql_alpha: float = 0.1
    cql_n_actions: int = 10             # per source: uniform, current policy at s, current policy at s'
    cql_temperature: float = 1.0
    q_normalize: bool = False           # actor's Q term / mean|Q| (TD3+BC); official: raw Q
    anchor_weight: float = 0.0          # online: + w * |pi(z) - pi_start(z)|^2 (same noise z); official: none

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("actor_lr", "offline_bc_weight", "offline_q_weight", "online_bc_weight", "online_q_weight",
                     "cql_alpha", "cql_temperature", "anchor_weight"):
            try:  # YAML 1.1 reads 3e-5 (no dot) as a string
                setattr(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}") from None
        if not self.actor_lr > 0:
            raise ValueError(f"actor_lr must be > 0, got {self.actor_lr}")
        for name in ("offline_bc_weight", "offline_q_weight", "online_bc_weight", "online_q_weight", "cql_alpha",
                     "anchor_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.offline_bc_weight == 0 and self.offline_q_weight == 0:
            raise ValueError("offline_bc_weight and offline_q_weight cannot both be 0 (the actor would not train)")
        if self.online_bc_weight == 0 and self.online_q_weight == 0:
            raise ValueError("online_bc_weight and online_q_weight cannot both be 0 (the actor would not train)")
        if self.bc_rows not in BC_ROWS:
            raise ValueError(f"bc_rows must be one of {', '.join(BC_ROWS)}, got {self.bc_rows!r}")
        if self.cql_n_actions < 1:
            raise ValueError(f"cql_n_actions must be >= 1, got {self.cql_n_actions}")
        if not self.cql_temperature > 0:
            raise ValueError(f"cql_temperature must be > 0, got {self.cql_temperature}")

    def stage_weights(self, offline: bool) -> tuple[float, float]:
        """(beta, eta) of the actor loss in a stage."""
        if offline:
            return self.offline_bc_weight, self.offline_q_weight
        return self.online_bc_weight, self.online_q_weight


class ConRFT(Algorithm):
    config_class = ConRFTConfig
    extra_fields = {"mc_return": ()}  # Cal-QL's floor: the buffer fills it with the return-to-go
    has_offline_phase = True
    needs_base = True
    uses_critic_extra_loss = True  # Cal-QL: the native critic step cannot add it, `auto` picks eager

    def __init__(self, cfg: ConRFTConfig, spec: AlgoSpec, device="cpu", seed: int = 0,
                 base: ChunkPolicy | None = None):
        super().__init__(cfg, spec, device, seed)
        self.check_base(base, ("consistency",))
        self.critic = SharedCritic(cfg, spec, self.device, algo_name=self.name,
                                   extra_loss=self.uses_critic_extra_loss)
        # the actor IS the consistency policy (a private copy: the caller's object is left untouched)
        self.actor = BasePolicy(copy.deepcopy(base), self.device, trainable=True)
        self.actor.policy.train().requires_grad_(True)
        self.actor_params = [p for p in self.actor.policy.parameters() if p.requires_grad]
        self.actor_opt = adam(self.actor_params, cfg.actor_lr, cfg.fused_adam)
        # the starting policy, frozen, for the online anchor (rebuilt from --base on resume: not training state)
        self.anchor_policy = None
        if cfg.anchor_weight > 0:
            self.anchor_policy = copy.deepcopy(base).to(self.device).eval().requires_grad_(False)
        # per-step acting state (observation history, chunk queue) of training and of evaluation episodes:
        # the trainer evaluates in the middle of a training episode, which must then resume its own chunk
        n_obs = self.actor.n_obs_steps
        self._contexts = {mode: (deque(maxlen=n_obs), deque()) for mode in ("train", "eval")}
        self._reset_pending = True

    @property
    def module(self) -> ChunkPolicy:
        """The consistency policy being trained."""
        return self.actor.policy

    def batch_windows(self) -> tuple[int, int]:
        return self.actor.n_obs_steps, self.actor.horizon

    # Acting ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._reset_pending = True

    def _use_context(self, mode: str) -> None:
        """Point the policy's history / queue at this mode's; the first act after ``reset()`` starts it anew."""
        hist, queue = self._contexts[mode]
        if self._reset_pending:
            hist.clear()
            queue.clear()
            self._reset_pending = False
        self.module._obs_history, self.module._action_queue = hist, queue

    @torch.no_grad()
    def act(self, obs: dict, deterministic: bool = False) -> np.ndarray:
        """The consistency policy's own per-step action (open-loop chunk, fresh noise per chunk, no added
        exploration noise, as the official actor). ``deterministic`` only selects the evaluation episode's
        history and queue: a consistency policy has no mode, it is evaluated by its samples as BC is."""
        self._use_context("eval" if deterministic else "train")
        return self.actor.step(obs, generator=self.generator)

    # The policy as a function ------------------------------------------------------------------
    def pi(self, obs_history: dict, n: int = 1) -> torch.Tensor:
        """(B, n, A): n samples per row of the action each chunk runs now, in raw action units, differentiable
        in the policy's parameters (wrap in no_grad where no gradient is wanted). The policy's own sampler
        (``inference_steps`` of its config; 1 = ConRFT's one step from sigma_max * z, clipped)."""
        pol = self.module
        cond = pol.encode_obs(obs_history)
        if n > 1:
            cond = cond.repeat_interleave(n, dim=0)
        x0 = pol.sample_normalized(cond, generator=self.generator).clamp(-1.0, 1.0)
        a = pol.action_norm.unnormalize(x0[:, self.actor.n_obs_steps - 1])
        return a.reshape(-1, n, self.action_dim)

    # Losses ------------------------------------------------------------------------------------
    def calql_term(self, batch: dict):
        """The critic's extra loss of the offline stage: alpha * Cal-QL over 3 x cql_n_actions samples per row."""
        cfg, g = self.cfg, self.generator
        b, n = batch["action"].shape[0], cfg.cql_n_actions
        mc_return = batch["mc_return"]

        def extra(feat: torch.Tensor, q_data: torch.Tensor):
            # drawn here, after the TD target's draws, so the TD part of a step is the same with or without it
            with torch.no_grad():
                uniform = torch.rand((b, n, self.action_dim), generator=g, device=self.device) * 2.0 - 1.0
                current = self.pi(batch["obs_history"], n)
                following = self.pi(batch["next_obs_history"], n)
                sampled = torch.cat([uniform, current, following], dim=1)  # (B, 3n, A), all scored at s
            k = sampled.shape[1]
            q_s = self.critic.q(feat.repeat_interleave(k, dim=0), sampled.reshape(b * k, self.action_dim))
            loss, metrics = calql.calql_loss(q_s.reshape(q_s.shape[0], b, k), q_data, mc_return, cfg.cql_alpha,
                                             cfg.cql_temperature)
            metrics["calql_loss"] = float(loss.detach())
            return loss, metrics
        return extra

    def critic_step(self, batch: dict, with_calql: bool) -> tuple[dict[str, float], torch.Tensor]:
        cfg, g = self.cfg, self.generator
        obs = augment(batch["obs"], cfg.encoder.shift_pad, g)
        next_obs = augment(batch["next_obs"], cfg.encoder.shift_pad, g)
        members = torch.randperm(cfg.num_critics, generator=g, device=self.device)[: cfg.critic_subset]

        def next_action(_next_feat: torch.Tensor):  # the current actor's sample at s'
            return self.pi(batch["next_obs_history"])[:, 0], None

        extra = self.calql_term(batch) if with_calql else None
        metrics, feat = self.critic.update(obs, batch["action"], batch["reward"], batch["discount"], next_obs,
                                           next_action, members, extra_loss=extra)
        if with_calql:
            metrics["td_loss"] = metrics["critic_loss"] - metrics["calql_loss"]
        return metrics, feat

    def actor_step(self, batch: dict, feat: torch.Tensor, bc_weight: float, q_weight: float) -> dict[str, float]:
        """One step of beta * consistency BC + eta * (-mean Q(s, pi(s))) on the consistency policy."""
        pol = self.module
        cond = pol.encode_obs(batch["obs_history"])
        bc = q = None
        metrics: dict[str, float] = {}
        if bc_weight:
            x0 = pol.action_norm.normalize(batch["action_chunk"].float())
            rows = None
            if self.cfg.bc_rows == "demos":
                rows = batch.get("is_demo")
                rows = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device) if rows is None else rows
            if rows is None:
                bc = pol.bc_loss(x0, cond)
            elif bool(rows.any()):
                bc = pol.bc_loss(x0[rows], cond[rows])
            else:
                bc = cond.sum() * 0.0
            metrics["bc_loss"] = float(bc.detach())
        anchor = None
        if q_weight:
            use_anchor = self.anchor_policy is not None
            if use_anchor:  # the same noise for the actor's sample and the frozen start's
                anchor_gen = torch.Generator(device=self.device)
                anchor_gen.set_state(self.generator.get_state())
            x = pol.sample_normalized(cond, generator=self.generator).clamp(-1.0, 1.0)
            a = pol.action_norm.unnormalize(x[:, self.actor.n_obs_steps - 1])
            q = self.critic.q(feat, a)
            metrics["actor_q"] = float(q.detach().mean())
            if use_anchor:
                with torch.no_grad():
                    ref = self.anchor_policy.sample_normalized(self.anchor_policy.encode_obs(batch["obs_history"]),
                                                               generator=anchor_gen).clamp(-1.0, 1.0)
                anchor = (x - ref).pow(2).mean()
                metrics["anchor"] = float(anchor.detach())
        loss = actor_loss(bc, q, bc_weight, q_weight, self.cfg.q_normalize, anchor,
                          self.cfg.anchor_weight if anchor is not None else 0.0)  # online stage only
        grads = torch.autograd.grad(loss, self.actor_params, allow_unused=True)  # no critic weight grads
        for p, gr in zip(self.actor_params, grads):
            p.grad = gr
        self.actor_opt.step()
        metrics.update(actor_loss=float(loss.detach()), bc_weight=float(bc_weight), q_weight=float(q_weight))
        return metrics

    # Stages ------------------------------------------------------------------------------------
    def offline_update(self, batch: dict) -> dict[str, float]:
        """Demos only: a TD + Cal-QL critic step and an actor step with the offline weights (BC only)."""
        metrics, feat = self.critic_step(batch, with_calql=True)
        metrics.update(self.actor_step(batch, feat, *self.cfg.stage_weights(offline=True)))
        self.num_updates += 1
        return metrics

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        """Online: a plain TD step (and, when ``update_actor``, an actor step with the online weights)."""
        metrics, feat = self.critic_step(batch, with_calql=False)
        if update_actor:
            metrics.update(self.actor_step(batch, feat, *self.cfg.stage_weights(offline=False)))
        self.num_updates += 1
        return metrics

    # Contract ----------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {**self.critic.modules(), "actor": self.module}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic.opt, "actor_opt": self.actor_opt}

    def _after_load(self) -> None:
        self.critic.invalidate()

    def policy(self) -> ChunkPolicy:
        """The fine-tuned consistency policy itself: eval / serve / collect load it like a BC checkpoint."""
        pol = copy.deepcopy(self.module).cpu().eval()
        pol._obs_history, pol._action_queue = deque(maxlen=self.actor.n_obs_steps), deque()
        pol.meta = {}
        return pol

    def describe(self) -> dict:
        c = self.module.config
        return {**super().describe(), "base": {"type": self.module.type, "n_obs_steps": c.n_obs_steps,
                                               "horizon": c.horizon, "n_action_steps": c.n_action_steps,
                                               "inference_steps": c.inference_steps}}
