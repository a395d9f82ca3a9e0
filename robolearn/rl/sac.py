"""SAC with the RLPD / SERL choices: LayerNorm critic ensemble with random-subset-min targets, learned
temperature, n-step returns from the buffer, and an update-to-data ratio set by the caller.

The agent only maps batches of tensors to parameter updates (``update(batch) -> metrics``); it never
touches an env or the disk. All its randomness (exploration noise, subset draws, DrQ shifts) comes from
one ``torch.Generator`` whose state is part of ``state_tensors()`` so a resumed run repeats exactly.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from robolearn.rl import losses
from robolearn.rl.encoders import EncoderConfig, ObsEncoder, augment
from robolearn.rl.networks import Actor, Critic


@dataclass
class SACConfig:
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    num_critics: int = 10
    critic_subset: int = 2          # target = min over this many members drawn at random
    discount: float = 0.99
    n_step: int = 1
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    init_temperature: float = 1e-2
    target_entropy: float | None = None   # None -> -target_entropy_scale * |A|
    target_entropy_scale: float = 0.5
    backup_entropy: bool = False          # subtract alpha * log pi in the TD target
    bc_weight: float = 0.0                # optional BC term on demo rows (0 = pure RLPD; >0 as TD3+BC/ConRFT)
    utd_ratio: int = 1                    # critic updates per env step
    actor_every: int = 1                  # actor + temperature update every k critic updates
    batch_size: int = 256
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    target_clip: tuple[float, float] | None = None  # bounds of the TD target, e.g. [0, 1] for a 0/1 success reward
    q_normalize: bool = False             # actor's Q term / mean|Q| (TD3+BC), for use with bc_weight
    normalize_state: bool = False         # standardize states with the demos' statistics (when there are demos)
    compile: bool = False                 # the compiled update: C++ operators for state obs, else torch.compile
    native_update: bool = True            # with compile: the update as C++ operators where supported (rl/native_ops.py)
    fused_adam: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive sizes, got {self.hidden}")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if not 1 <= self.critic_subset <= self.num_critics:
            raise ValueError(f"critic_subset must be in [1, num_critics={self.num_critics}], got {self.critic_subset}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        for name in ("n_step", "utd_ratio", "actor_every", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("actor_lr", "critic_lr", "temp_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.target_clip is not None:
            lo, hi = (float(v) for v in self.target_clip)
            if not lo < hi:
                raise ValueError(f"target_clip must be [low, high] with low < high, got {self.target_clip}")
            self.target_clip = (lo, hi)
        if self.bc_weight < 0:
            raise ValueError(f"bc_weight must be >= 0, got {self.bc_weight}")
        if self.log_std_min >= self.log_std_max:
            raise ValueError("log_std_min must be < log_std_max")

    def resolved_target_entropy(self, action_dim: int) -> float:
        if self.target_entropy is not None:
            return float(self.target_entropy)
        return -self.target_entropy_scale * action_dim


def _adam(params, lr: float, fused: bool) -> torch.optim.Adam:
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(params, lr=lr)


class SACAgent:
    """Actor, critic ensemble (+ target), shared observation encoder, temperature, optimizers."""

    def __init__(self, cfg: SACConfig, state_dim: int, action_dim: int,
                 image_shapes: dict[str, tuple[int, int, int]] | None = None, seed: int = 0):
        self.cfg = cfg
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.image_shapes = {k: tuple(v) for k, v in (image_shapes or {}).items()}
        torch.manual_seed(seed)  # parameter init
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.encoder = ObsEncoder(self.state_dim, self.image_shapes, cfg.encoder)
        fdim = self.encoder.out_dim
        self.critic = Critic(fdim, action_dim, cfg.hidden, cfg.num_critics, cfg.layer_norm)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor = Actor(fdim, action_dim, cfg.hidden, cfg.layer_norm, cfg.log_std_min, cfg.log_std_max)
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(np.log(cfg.init_temperature))))
        self.target_entropy = cfg.resolved_target_entropy(action_dim)
        self.critic_params = list(self.encoder.parameters()) + list(self.critic.parameters())
        self.actor_params = list(self.actor.parameters())
        self.critic_opt = _adam(self.critic_params, cfg.critic_lr, cfg.fused_adam)
        self.actor_opt = _adam(self.actor_params, cfg.actor_lr, cfg.fused_adam)
        self.temp_opt = _adam([self.log_alpha], cfg.temp_lr, cfg.fused_adam)
        self._target_list = list(self.target_critic.parameters())
        self._online_list = list(self.critic.parameters())
        self.num_updates = 0
        # compile: the whole update (both losses, their gradients, Adam, Polyak) as one C++ operator for state
        # observations (native_ops.py) or one torch.compile graph (fused.py); imported only then (the
        # extension build and torch.func / dynamo are heavy for an eager or acting-only agent)
        self._fused = None
        if cfg.compile:
            from robolearn.rl.fused import FusedUpdate

            self._fused = FusedUpdate(self, compile=True)
        self._fused_ok: set[bool] = set()  # schedules (update_actor flag) whose graph compiled

    def _call_fused(self, args):
        """With torch.compile the first call per schedule compiles (~30-60 s). If that fails (no C++ compiler,
        an unsupported platform), say so and train with the eager update: same math, ~2x slower."""
        flag = bool(args[-1])
        if flag in self._fused_ok:
            return self._fused(*args)
        import warnings

        try:
            out = self._fused(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure; nothing was updated yet
            warnings.warn(f"torch.compile of the learner update failed ({type(exc).__name__}: {exc}); "
                          "using the eager update instead", RuntimeWarning, stacklevel=3)
            self._fused = None
            return None
        self._fused_ok.add(flag)
        return out

    # Acting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: dict, deterministic: bool = False) -> np.ndarray:
        """One observation (numpy dict as the env returns it) -> action in [-1, 1]."""
        t = {"state": torch.as_tensor(np.asarray(obs["state"], dtype=np.float32)).unsqueeze(0)}
        if self.image_shapes:
            t["images"] = {cam: torch.as_tensor(np.asarray(obs["images"][cam])).unsqueeze(0)
                           for cam in self.image_shapes}
        mean, log_std = self.actor(self.encoder(t))
        if deterministic:
            action = torch.tanh(mean)
        else:
            noise = torch.randn(mean.shape, generator=self.generator)
            action, _ = losses.tanh_gaussian_sample(mean, log_std, noise)
        return action[0].numpy().astype(np.float32)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.detach().exp()

    # Learning ---------------------------------------------------------------------------------
    def _critic_loss(self, obs, action, reward, discount, next_obs, next_noise, members, alpha):
        with torch.no_grad():
            next_feat = self.encoder(next_obs)
            mean, log_std = self.actor(next_feat)
            next_action, next_logp = losses.tanh_gaussian_sample(mean, log_std, next_noise)
            # only the drawn members run (= subset_min over the full ensemble, 1/5 of its FLOPs at 2 of 10)
            next_q = self.target_critic(next_feat, next_action, members).min(dim=0).values
            if self.cfg.backup_entropy:
                target = losses.td_target(reward, discount, next_q, next_logp, alpha, self.cfg.target_clip)
            else:
                target = losses.td_target(reward, discount, next_q, clip=self.cfg.target_clip)
        feat = self.encoder(obs)
        q = self.critic(feat, action)
        return losses.critic_loss(q, target), q.detach(), feat.detach()

    def _actor_loss(self, feat, noise, alpha, demo_action, demo_mask):
        mean, log_std = self.actor(feat)
        action, logp = losses.tanh_gaussian_sample(mean, log_std, noise)
        q = self.critic(feat, action)
        loss = losses.actor_loss(q, logp, alpha, self.cfg.q_normalize)
        if self.cfg.bc_weight > 0:
            loss = loss + self.cfg.bc_weight * losses.bc_loss(torch.tanh(mean), demo_action, demo_mask)
        return loss, logp.detach()

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        """One critic step (and, when ``update_actor``, one actor + temperature step); Polyak target."""
        cfg, g = self.cfg, self.generator
        obs = augment(batch["obs"], cfg.encoder.shift_pad, g)
        next_obs = augment(batch["next_obs"], cfg.encoder.shift_pad, g)
        b = batch["action"].shape[0]
        next_noise = torch.randn((b, self.action_dim), generator=g)
        members = torch.randperm(cfg.num_critics, generator=g)[: cfg.critic_subset]
        demo_mask = batch.get("is_demo")
        if demo_mask is None:
            demo_mask = torch.zeros(b, dtype=torch.bool)
        if self._fused is not None:
            rng_before = g.get_state() if update_actor not in self._fused_ok else None
            noise = torch.randn((b, self.action_dim), generator=g) if update_actor else next_noise
            out = self._call_fused((obs, batch["action"], batch["reward"], batch["discount"], next_obs, next_noise,
                                    members, noise, demo_mask, update_actor))
            if out is not None:
                self.num_updates += 1
                return {k: float(v) for k, v in out.items()}
            g.set_state(rng_before)  # compile failed: the eager path below draws the actor noise itself
        alpha = self.alpha
        c_loss, q, feat = self._critic_loss(obs, batch["action"], batch["reward"], batch["discount"],
                                            next_obs, next_noise, members, alpha)
        self.critic_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        self.critic_opt.step()
        metrics = {"critic_loss": float(c_loss.detach()), "q_mean": float(q.mean())}
        if update_actor:
            noise = torch.randn((b, self.action_dim), generator=g)
            a_loss, logp = self._actor_loss(feat, noise, alpha, batch["action"], demo_mask)
            grads = torch.autograd.grad(a_loss, self.actor_params)  # no wasted critic weight grads
            for p, gr in zip(self.actor_params, grads):
                p.grad = gr
            self.actor_opt.step()
            t_loss = losses.temperature_loss(self.log_alpha, logp, self.target_entropy)
            self.temp_opt.zero_grad(set_to_none=True)
            t_loss.backward()
            self.temp_opt.step()
            metrics.update(actor_loss=float(a_loss.detach()), entropy=float(-logp.mean()), alpha=float(self.alpha))
        losses.polyak_(self._target_list, self._online_list, cfg.tau)
        self.num_updates += 1
        return metrics

    # Checkpoint state -------------------------------------------------------------------------
    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"encoder": self.encoder, "critic": self.critic, "target_critic": self.target_critic,
                "actor": self.actor}

    def _optims(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic_opt": self.critic_opt, "actor_opt": self.actor_opt, "temp_opt": self.temp_opt}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue training, as a flat dict of tensors (safetensors-ready)."""
        out: dict[str, torch.Tensor] = {}
        for name, mod in self._modules().items():
            for k, v in mod.state_dict().items():
                out[f"{name}.{k}"] = v.detach().clone().contiguous()
        out["log_alpha"] = self.log_alpha.detach().clone().reshape(1)
        for name, opt in self._optims().items():
            for idx, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    out[f"{name}.state.{idx}.{k}"] = torch.as_tensor(v).clone().contiguous()
        out["generator_state"] = self.generator.get_state().clone()
        out["num_updates"] = torch.tensor([self.num_updates], dtype=torch.int64)
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, mod in self._modules().items():
            prefix = f"{name}."
            sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if name == "encoder":  # checkpoints from before state standardization: identity
                sd.setdefault("state_mean", torch.zeros(self.state_dim))
                sd.setdefault("state_scale", torch.ones(self.state_dim))
            mod.load_state_dict(sd, strict=True)
        with torch.no_grad():
            self.log_alpha.copy_(tensors["log_alpha"].reshape(()))
        for name, opt in self._optims().items():
            prefix = f"{name}.state."
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(prefix):
                    idx, key = k[len(prefix):].split(".", 1)
                    state.setdefault(int(idx), {})[key] = v.clone()
            sd = opt.state_dict()
            opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
        self.generator.set_state(tensors["generator_state"].clone())
        self.num_updates = int(tensors["num_updates"][0])

    def policy_tensors(self) -> dict[str, torch.Tensor]:
        """Only what acting needs (encoder + actor), for exported policy checkpoints."""
        out = {f"encoder.{k}": v.contiguous() for k, v in self.encoder.state_dict().items()}
        out.update({f"actor.{k}": v.contiguous() for k, v in self.actor.state_dict().items()})
        return out

    def describe(self) -> str:
        return json.dumps({"state_dim": self.state_dim, "action_dim": self.action_dim,
                           "images": {k: list(v) for k, v in self.image_shapes.items()}})
