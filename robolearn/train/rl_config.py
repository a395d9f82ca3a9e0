"""The config of an RL run: the algorithm's own config (typed by the registry's class) and the trainer's.

Loop settings - update-to-data ratio, actor cadence, batch size, demo fraction - are the trainer's;
what the algorithm computes is its config. ``build_config`` merges preset < recipe < command-line flags.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from robolearn.config_io import check_keys, from_dict
from robolearn.rl import registry
from robolearn.rl.algorithm import AlgoConfig


#: Interval fields that follow the run length when left unset (None or "auto"): steps // divisor.
AUTO_INTERVALS = {"eval_every": 10, "checkpoint_every": 10, "log_every": 100}


@dataclass
class RLTrainConfig:
    """Every step count here is in env steps: physics control steps of the underlying env, i.e. agent
    steps x the env's action repeat. One unit, so that a dm_control run with action repeat 8 and a sim run
    compare on one axis and ``--steps 100000`` means the benchmark's 100k whatever the repeat. Counts of
    transitions (``buffer_capacity``) and of updates (``utd_ratio``, ``offline_steps``) are per agent step."""

    steps: int = 20_000                # env steps
    warmup_steps: int = 1_000          # env steps before the first update
    random_warmup: bool = True         # uniform random actions during warm-up (else the initial policy)
    utd_ratio: int = 1                 # critic updates per agent step (per stored transition)
    actor_every: int = 1               # actor update every k critic updates
    batch_size: int = 256
    offline_steps: int = 0             # demos-only updates before the env loop (algorithms with an offline phase)
    # None / "auto": follow the run length (steps // 10 for eval and checkpoints, // 100 for logs), so a
    # longer or shorter --steps keeps ~10 evaluations without --set overrides; a number wins
    eval_every: int | None = None      # env steps between evaluations
    eval_episodes: int = 5
    checkpoint_every: int | None = None  # env steps between checkpoints (taken at the next episode end)
    log_every: int | None = None       # env steps between train/* log rows
    buffer_capacity: int = 1_000_000   # transitions (agent steps)
    demo_fraction: float = 0.5         # share of every batch drawn from demos (when demos are given)
    demo_extra_capacity: int = 10_000  # room in the demo buffer for interventions
    reward_bias: float = 0.0           # added to every stored reward, online and demo (-1: a cost per step)
    env_overrides: dict = field(default_factory=dict)
    # env overrides by env name pattern (fnmatch, e.g. "dmc/walker-*"), under env_overrides: a recipe's
    # per-env defaults such as the PlaNet/CURL action repeats of the dm_control domains
    env_defaults: dict = field(default_factory=dict)
    torch_threads: int = 0             # 0: leave torch's default

    def __post_init__(self) -> None:
        for name in AUTO_INTERVALS:
            value = getattr(self, name)
            if value is None or value == "auto":
                setattr(self, name, None)
            elif isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"train.{name} must be an int >= 1, or null / 'auto' (follow train.steps), "
                                 f"got {value!r}")
        for name in ("steps", "eval_every", "checkpoint_every", "log_every", "buffer_capacity", "utd_ratio",
                     "actor_every", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"train.{name} must be >= 1, got {value}")
        for name in ("warmup_steps", "eval_episodes", "demo_extra_capacity", "torch_threads", "offline_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"train.demo_fraction must be in [0, 1], got {self.demo_fraction}")
        if not isinstance(self.env_overrides, dict):
            raise ValueError(f"train.env_overrides must be a mapping, got {self.env_overrides!r}")
        if not isinstance(self.env_defaults, dict):
            raise ValueError(f"train.env_defaults must be a mapping of env pattern -> overrides, "
                             f"got {self.env_defaults!r}")
        for pattern, over in self.env_defaults.items():
            if not isinstance(pattern, str) or not isinstance(over, dict):
                raise ValueError(f"train.env_defaults: expected 'env pattern': {{key: value}}, "
                                 f"got {pattern!r}: {over!r}")

    def interval(self, name: str) -> int:
        """An interval field as the loop uses it: its value, or the run length's share when unset."""
        if name not in AUTO_INTERVALS:
            raise KeyError(f"{name!r} is not an interval field; known: {', '.join(AUTO_INTERVALS)}")
        value = getattr(self, name)
        return int(value) if value is not None else max(1, round(self.steps / AUTO_INTERVALS[name]))

    def env_kwargs(self, env_name: str) -> dict:
        """The overrides an env is built with: matching ``env_defaults`` (in recipe order), then
        ``env_overrides`` (the recipe's and --env-set's), which win."""
        from fnmatch import fnmatchcase

        out: dict = {}
        for pattern, over in self.env_defaults.items():
            if fnmatchcase(env_name, pattern):
                out.update(over)
        out.update(self.env_overrides)
        return out


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
    check_keys(data, ("algo", "agent", "train"), where, what="section")
    cls = registry.algorithm_class(algo).config_class
    agent = from_dict(cls, data.get("agent") or {}, where=f"{where} agent ({algo})")
    train = from_dict(RLTrainConfig, data.get("train") or {}, where=f"{where} train")
    return RunConfig(algo=algo, agent=agent, train=train)


def comparable(agent_dict: dict[str, Any]) -> dict[str, Any]:
    """The part of an agent config that changes what a run computes (the backend only changes how)."""
    return {k: v for k, v in agent_dict.items() if k not in ("backend",)}
