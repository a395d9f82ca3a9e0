"""The contract every RL algorithm meets, so the trainer, checkpoints, evaluation and benchmarks need
nothing else: ``act``, ``update(batch) -> metrics``, state as flat tensors, ``policy()`` exporting the
acting part as a registered policy, and an optional offline phase.

An algorithm is its actor side plus loss functions over the shared critic (``rl/critic.py``). Loop
settings (update-to-data ratio, actor cadence, batch size) belong to the trainer's config, not here.
Shared fields of every algorithm's config (the critic's shape and optimiser, the discount and n-step
horizon the buffer needs, the encoder, the backend) live in ``AlgoConfig``; an algorithm's config
subclasses it, so recipes stay flat.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
import torch
from torch import nn

from robolearn.policies.features import EncoderConfig

BACKENDS = ("auto", "eager", "compile", "native")


@dataclass
class AlgoConfig:
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    num_critics: int = 10
    critic_subset: int = 2          # target = min over this many members drawn at random
    discount: float = 0.99
    n_step: int = 1
    tau: float = 0.005
    critic_lr: float = 3e-4
    target_clip: tuple[float, float] | None = None  # bounds of the TD target, e.g. [0, 1] for a 0/1 success reward
    normalize_state: bool = False   # standardize states with the demos' mean/std (when there are demos)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    # how the critic step runs: eager autograd, torch.compile'd networks, or the C++ operators (state
    # features, LayerNorm, CPU, no extra critic loss); auto = native where it can run, else eager
    backend: str = "auto"
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
        if self.n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {self.n_step}")
        if not self.critic_lr > 0:
            raise ValueError(f"critic_lr must be > 0, got {self.critic_lr}")
        if self.target_clip is not None:
            lo, hi = (float(v) for v in self.target_clip)
            if not lo < hi:
                raise ValueError(f"target_clip must be [low, high] with low < high, got {self.target_clip}")
            self.target_clip = (lo, hi)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


@dataclass
class AlgoSpec:
    """What an algorithm is built for: the env's observation and action sizes."""

    state_dim: int
    action_dim: int
    image_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)


class Algorithm(abc.ABC):
    """Base of every RL algorithm. Subclasses set ``config_class`` and implement ``act``, ``update``,
    ``modules``, ``optimizers`` and ``policy``; everything else (checkpoint state, RNG) is here."""

    config_class: ClassVar[type[AlgoConfig]] = AlgoConfig
    # named per-transition buffer fields the algorithm reads from batches: name -> per-step shape, where
    # "action" in a shape stands for the action dimension (e.g. {"base_action": ("action",)})
    extra_fields: ClassVar[dict[str, tuple]] = {}
    has_offline_phase: ClassVar[bool] = False
    # True for methods that refine a base policy: the constructor takes ``base=`` (a BC run or checkpoint)
    needs_base: ClassVar[bool] = False
    # True when the algorithm adds a loss to the critic's TD loss (e.g. Cal-QL): the native backend cannot
    uses_critic_extra_loss: ClassVar[bool] = False

    def __init__(self, cfg: AlgoConfig, spec: AlgoSpec, device: str | torch.device = "cpu", seed: int = 0):
        if not isinstance(cfg, self.config_class):
            raise TypeError(f"{type(self).__name__} takes a {self.config_class.__name__}, got {type(cfg).__name__}")
        self.cfg, self.spec = cfg, spec
        self.state_dim, self.action_dim = int(spec.state_dim), int(spec.action_dim)
        self.image_shapes = {k: tuple(v) for k, v in spec.image_shapes.items()}
        self.device = torch.device(device)
        torch.manual_seed(seed)  # parameter init
        self.generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.num_updates = 0
        self.name = type(self).__name__.lower()

    # To implement --------------------------------------------------------------------------------
    @abc.abstractmethod
    def act(self, obs: dict, deterministic: bool = False) -> np.ndarray:
        """One env observation (numpy) -> one action in [-1, 1]."""

    @abc.abstractmethod
    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        """One learning step on a batch of tensors; no env, no I/O."""

    @abc.abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every module whose state a checkpoint must hold (parameters and buffers)."""

    @abc.abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Every optimizer whose state a checkpoint must hold."""

    @abc.abstractmethod
    def policy(self) -> nn.Module:
        """The acting part as a registered policy (``policies/registry.py``), on the CPU, ready to save."""

    def check_base(self, base, types: tuple[str, ...] = ("diffusion", "consistency")):
        """The base policy a refinement method was given: present, of an accepted type, and made for this
        env's state, action and cameras. Returns its config."""
        name = type(self).__name__
        if base is None:
            raise ValueError(f"{name} refines a base policy: pass --base RUN (a {' or '.join(types)} BC run)")
        if getattr(base, "type", None) not in types:
            raise TypeError(f"{name}'s base must be a {' or '.join(map(repr, types))} policy, got "
                            f"{getattr(base, 'type', type(base).__name__)!r}")
        bcfg = base.config
        if int(bcfg.state_dim) != self.state_dim or int(bcfg.action_dim) != self.action_dim:
            raise ValueError(f"the base policy takes state {bcfg.state_dim} / action {bcfg.action_dim}, the env "
                             f"has {self.state_dim} / {self.action_dim}")
        missing = sorted(set(bcfg.cameras) - set(self.image_shapes))
        if missing:
            raise ValueError(f"the base policy needs cameras {missing} that the env does not provide")
        return bcfg

    # Optional ------------------------------------------------------------------------------------
    def offline_update(self, batch: dict) -> dict[str, float]:
        """A step of the demos-only phase (for algorithms with ``has_offline_phase``)."""
        raise NotImplementedError(f"{type(self).__name__} has no offline phase")

    def prepare(self, demos) -> None:
        """Called once before training (and before a resume's load) with the demo buffer or None: fix
        normalisation statistics, relabel demo transitions (e.g. with a base policy's actions).

        Here: with ``normalize_state``, the shared critic's encoder standardises states with the demos'
        statistics (raw states mix metres, quaternions and gripper openings; a grasp needs ~1 cm
        resolution). Subclasses that override this call it first."""
        critic = getattr(self, "critic", None)
        if demos is not None and self.cfg.normalize_state and critic is not None:
            critic.encoder.set_state_stats(torch.from_numpy(demos.state[demos.episode >= 0]))

    @property
    def backend(self) -> str | None:
        """How the shared critic's step runs (eager / compile / native); None without a shared critic."""
        critic = getattr(self, "critic", None)
        return getattr(critic, "backend", None)

    def batch_windows(self) -> tuple[int, int] | None:
        """(n_obs_steps, horizon) when updates need observation histories and action chunks in batches
        (``obs_history``, ``next_obs_history``, ``action_chunk``), e.g. a chunk base policy's BC loss."""
        return None

    def step_extras(self) -> dict[str, np.ndarray]:
        """Values of ``extra_fields`` for the transition that the last ``act`` started (stored by the trainer)."""
        return {}

    def reset(self) -> None:
        """An episode starts (algorithms with per-episode state, e.g. a base policy's action queue)."""

    @torch.no_grad()
    def q_estimate(self, obs: dict, action: torch.Tensor) -> torch.Tensor | None:
        """The critic's value of (obs, action) rows, mean over members: (B,). None without a shared critic.
        The trainer logs it on evaluation episodes next to the discounted return that followed."""
        critic = getattr(self, "critic", None)
        if critic is None:
            return None
        return critic.net(critic.encoder(obs), action).mean(0)

    def describe(self) -> dict[str, Any]:
        return {"state_dim": self.state_dim, "action_dim": self.action_dim,
                "images": {k: list(v) for k, v in self.image_shapes.items()}}

    # Checkpoint state ----------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything needed to continue training, as a flat dict of CPU tensors (safetensors-ready)."""
        out: dict[str, torch.Tensor] = {}
        for name, mod in self.modules().items():
            for k, v in mod.state_dict().items():
                out[f"{name}.{k}"] = v.detach().cpu().clone().contiguous()
        for name, opt in self.optimizers().items():
            for idx, st in opt.state_dict()["state"].items():
                for k, v in st.items():
                    out[f"{name}.state.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().clone().contiguous()
        out["generator_state"] = self.generator.get_state().cpu().clone()
        out["num_updates"] = torch.tensor([self.num_updates], dtype=torch.int64)
        return out

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, mod in self.modules().items():
            prefix = f"{name}."
            sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            own = mod.state_dict()
            missing = sorted(set(own) - set(sd))
            if missing:
                raise ValueError(f"checkpoint lacks {name} tensors {missing[:5]}")
            mod.load_state_dict({k: sd[k] for k in own}, strict=True)
        for name, opt in self.optimizers().items():
            prefix = f"{name}.state."
            state: dict[int, dict[str, torch.Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(prefix):
                    idx, key = k[len(prefix):].split(".", 1)
                    state.setdefault(int(idx), {})[key] = v.clone()
            opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
        self.generator.set_state(tensors["generator_state"].clone())
        self.num_updates = int(tensors["num_updates"][0])
        self._after_load()

    def _after_load(self) -> None:
        """Hook for cached views of the state (e.g. the native backend's argument lists)."""


def adam(params, lr: float, fused: bool) -> torch.optim.Adam:
    """torch.optim.Adam, fused when the platform offers it (~10% faster on CPU)."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, lr=lr, fused=True)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.Adam(params, lr=lr)


def obs_to_tensors(obs: dict, image_shapes: dict, device: torch.device) -> dict:
    """One env observation (numpy) -> a batch of one on ``device``."""
    t = {"state": torch.as_tensor(np.asarray(obs["state"], dtype=np.float32), device=device).unsqueeze(0)}
    if image_shapes:
        t["images"] = {cam: torch.as_tensor(np.asarray(obs["images"][cam]), device=device).unsqueeze(0)
                       for cam in image_shapes}
    return t


NextActionFn = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor | None]"]
