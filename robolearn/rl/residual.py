"""Residual RL on a frozen base policy, trained off-policy (ResiP's residual, trained as ResFiT /
Policy Decorator do).

The base (a BC diffusion / consistency chunk policy) is frozen and runs its chunk open loop, as BC
would; a small residual actor acts every step on [observation features, normalised base action], and
the env executes ``clip(a_base + alpha * r)``. The residual's last layer starts at zero, so training
starts exactly at the base policy, and ``alpha`` (0.1) bounds how far the refined policy can ever move
from it: the base keeps the task's structure, the residual only fixes the last centimetres.

Why TD3-style (ResFiT) rather than SAC-style: with ``alpha = 0.1`` the reachable action set is a thin
box around the base action; an entropy bonus would push the residual to spread over that whole box (a
fixed temperature has no natural value when the action range is 0.2 wide), while a deterministic
residual with a fixed small Gaussian exploration noise (std 0.05 in action units, ResFiT's value)
explores exactly as much as we choose, needs no temperature, and its deterministic action is what the
exported policy runs. TD3's target policy smoothing is available (``target_noise_std``, off by default).

The critic is the shared one (rl/critic.py) and scores the executed action. Its TD target bootstraps
from the action the refined policy would execute at s': the base action there plus the residual. The
base action at s' is the one the base actually executed (recorded per transition as ``base_action``,
so batches carry ``next_base_action``); where nothing was recorded (the last observation of an
episode: ``next_base_valid`` is 0) the base is sampled afresh at s' from ``next_obs_history``. Demo
transitions get the same field in ``prepare``: the base runs over each demo episode as it would act
(reset at the start, chunks open loop), so the residual's input is defined on demo rows too.

Critic-only warm-up (``critic_warmup`` critic updates before the actor first moves): a residual trained
on a random critic would walk away from a good base before the critic knows anything (ResFiT: 10k).
Policy Decorator's progressive exploration (``progressive_steps`` = H > 0): while exploring, the
residual is applied with probability min(t / H, 1), else the base acts alone.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robolearn.policies.features import augment
from robolearn.policies.residual.configuration import ResidualPolicyConfig
from robolearn.policies.residual.modeling import ResidualActor, ResidualPolicy, residual_action
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec, Algorithm, adam, obs_to_tensors
from robolearn.rl.base_policy import BasePolicy
from robolearn.rl.critic import SharedCritic


@dataclass
class ResidualConfig(AlgoConfig):
    alpha: float = 0.1                          # executed = clip(base + alpha * residual)
    residual_hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 1e-6                      # ResFiT; faster rates let the residual exploit critic errors
    noise_std: float = 0.05                     # exploration noise around base + alpha * r, in action units
    noise_clip: float = 0.0                     # |noise| bound (0: unbounded)
    target_noise_std: float = 0.0               # TD3 target policy smoothing (0: off)
    target_noise_clip: float = 0.1
    critic_warmup: int = 1_000                  # critic updates before the first actor update
    progressive_steps: int = 0                  # Policy Decorator: P(residual on) = min(t / H, 1); 0: always on
    q_normalize: bool = False                   # actor's Q term / mean|Q| (TD3+BC): a step size independent of Q's scale
    residual_l2: float = 0.0                    # + residual_l2 * mean(r^2): anchors the refined policy to the base

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("alpha", "actor_lr", "noise_std", "noise_clip", "target_noise_std", "target_noise_clip",
                     "residual_l2"):
            try:  # YAML reads "1e-5" (no dot) as a string: accept it, or name the field
                setattr(self, name, float(getattr(self, name)))
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}") from None
        self.residual_hidden = tuple(int(h) for h in self.residual_hidden)
        if not self.residual_hidden or min(self.residual_hidden) < 1:
            raise ValueError(f"residual_hidden must be a non-empty list of positive sizes, got {self.residual_hidden}")
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not self.actor_lr > 0:
            raise ValueError(f"actor_lr must be > 0, got {self.actor_lr}")
        for name in ("noise_std", "noise_clip", "target_noise_std", "target_noise_clip", "residual_l2"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("critic_warmup", "progressive_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


# Pure functions (tested against hand-computed values) ------------------------------------------------
def gaussian_noise(shape, std: float, clip: float, generator: torch.Generator, device) -> torch.Tensor | None:
    """N(0, std^2) noise, clipped to [-clip, clip] when clip > 0; None when std is 0."""
    if std <= 0:
        return None
    eps = std * torch.randn(shape, generator=generator, device=device)
    return eps.clamp(-clip, clip) if clip > 0 else eps


def choose_base(recorded: torch.Tensor, valid: torch.Tensor, sampled: torch.Tensor) -> torch.Tensor:
    """The base action per row: the recorded one where it exists (``valid`` > 0.5), else a fresh sample."""
    return torch.where(valid.reshape(-1, 1) > 0.5, recorded, sampled)


def residual_probability(step: int, horizon: int) -> float:
    """Policy Decorator's progressive exploration: min(t / H, 1); always 1 when H = 0 (off)."""
    return 1.0 if horizon <= 0 else min(step / horizon, 1.0)


def actor_loss(q: torch.Tensor, residual: torch.Tensor | None = None, residual_l2: float = 0.0,
               q_normalize: bool = False) -> torch.Tensor:
    """-E[mean over members of Q(s, clip(base + alpha * r(s, base)))] (divided by the batch's mean |Q| when
    ``q_normalize``, as TD3+BC does) + residual_l2 * E[r^2]. q: (E, B), residual: (B, A) -> scalar.

    Why the penalty: with a sparse 0/1 reward the critic's action-gradient inside the thin box around the
    base is mostly noise early on; a residual that follows it alone walks away from a good base (measured:
    pick_cube 60% -> 0-20% at actor lr 1e-5). The L2 term makes "stay at the base" the default that the
    critic must outweigh, and normalising Q makes that trade-off independent of the reward's scale."""
    term = q.mean()
    if q_normalize:
        term = term / q.detach().abs().mean().clamp_min(1e-6)
    loss = -term
    if residual_l2 > 0:
        if residual is None:
            raise ValueError("residual_l2 > 0 needs the residual")
        loss = loss + residual_l2 * residual.pow(2).mean()
    return loss


class _Counter(nn.Module):
    """Exploration steps taken (for the progressive schedule), as a buffer so checkpoints carry it."""

    def __init__(self):
        super().__init__()
        self.register_buffer("explore_steps", torch.zeros((), dtype=torch.int64))


class ResidualRL(Algorithm):
    config_class = ResidualConfig
    extra_fields = {"base_action": ("action",), "base_valid": ()}
    needs_base = True

    def __init__(self, cfg: ResidualConfig, spec: AlgoSpec, device="cpu", seed: int = 0, base=None):
        super().__init__(cfg, spec, device, seed)
        self.check_base(base)
        # Two copies of the frozen base, one per acting mode: the trainer evaluates in the middle of a
        # training episode, and evaluation episodes must not consume (or reset) the chunk queue the
        # training episode is running open loop. The weights never change, so the copies stay equal.
        self.base = BasePolicy(base, self.device)
        self.eval_base = BasePolicy(copy.deepcopy(base), self.device)
        self._reset_pending = True
        self.critic = SharedCritic(cfg, spec, self.device, algo_name=self.name, extra_loss=self.uses_critic_extra_loss)
        self.actor = ResidualActor(self.critic.encoder.out_dim, self.action_dim, cfg.residual_hidden,
                                   cfg.layer_norm).to(self.device)
        self.actor_params = list(self.actor.parameters())
        self.actor_opt = adam(self.actor_params, cfg.actor_lr, cfg.fused_adam)
        self.counter = _Counter().to(self.device)
        self._last: dict[str, np.ndarray] = {}

    # Setup -------------------------------------------------------------------------------------
    def prepare(self, demos) -> None:
        super().prepare(demos)
        if demos is None:
            return
        self.relabel_demos(demos, torch.Generator(device="cpu").manual_seed(int(self.generator.initial_seed()) + 17))

    def relabel_demos(self, buf, generator: torch.Generator | None = None) -> int:
        """Write ``base_action`` / ``base_valid`` for every transition of ``buf`` (a replay/demo buffer): the
        base runs over each episode in slot order as it acts online (reset at the episode's first slot,
        one chunk per ``n_action_steps`` steps, open loop). Returns the number of transitions labelled."""
        n = 0
        prev_ep = None
        cams = list(buf.spec.images)
        try:
            for i in range(buf.size):
                ep = int(buf.episode[i])
                if ep < 0:
                    prev_ep = None
                    continue
                if ep != prev_ep:
                    self.base.reset()
                    prev_ep = ep
                if not buf.has_next[i]:
                    continue  # an episode's last observation: no transition leaves it
                obs = {"state": buf.state[i]}
                if cams:
                    obs["images"] = {cam: buf.images[cam][i] for cam in cams}
                buf.extras["base_action"][i] = self.base.step(obs, generator)
                buf.extras["base_valid"][i] = 1.0
                n += 1
        finally:
            self.base.reset()
            self._reset_pending = True
        return n

    def batch_windows(self) -> tuple[int, int]:
        n = self.base.n_obs_steps
        return (n, n)  # observation histories at s and s' for base samples where no base action was recorded

    # Acting ------------------------------------------------------------------------------------
    def reset(self) -> None:
        # applies to whichever mode acts next (see __init__): an evaluation's reset must not restart the
        # training episode's chunk, and a new training episode always acts with deterministic=False first
        self._reset_pending = True

    def residual(self, features: torch.Tensor, base_action: torch.Tensor) -> torch.Tensor:
        return self.actor(features, self.base.normalize_action(base_action))

    @torch.no_grad()
    def act(self, obs: dict, deterministic: bool = False, generator: torch.Generator | None = None) -> np.ndarray:
        """This step's base action (open-loop chunk) plus the residual; while exploring, Gaussian noise
        around it (and, with progressive enabling, sometimes the base alone). ``generator`` (optional)
        drives the base's sampling instead of the algorithm's own (to reproduce a seeded evaluation)."""
        base = self.eval_base if deterministic else self.base
        if self._reset_pending:
            base.reset()
            self._reset_pending = False
        g = self.generator
        a_base = base.step(obs, generator if generator is not None else g)
        b = torch.from_numpy(a_base).to(self.device).unsqueeze(0)
        feat = self.critic.encoder(obs_to_tensors(obs, self.image_shapes, self.device))
        r = self.residual(feat, b)
        if deterministic:
            action = residual_action(b, r, self.cfg.alpha)
        else:
            cfg = self.cfg
            p = residual_probability(int(self.counter.explore_steps), cfg.progressive_steps)
            self.counter.explore_steps += 1
            use = p >= 1.0 or float(torch.rand((), generator=g, device=self.device)) < p
            if use:
                noise = gaussian_noise(b.shape, cfg.noise_std, cfg.noise_clip, g, self.device)
                action = residual_action(b, r, cfg.alpha, noise)
            else:
                action = residual_action(b, torch.zeros_like(r), cfg.alpha)
            self._last = {"base_action": a_base.astype(np.float32), "base_valid": np.float32(1.0)}
        return action[0].cpu().numpy().astype(np.float32)

    def step_extras(self) -> dict[str, np.ndarray]:
        return dict(self._last)

    # Learning ----------------------------------------------------------------------------------
    def base_actions(self, recorded: torch.Tensor, valid: torch.Tensor, history: dict | None,
                     needed: torch.Tensor | None = None) -> torch.Tensor:
        """Recorded base actions, with a fresh base sample from ``history`` on rows that have none (only
        rows in ``needed``, e.g. not terminal: a terminal row's next action never enters its target)."""
        missing = valid <= 0.5
        if needed is not None:
            missing = missing & needed
        if not bool(missing.any()):
            return recorded
        if history is None:
            raise ValueError("a batch row has no recorded base action and the batch carries no observation "
                             "history to sample the base from (batch_windows() must be honoured)")
        rows = missing.nonzero(as_tuple=True)[0]
        sub = _rows(history, rows)
        sampled = recorded.clone()
        sampled[rows] = self.base.sample(sub, self.generator)[:, 0].to(recorded.dtype)
        return choose_base(recorded, valid, sampled)

    def next_action(self, next_base: torch.Tensor):
        """The TD target's action at s': the next base action plus the residual there (optionally smoothed)."""
        cfg = self.cfg

        def fn(next_feat: torch.Tensor):
            r = self.residual(next_feat, next_base)
            noise = gaussian_noise(next_base.shape, cfg.target_noise_std, cfg.target_noise_clip, self.generator,
                                   self.device)
            return residual_action(next_base, r, cfg.alpha, noise), None
        return fn

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        cfg, g = self.cfg, self.generator
        obs = augment(batch["obs"], cfg.encoder.shift_pad, g)
        next_obs = augment(batch["next_obs"], cfg.encoder.shift_pad, g)
        base = self.base_actions(batch["base_action"], batch["base_valid"], batch.get("obs_history"))
        next_base = self.base_actions(batch["next_base_action"], batch["next_base_valid"],
                                      batch.get("next_obs_history"), needed=batch["discount"] > 0)
        members = torch.randperm(cfg.num_critics, generator=g, device=self.device)[: cfg.critic_subset]
        train_actor = update_actor and self.num_updates >= cfg.critic_warmup
        pi: dict = {}

        def actor_actions(feat: torch.Tensor) -> torch.Tensor:
            # the actor is not changed by the critic step: its action can be drawn first, and the native
            # critic then evaluates it in the same pass as its update
            pi["r"] = self.residual(feat, base)
            pi["action"] = residual_action(base, pi["r"], cfg.alpha)
            return pi["action"]

        metrics, feat = self.critic.update(obs, batch["action"], batch["reward"], batch["discount"], next_obs,
                                           self.next_action(next_base), members,
                                           actor_actions=actor_actions if train_actor else None)
        if train_actor:
            loss = actor_loss(self.critic.q(feat, pi["action"]), pi["r"], cfg.residual_l2, cfg.q_normalize)
            grads = torch.autograd.grad(loss, self.actor_params)
            for p, gr in zip(self.actor_params, grads):
                p.grad = gr
            self.actor_opt.step()
            metrics.update(actor_loss=float(loss.detach()), residual_abs=float(pi["r"].detach().abs().mean()))
        self.num_updates += 1
        return metrics

    # Contract ----------------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        # the base is frozen and comes from --base: it is not training state (the exported policy holds it)
        return {**self.critic.modules(), "actor": self.actor, "counter": self.counter}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic.opt, "actor_opt": self.actor_opt}

    def _after_load(self) -> None:
        self.critic.invalidate()

    def describe(self) -> dict:
        return {**super().describe(), "base": self.base.policy.type, "alpha": self.cfg.alpha}

    def policy_config(self) -> ResidualPolicyConfig:
        from dataclasses import asdict

        cams = tuple(sorted(self.image_shapes))
        size = self.image_shapes[cams[0]][0] if cams else 84
        return ResidualPolicyConfig(state_dim=self.state_dim, action_dim=self.action_dim, cameras=cams,
                                    image_size=size, hidden=self.cfg.residual_hidden, layer_norm=self.cfg.layer_norm,
                                    alpha=self.cfg.alpha, encoder=copy.deepcopy(self.cfg.encoder),
                                    base_type=self.base.policy.type, base_config=asdict(self.base.config))

    def policy(self) -> ResidualPolicy:
        pol = ResidualPolicy(self.policy_config())
        pol.base.load_state_dict({k: v.detach().cpu() for k, v in self.base.policy.state_dict().items()})
        pol.encoder.load_state_dict({k: v.cpu() for k, v in self.critic.encoder.state_dict().items()})
        pol.residual.load_state_dict({k: v.cpu() for k, v in self.actor.state_dict().items()})
        return pol.eval()


def _rows(obs: dict, rows: torch.Tensor) -> dict:
    return {k: (_rows(v, rows) if isinstance(v, dict) else v.index_select(0, rows)) for k, v in obs.items()}
