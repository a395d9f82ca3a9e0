"""EXPO (Dong et al. 2025): an expressive base policy kept close to the data, plus a light edit policy,
with the action chosen on the fly by the Q ensemble.

Why this shape: a diffusion / consistency policy is hard to push with Q gradients, so EXPO never does.
The base keeps training with its own imitation loss (on every batch, demos and online data alike) and an
EMA copy of it proposes actions; a small tanh-Gaussian "edit" head, trained SAC-style against the
ensemble Q, nudges proposals by at most ``beta``; and the action is the argmax of Q over the base samples
and their edits, both to act and for the TD backup. Facts from the official code (pd-perry/EXPO):

- the edit head is trained on the batch's own actions (``batch["action"]``), not on fresh base samples;
  its log-prob is that of the scaled sample, log pi - |A| log beta, in the loss and in the temperature
  update (target entropy -|A|/2 unless ``adjust_target_entropy``);
- candidates are ranked by the min over a random subset of the *target* ensemble (``critic_subset``
  members, drawn afresh for each selection), for acting and for the backup;
- acting samples the EMA base; the backup samples the online base (``backup_base``: "online" as the
  official code, or "ema");
- the TD target has no entropy term; the edited action is not clipped there (we clip to the action box,
  which the env would do anyway).

Our base is the BC chunk policy from ``--base`` (one-step consistency policy by default: N candidates cost
one batched forward); the action it runs now is its chunk's index ``n_obs_steps - 1`` and it acts closed
loop, one selection per env step, on an observation history kept here.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from robolearn.policies.base import ChunkPolicy
from robolearn.policies.expo.configuration import ExpoPolicyConfig, check_selection
from robolearn.policies.expo.modeling import (ExpoPolicy, ObsHistory, candidate_set, draw_members, edit_actions,
                                              rank, select_best)
from robolearn.policies.features import augment
from robolearn.policies.gaussian.modeling import GaussianActor
from robolearn.rl import losses
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec, Algorithm, adam, obs_to_tensors
from robolearn.rl.base_policy import BasePolicy
from robolearn.rl.critic import SharedCritic
from robolearn.rl.sac import Temperature

__all__ = ["EXPO", "EXPOConfig", "select_best", "edit_actions", "edit_log_prob", "edit_policy_loss",
           "temperature_target"]

BACKUP_BASES = ("online", "ema")


# Pure losses ---------------------------------------------------------------------------------------
def edit_log_prob(log_prob: torch.Tensor, beta: float, action_dim: int) -> torch.Tensor:
    """log-density of the scaled edit beta * tanh(u): log pi(tanh(u)) - |A| log beta (change of variables)."""
    return log_prob - action_dim * math.log(beta)


def edit_policy_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor | float, beta: float,
                     action_dim: int) -> torch.Tensor:
    """mean[alpha * (log pi - |A| log beta) - mean_members Q(s, a_hat)]; ``q`` (E, B), ``log_prob`` (B,) of
    the unscaled tanh-Gaussian sample."""
    return (alpha * edit_log_prob(log_prob, beta, action_dim) - q.mean(dim=0)).mean()


def temperature_target(action_dim: int, scale: float, beta: float, adjust: bool) -> float:
    """-scale * |A|; with ``adjust`` shifted by |A| log beta, the entropy a beta-scaled edit can reach
    (the official code's ``adjust_target_entropy``)."""
    target = -scale * action_dim
    return target + action_dim * math.log(beta) if adjust else target


# Config ---------------------------------------------------------------------------------------------
@dataclass
class EXPOConfig(AlgoConfig):
    beta: float = 0.05                 # edit scale: a_hat = clip(a + beta * tanh(u))
    num_samples: int = 8               # N base samples per selection
    n_edit: int = 8                    # how many of them are also edited (2N candidates with the defaults)
    edit_hidden: tuple[int, ...] = (256, 256)
    edit_lr: float = 3e-4
    temp_lr: float = 3e-4
    init_temperature: float = 1.0
    target_entropy_scale: float = 0.5  # target entropy = -scale * |A|
    adjust_target_entropy: bool = False
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    base_lr: float = 1e-4              # the base's online imitation step (AdamW)
    base_weight_decay: float = 1e-6
    base_tau: float = 0.001            # EMA of the base that samples actions
    backup_base: str = "online"        # which base proposes the TD target's candidates
    base_sample: dict = field(default_factory=dict)  # sampling settings of the base (e.g. {"steps": 1})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.edit_hidden = tuple(int(h) for h in self.edit_hidden)
        if not self.edit_hidden or min(self.edit_hidden) < 1:
            raise ValueError(f"edit_hidden must be a non-empty list of positive sizes, got {self.edit_hidden}")
        check_selection(self.beta, self.num_samples, self.n_edit, self.log_std_min, self.log_std_max)
        for name in ("edit_lr", "temp_lr", "init_temperature", "base_lr", "target_entropy_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.base_weight_decay < 0:
            raise ValueError(f"base_weight_decay must be >= 0, got {self.base_weight_decay}")
        if not 0.0 < self.base_tau <= 1.0:
            raise ValueError(f"base_tau must be in (0, 1], got {self.base_tau}")
        if self.backup_base not in BACKUP_BASES:
            raise ValueError(f"backup_base must be one of {', '.join(BACKUP_BASES)}, got {self.backup_base!r}")
        if not isinstance(self.base_sample, dict):
            raise ValueError(f"base_sample must be a mapping, got {self.base_sample!r}")


# The algorithm -------------------------------------------------------------------------------------
class EXPO(Algorithm):
    config_class = EXPOConfig
    needs_base = True

    def __init__(self, cfg: EXPOConfig, spec: AlgoSpec, device="cpu", seed: int = 0, base: ChunkPolicy | None = None):
        super().__init__(cfg, spec, device, seed)
        bcfg = self.check_base(base)
        self.critic = SharedCritic(cfg, spec, self.device, algo_name=self.name, extra_loss=False)
        # the base trains online; its EMA copy (a frozen module) proposes the executed actions
        self.base = BasePolicy(copy.deepcopy(base), self.device, cfg.base_sample, trainable=True)
        self.base.policy.train()
        self.base_ema = BasePolicy(copy.deepcopy(base), self.device, cfg.base_sample, trainable=False)
        self.base_params = [p for p in self.base.policy.parameters()]
        self.ema_params = [p for p in self.base_ema.policy.parameters()]
        self.base_opt = torch.optim.AdamW(self.base_params, lr=cfg.base_lr, weight_decay=cfg.base_weight_decay)
        fdim = self.critic.encoder.out_dim
        self.edit = GaussianActor(fdim + self.action_dim, self.action_dim, cfg.edit_hidden, cfg.layer_norm,
                                  cfg.log_std_min, cfg.log_std_max).to(self.device)
        self.edit_params = list(self.edit.parameters())
        self.edit_opt = adam(self.edit_params, cfg.edit_lr, cfg.fused_adam)
        self.temperature = Temperature(cfg.init_temperature).to(self.device)
        self.temp_opt = adam(self.temperature.parameters(), cfg.temp_lr, cfg.fused_adam)
        self.target_entropy = temperature_target(self.action_dim, cfg.target_entropy_scale, cfg.beta,
                                                 cfg.adjust_target_entropy)
        self.history = ObsHistory(self.base.n_obs_steps, self.state_dim, tuple(bcfg.cameras))

    @property
    def alpha(self) -> torch.Tensor:
        return self.temperature.alpha

    def batch_windows(self) -> tuple[int, int]:
        return self.base.n_obs_steps, self.base.horizon

    def reset(self) -> None:
        self.history.reset()

    # Selection ---------------------------------------------------------------------------------------
    def _target_q_fn(self, members: torch.Tensor):
        return lambda f, a: self.critic.target_min(f, a, members)

    def select(self, base: BasePolicy, features: torch.Tensor, obs_history: dict, generator: torch.Generator,
               deterministic_edit: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The on-the-fly policy on a batch: (best action (B, A), candidates (B, K, A), their values (B, K))
        under the min over a freshly drawn subset of the target ensemble."""
        cfg = self.cfg
        cands = candidate_set(base.policy, self.edit, features, obs_history, cfg.num_samples, cfg.n_edit, cfg.beta,
                              generator, deterministic_edit, cfg.base_sample)
        members = draw_members(cfg.num_critics, cfg.critic_subset, generator, self.device)
        q = rank(self._target_q_fn(members), features, cands)
        best, _ = select_best(cands, q)
        return best, cands, q

    @torch.no_grad()
    def act(self, obs: dict, deterministic: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
        """Closed loop, every step: N samples of the EMA base at this step's history, their edits (tanh of
        the mean when ``deterministic``), the argmax of the target ensemble's subset min."""
        hist = self.history.observe(obs, self.device)
        feat = self.critic.encoder(obs_to_tensors(obs, self.image_shapes, self.device))
        best, _, _ = self.select(self.base_ema, feat, hist, generator or self.generator, deterministic)
        return best[0].cpu().numpy().astype(np.float32)

    # Update ------------------------------------------------------------------------------------------
    def next_action(self, next_obs_history: dict):
        """The TD target's action at s': the same selection as acting, with stochastic edits."""
        base = self.base if self.cfg.backup_base == "online" else self.base_ema

        def fn(next_feat: torch.Tensor):
            best, _, _ = self.select(base, next_feat, next_obs_history, self.generator, deterministic_edit=False)
            return best, None
        return fn

    def base_step(self, batch: dict) -> float:
        """One imitation step of the online base on the batch's windows, then the EMA moves by base_tau.

        Online chunks are first projected onto the base's action box: the base can only emit actions in
        it (its samples are clipped there), and a dimension the demos hold constant has a box ~1e-4 wide,
        so an edit of 0.05 there would normalise to ~1000 and swamp the loss (seen: loss ~2e4 vs 0.15)."""
        norm = self.base.policy.action_norm
        chunk = torch.maximum(torch.minimum(batch["action_chunk"], norm.max), norm.min)
        loss = self.base.bc_loss(batch["obs_history"], chunk)
        self.base_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.base_opt.step()
        losses.polyak_(self.ema_params, self.base_params, self.cfg.base_tau)
        return float(loss.detach())

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        """One critic step; with ``update_actor`` also one base BC step (+ EMA), one edit step and one
        temperature step (the official code's order)."""
        cfg, g = self.cfg, self.generator
        obs = augment(batch["obs"], cfg.encoder.shift_pad, g)
        next_obs = augment(batch["next_obs"], cfg.encoder.shift_pad, g)
        b = batch["action"].shape[0]
        members = torch.randperm(cfg.num_critics, generator=g, device=self.device)[: cfg.critic_subset]
        pi: dict = {}

        def actor_actions(feat: torch.Tensor) -> torch.Tensor:
            # the edit of the batch's own action; the edit head is not changed by the critic step
            noise = torch.randn((b, self.action_dim), generator=g, device=self.device)
            mean, log_std = self.edit(torch.cat([feat, batch["action"]], dim=-1))
            pi["action"], pi["logp"] = edit_actions(batch["action"], mean, log_std, cfg.beta, noise)
            return pi["action"]

        metrics, feat = self.critic.update(obs, batch["action"], batch["reward"], batch["discount"], next_obs,
                                           self.next_action(batch["next_obs_history"]), members,
                                           actor_actions=actor_actions if update_actor else None)
        if update_actor:
            metrics["base_bc_loss"] = self.base_step(batch)
            alpha = self.alpha
            e_loss = edit_policy_loss(self.critic.q(feat, pi["action"]), pi["logp"], alpha, cfg.beta,
                                      self.action_dim)
            grads = torch.autograd.grad(e_loss, self.edit_params)
            for p, gr in zip(self.edit_params, grads):
                p.grad = gr
            self.edit_opt.step()
            logp = edit_log_prob(pi["logp"].detach(), cfg.beta, self.action_dim)
            t_loss = losses.temperature_loss(self.temperature.log_alpha, logp, self.target_entropy)
            self.temp_opt.zero_grad(set_to_none=True)
            t_loss.backward()
            self.temp_opt.step()
            metrics.update(edit_loss=float(e_loss.detach()), entropy=float(-logp.mean()), alpha=float(self.alpha),
                           edit_mag=float((pi["action"].detach() - batch["action"]).abs().mean()))
        self.num_updates += 1
        return metrics

    # Contract ----------------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {**self.critic.modules(), "base": self.base.policy, "base_ema": self.base_ema.policy,
                "edit": self.edit, "temperature": self.temperature}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic.opt, "base_opt": self.base_opt, "edit_opt": self.edit_opt,
                "temp_opt": self.temp_opt}

    def _after_load(self) -> None:
        self.critic.invalidate()

    def policy_config(self) -> ExpoPolicyConfig:
        cfg = self.cfg
        cams = tuple(sorted(self.image_shapes))
        size = self.image_shapes[cams[0]][0] if cams else 84
        bcfg = self.base_ema.policy.config
        return ExpoPolicyConfig(state_dim=self.state_dim, action_dim=self.action_dim, cameras=cams, image_size=size,
                                base_type=self.base_ema.policy.type, base=copy.deepcopy(bcfg),
                                base_sample=dict(cfg.base_sample), encoder=copy.deepcopy(cfg.encoder),
                                edit_hidden=cfg.edit_hidden, edit_layer_norm=cfg.layer_norm,
                                log_std_min=cfg.log_std_min, log_std_max=cfg.log_std_max, critic_hidden=cfg.hidden,
                                critic_layer_norm=cfg.layer_norm, num_critics=cfg.num_critics,
                                critic_subset=cfg.critic_subset, beta=cfg.beta, num_samples=cfg.num_samples,
                                n_edit=cfg.n_edit)

    def policy(self) -> ExpoPolicy:
        """The EMA base, the edit head, the encoder and the *target* ensemble (the one that ranks actions)."""
        pol = ExpoPolicy(self.policy_config())
        cpu = lambda m: {k: v.detach().cpu() for k, v in m.state_dict().items()}  # noqa: E731
        pol.base.load_state_dict(cpu(self.base_ema.policy))
        pol.encoder.load_state_dict(cpu(self.critic.encoder))
        pol.edit.load_state_dict(cpu(self.edit))
        pol.critic.load_state_dict(cpu(self.critic.target))
        return pol.eval()
