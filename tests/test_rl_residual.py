"""A residual-SAC algorithm written against the Algorithm contract (frozen linear base, residual head
with a zero-initialised last layer) trains through the shared trainer with no change to it or to the
C++ code; its first action is the base action, and its exported policy loads like any checkpoint."""
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from robolearn.policies import registry as policy_registry
from robolearn.policies.gaussian.modeling import GaussianActor
from robolearn.rl import registry
from robolearn.rl.algorithm import AlgoConfig, Algorithm, adam, obs_to_tensors
from robolearn.rl.critic import SharedCritic
from robolearn.train.checkpoint import load_policy
from robolearn.train.online import OnlineTrainer
from robolearn.train.rl_config import build_config
from test_online_loop import TrackEnv, _policy_error

BASE_GAIN = 0.2  # the base policy acts 0.2 * s0; the optimum is 0.6 * s0


def base_action(state: torch.Tensor) -> torch.Tensor:
    return (BASE_GAIN * state[..., :1]).clamp(-1, 1)


@dataclass
class ResidualConfig(AlgoConfig):
    alpha: float = 0.5          # executed = clip(base + alpha * residual)
    actor_lr: float = 3e-3
    noise_std: float = 0.05


@dataclass
class ResidualPolicyConfig:
    type: ClassVar[str] = "test_residual"
    state_dim: int = 2
    action_dim: int = 1
    alpha: float = 0.5
    hidden: tuple = (32, 32)
    cameras: tuple = ()


class ResidualPolicy(nn.Module):
    type = "test_residual"

    def __init__(self, config: ResidualPolicyConfig):
        super().__init__()
        self.config = config
        self.actor = GaussianActor(config.state_dim + config.action_dim, config.action_dim, tuple(config.hidden),
                                   True, -10.0, 2.0)

    def reset(self):
        pass

    @torch.no_grad()
    def act(self, obs, **_):
        s = torch.as_tensor(np.asarray(obs["state"], np.float32))[None]
        b = base_action(s)
        return (b + self.config.alpha * torch.tanh(self.actor(torch.cat([s, b], -1))[0])).clamp(-1, 1).numpy()

    def select_action(self, obs, generator=None, **_):
        return self.act(obs)[0]


class ResidualSAC(Algorithm):
    config_class = ResidualConfig
    extra_fields = {"base_action": ("action",)}

    def __init__(self, cfg, spec, device="cpu", seed=0):
        super().__init__(cfg, spec, device, seed)
        self.critic = SharedCritic(cfg, spec, self.device, "residual_test")
        self.actor = GaussianActor(spec.state_dim + spec.action_dim, spec.action_dim, cfg.hidden, True, -10.0, 2.0)
        nn.init.zeros_(self.actor.net[-1].weight)  # the residual starts at 0: the run starts at the base policy
        nn.init.zeros_(self.actor.net[-1].bias)
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr, False)
        self._last_base = None

    def executed(self, state, base, noise=None):
        mean = self.actor(torch.cat([state, base], -1))[0]
        r = torch.tanh(mean if noise is None else mean + noise)
        return (base + self.cfg.alpha * r).clamp(-1, 1)

    @torch.no_grad()
    def act(self, obs, deterministic=False):
        s = obs_to_tensors(obs, {}, self.device)["state"]
        b = base_action(s)
        self._last_base = b[0].numpy()
        noise = None if deterministic else self.cfg.noise_std * torch.randn(b.shape, generator=self.generator)
        return self.executed(s, b, noise)[0].numpy().astype(np.float32)

    def step_extras(self):
        return {"base_action": self._last_base}

    def update(self, batch, update_actor=True):
        s, s_next = batch["obs"]["state"], batch["next_obs"]["state"]
        members = torch.randperm(self.cfg.num_critics, generator=self.generator)[: self.cfg.critic_subset]

        def next_action(next_feat):  # the base action at s' plus the residual there
            return self.executed(s_next, base_action(s_next)), None

        metrics, feat = self.critic.update(batch["obs"], batch["action"], batch["reward"], batch["discount"],
                                           batch["next_obs"], next_action, members)
        if update_actor:
            q = self.critic.q(feat, self.executed(s, batch["base_action"]))
            loss = -q.mean()
            self.actor_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.actor_opt.step()
            metrics["actor_loss"] = float(loss.detach())
        self.num_updates += 1
        return metrics

    def modules(self):
        return {**self.critic.modules(), "actor": self.actor}

    def optimizers(self):
        return {"critic_opt": self.critic.opt, "actor_opt": self.actor_opt}

    def _after_load(self):
        self.critic.invalidate()

    def policy(self):
        pol = ResidualPolicy(ResidualPolicyConfig(self.state_dim, self.action_dim, self.cfg.alpha, self.cfg.hidden))
        pol.actor.load_state_dict(self.actor.state_dict())
        return pol


@pytest.fixture
def residual_registered():
    registry.register("residual_test", registry.AlgoEntry(ResidualSAC, agent={"discount": 0.0}))
    policy_registry.register("test_residual", "test_rl_residual:ResidualPolicyConfig",
                             "test_rl_residual:ResidualPolicy")
    yield
    registry.unregister("residual_test")


def test_first_action_is_the_base_action_and_base_actions_are_stored(tmp_path, residual_registered):
    cfg = build_config("residual_test", overrides={"agent": {"hidden": [32, 32], "num_critics": 4},
                                                   "train": {"steps": 12, "warmup_steps": 100, "random_warmup": False,
                                                             "eval_episodes": 0}})
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", env_factory=lambda n, **k: TrackEnv(4))
    obs = {"state": np.array([0.5, -0.2], np.float32)}
    assert tr.algo.act(obs, deterministic=True)[0] == pytest.approx(BASE_GAIN * 0.5, abs=1e-7)
    tr.run(progress=False)
    slots = np.flatnonzero(tr.online.has_next[: tr.online.size])
    stored_base = tr.online.extras["base_action"][slots, 0]
    assert np.allclose(stored_base, BASE_GAIN * tr.online.state[slots, 0], atol=1e-6)
    # exploration stays near the base: |executed - base| <= alpha * tanh(3 sigma) for these draws
    assert np.max(np.abs(tr.online.action[slots, 0] - stored_base)) < 0.5 * np.tanh(0.05 * 5)


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_residual_trains_through_the_shared_trainer(tmp_path, residual_registered, backend):
    cfg = build_config("residual_test", overrides={
        "agent": {"hidden": [32, 32], "num_critics": 4, "critic_lr": 3e-3, "fused_adam": False, "backend": backend},
        "train": {"steps": 700, "warmup_steps": 100, "random_warmup": False, "batch_size": 32, "eval_every": 700,
                  "eval_episodes": 2, "checkpoint_every": 10_000, "log_every": 100}})
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", env_factory=lambda n, **k: TrackEnv(1))
    assert tr.algo.critic.backend == backend
    base_error = _policy_error(tr.algo)  # = mean |0.2 s0 - 0.6 s0| = 0.4 * mean|s0|
    tr.run(progress=False)
    assert _policy_error(tr.algo) < 0.5 * base_error
    pol = load_policy(tmp_path / "run")  # the exported residual policy acts as the trained algorithm
    obs = {"state": np.array([0.7, 0.1], np.float32)}
    assert pol.type == "test_residual" and pol.meta["env"] == "toy/track"
    assert np.allclose(pol.select_action(obs), tr.algo.act(obs, deterministic=True), atol=1e-6)
