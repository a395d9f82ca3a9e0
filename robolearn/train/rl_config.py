"""The config of an RL run: the algorithm's own config (typed by the registry's class) and the trainer's.

Loop settings - update-to-data ratio, actor cadence, batch size, demo fraction - are the trainer's;
what the algorithm computes is its config. ``build_config`` merges preset < recipe < command-line flags.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from robolearn.config_io import ConfigError, from_dict
from robolearn.rl import registry
from robolearn.rl.algorithm import AlgoConfig


@dataclass
class RLTrainConfig:
    steps: int = 20_000
    warmup_steps: int = 1_000          # env steps before the first update
    random_warmup: bool = True         # uniform random actions during warm-up (else the initial policy)
    utd_ratio: int = 1                 # critic updates per env step
    actor_every: int = 1               # actor update every k critic updates
    batch_size: int = 256
    offline_steps: int = 0             # demos-only updates before the env loop (algorithms with an offline phase)
    eval_every: int = 2_000
    eval_episodes: int = 5
    checkpoint_every: int = 5_000      # env steps between checkpoints (taken at the next episode end)
    log_every: int = 500
    buffer_capacity: int = 1_000_000
    demo_fraction: float = 0.5         # share of every batch drawn from demos (when demos are given)
    demo_extra_capacity: int = 10_000  # room in the demo buffer for interventions
    reward_bias: float = 0.0           # added to every stored reward, online and demo (-1: a cost per step)
    env_overrides: dict = field(default_factory=dict)
    torch_threads: int = 0             # 0: leave torch's default

    def __post_init__(self) -> None:
        for name in ("steps", "eval_every", "checkpoint_every", "log_every", "buffer_capacity", "utd_ratio",
                     "actor_every", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_episodes", "demo_extra_capacity", "torch_threads", "offline_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"train.demo_fraction must be in [0, 1], got {self.demo_fraction}")


@dataclass
class RunConfig:
    algo: str = "rlpd"
    agent: AlgoConfig = field(default_factory=AlgoConfig)
    train: RLTrainConfig = field(default_factory=RLTrainConfig)


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(algo: str, recipe: dict | None = None, overrides: dict | None = None,
                 where: str = "recipe") -> RunConfig:
    """preset < recipe < overrides, typed: the agent section by the algorithm's own config class."""
    entry = registry.entry(algo)
    data = merge({"algo": algo, "agent": entry.agent, "train": entry.train}, recipe or {})
    data = merge(data, overrides or {})
    if data.get("algo", algo) != algo:
        raise ValueError(f"{where} is for algo {data['algo']!r} but --algo is {algo!r}")
    unknown = sorted(set(data) - {"algo", "agent", "train"})
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(map(repr, unknown))}; known: algo, agent, train")
    cls = registry.algorithm_class(algo).config_class
    agent = from_dict(cls, data.get("agent") or {}, where=f"{where} agent ({algo})")
    train = from_dict(RLTrainConfig, data.get("train") or {}, where=f"{where} train")
    return RunConfig(algo=algo, agent=agent, train=train)


def comparable(agent_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of an agent config that changes what a run computes (the backend only changes how)."""
    return {k: v for k, v in agent_dict.items() if k not in ("backend",)}
