"""SAC with the RLPD / SERL choices, as the actor side and losses over the shared critic.

The critic (LayerNorm ensemble, random-subset-min targets, n-step returns from the buffer) is
``rl/critic.py``; this file adds the tanh-Gaussian actor, the learned temperature and SAC's two hooks:
the next action for the TD target (a sample of the actor, with the entropy bonus when
``backup_entropy``) and the actor loss. All randomness (exploration noise, subset draws, DrQ shifts)
comes from one ``torch.Generator`` whose state is part of ``state_tensors()``, so a resumed run repeats.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robolearn.policies.gaussian.configuration import GaussianConfig
from robolearn.policies.gaussian.modeling import GaussianActor, GaussianPolicy
from robolearn.policies.features import augment
from robolearn.rl import losses
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec, Algorithm, adam, obs_to_tensors
from robolearn.rl.critic import SharedCritic


@dataclass
class SACConfig(AlgoConfig):
    actor_lr: float = 3e-4
    temp_lr: float = 3e-4
    init_temperature: float = 1e-2
    # Floor on alpha (0 = none). Adam lowers log alpha by ~temp_lr per update for as long as the entropy sits
    # above its target, so after ~15k updates alpha ~ 2e-4 and the actor's std collapses onto actions the
    # critic extrapolates (measured on peg_insert at ~19k env steps in every seed, docs/results_refine.md).
    min_temperature: float = 0.0
    target_entropy: float | None = None   # None -> -target_entropy_scale * |A|
    target_entropy_scale: float = 0.5
    backup_entropy: bool = False          # subtract alpha * log pi in the TD target
    bc_weight: float = 0.0                # BC term on demo rows (0 = pure RLPD; > 0 as TD3+BC / ConRFT)
    q_normalize: bool = False             # actor's Q term / mean|Q| (TD3+BC), for use with bc_weight
    log_std_min: float = -10.0
    log_std_max: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("actor_lr", "temp_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.bc_weight < 0:
            raise ValueError(f"bc_weight must be >= 0, got {self.bc_weight}")
        if not 0 <= self.min_temperature <= self.init_temperature:
            raise ValueError(f"min_temperature must be in [0, init_temperature={self.init_temperature}], "
                             f"got {self.min_temperature}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("log_std_min must be < log_std_max")

    def resolved_target_entropy(self, action_dim: int) -> float:
        if self.target_entropy is not None:
            return float(self.target_entropy)
        return -self.target_entropy_scale * action_dim


class Temperature(nn.Module):
    """log alpha as a module, so checkpoints treat it like every other parameter."""

    def __init__(self, init: float):
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(float(np.log(init))))

    def forward(self) -> torch.Tensor:
        return self.log_alpha.exp()

    @property
    def alpha(self) -> torch.Tensor:
        """The current temperature, detached (what the losses weigh entropy with)."""
        return self.log_alpha.detach().exp()


class SAC(Algorithm):
    config_class = SACConfig

    def __init__(self, cfg: SACConfig, spec: AlgoSpec, device="cpu", seed: int = 0):
        super().__init__(cfg, spec, device, seed)
        self.critic = SharedCritic(cfg, spec, self.device, algo_name=self.name, extra_loss=self.uses_critic_extra_loss)
        self.actor = GaussianActor(self.critic.encoder.out_dim, self.action_dim, cfg.hidden, cfg.layer_norm,
                                   cfg.log_std_min, cfg.log_std_max).to(self.device)
        self.temperature = Temperature(cfg.init_temperature).to(self.device)
        self.target_entropy = cfg.resolved_target_entropy(self.action_dim)
        self.log_alpha_min = float(np.log(cfg.min_temperature)) if cfg.min_temperature > 0 else None
        self.actor_params = list(self.actor.parameters())
        self.actor_opt = adam(self.actor_params, cfg.actor_lr, cfg.fused_adam)
        self.temp_opt = adam(self.temperature.parameters(), cfg.temp_lr, cfg.fused_adam)

    @property
    def alpha(self) -> torch.Tensor:
        return self.temperature.alpha

    # Acting ------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict, deterministic: bool = False) -> np.ndarray:
        mean, log_std = self.actor(self.critic.encoder(obs_to_tensors(obs, self.image_shapes, self.device)))
        if deterministic:
            action = torch.tanh(mean)
        else:
            noise = torch.randn(mean.shape, generator=self.generator, device=self.device)
            action, _ = losses.tanh_gaussian_sample(mean, log_std, noise)
        return action[0].cpu().numpy().astype(np.float32)

    # Losses ------------------------------------------------------------------------------------
    def next_action(self, noise: torch.Tensor, alpha: torch.Tensor):
        """The TD target's action at s': a sample of the actor (+ the entropy bonus when backed up)."""
        def fn(next_feat: torch.Tensor):
            a, logp = self.actor.sample(next_feat, noise)
            return a, (-alpha * logp if self.cfg.backup_entropy else None)
        return fn

    def actor_loss(self, feat: torch.Tensor, pi: dict, alpha: torch.Tensor, demo_action: torch.Tensor,
                   demo_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``pi`` = the actor's sample at ``feat`` (mean, action, logp), drawn before the critic step."""
        loss = losses.actor_loss(self.critic.q(feat, pi["action"]), pi["logp"], alpha, self.cfg.q_normalize)
        if self.cfg.bc_weight > 0:
            loss = loss + self.cfg.bc_weight * losses.bc_loss(torch.tanh(pi["mean"]), demo_action, demo_mask)
        return loss, pi["logp"].detach()

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        """One critic step (and, when ``update_actor``, one actor + temperature step)."""
        cfg, g = self.cfg, self.generator
        obs = augment(batch["obs"], cfg.encoder.shift_pad, g)
        next_obs = augment(batch["next_obs"], cfg.encoder.shift_pad, g)
        b = batch["action"].shape[0]
        next_noise = torch.randn((b, self.action_dim), generator=g, device=self.device)
        members = torch.randperm(cfg.num_critics, generator=g, device=self.device)[: cfg.critic_subset]
        alpha = self.alpha
        pi: dict = {}

        def actor_actions(feat: torch.Tensor) -> torch.Tensor:
            # the actor's sample at the batch's features; the actor is not changed by the critic step, so it
            # can be drawn first and the native critic evaluates it in the same pass as its update
            noise = torch.randn((b, self.action_dim), generator=g, device=self.device)
            pi["mean"], log_std = self.actor(feat)
            pi["action"], pi["logp"] = losses.tanh_gaussian_sample(pi["mean"], log_std, noise)
            return pi["action"]

        metrics, feat = self.critic.update(obs, batch["action"], batch["reward"], batch["discount"], next_obs,
                                           self.next_action(next_noise, alpha), members,
                                           actor_actions=actor_actions if update_actor else None)
        if update_actor:
            demo_mask = batch.get("is_demo")
            if demo_mask is None:
                demo_mask = torch.zeros(b, dtype=torch.bool, device=self.device)
            a_loss, logp = self.actor_loss(feat, pi, alpha, batch["action"], demo_mask)
            grads = torch.autograd.grad(a_loss, self.actor_params)  # no wasted critic weight grads
            for p, gr in zip(self.actor_params, grads):
                p.grad = gr
            self.actor_opt.step()
            t_loss = losses.temperature_loss(self.temperature.log_alpha, logp, self.target_entropy)
            self.temp_opt.zero_grad(set_to_none=True)
            t_loss.backward()
            self.temp_opt.step()
            if self.log_alpha_min is not None:  # clamp the parameter itself: a rise starts from the floor at once
                with torch.no_grad():
                    self.temperature.log_alpha.clamp_(min=self.log_alpha_min)
            metrics.update(actor_loss=float(a_loss.detach()), entropy=float(-logp.mean()), alpha=float(self.alpha))
        self.num_updates += 1
        return metrics

    # Contract ----------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        return {**self.critic.modules(), "actor": self.actor, "temperature": self.temperature}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic.opt, "actor_opt": self.actor_opt, "temp_opt": self.temp_opt}

    def _after_load(self) -> None:
        self.critic.invalidate()

    def policy_config(self) -> GaussianConfig:
        cams = tuple(sorted(self.image_shapes))
        size = self.image_shapes[cams[0]][0] if cams else 84
        return GaussianConfig(state_dim=self.state_dim, action_dim=self.action_dim, cameras=cams, image_size=size,
                              hidden=self.cfg.hidden, layer_norm=self.cfg.layer_norm,
                              log_std_min=self.cfg.log_std_min, log_std_max=self.cfg.log_std_max,
                              encoder=copy.deepcopy(self.cfg.encoder))

    def policy(self) -> GaussianPolicy:
        pol = GaussianPolicy(self.policy_config())
        pol.encoder.load_state_dict({k: v.cpu() for k, v in self.critic.encoder.state_dict().items()})
        pol.actor.load_state_dict({k: v.cpu() for k, v in self.actor.state_dict().items()})
        return pol.eval()
