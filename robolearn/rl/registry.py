"""Algorithm name -> (class, preset). ``--algo`` lists this registry; a recipe YAML is merged on the preset.

A preset is the defaults a name stands for (``rlpd`` and ``sac`` are one class with different
defaults); the presets of ``rlpd`` and ``sac`` equal the shipped recipes policies/rlpd.yaml and
policies/sac.yaml (a test keeps them so), except for env-specific overrides that only a recipe names. Entries hold "module:Class" strings so that listing names imports nothing heavy, and a
test or plug-in can ``register`` its own algorithm without touching the trainer.
"""
from __future__ import annotations

import copy
import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AlgoEntry:
    cls: Any                                  # "module:Class" of an rl.algorithm.Algorithm subclass, or the class
    agent: dict[str, Any] = field(default_factory=dict)   # preset overrides of the algorithm's config
    train: dict[str, Any] = field(default_factory=dict)   # preset overrides of the train config
    help: str = ""


#: Action repeat per dm_control domain, the PlaNet / CURL / DrQ benchmark protocol (their "100k / 500k
#: steps" count env steps). The sac preset (and policies/sac.yaml) apply it as ``train.env_defaults``, so
#: ``--env dmc/walker-walk`` trains at repeat 2 without flags; ``--env-set action_repeat=N`` wins.
DMC_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "ball_in_cup": 4, "cheetah": 4, "walker": 2, "finger": 2}

_ALGOS: dict[str, AlgoEntry] = {
    # RLPD / SERL: 10-critic LayerNorm ensemble, min over a random pair, no entropy backup, 50/50 demos.
    "rlpd": AlgoEntry("robolearn.rl.sac:SAC",
                      agent={"num_critics": 10, "critic_subset": 2, "backup_entropy": False, "init_temperature": 1e-2,
                             "target_entropy_scale": 0.5, "discount": 0.97},
                      train={"demo_fraction": 0.5, "utd_ratio": 2, "actor_every": 2, "batch_size": 256,
                             "steps": 20_000, "warmup_steps": 500, "random_warmup": False, "eval_episodes": 10},
                      help="SAC from demos plus online data (RLPD / SERL)"),
    # Plain SAC: twin critics, entropy in the backup, target entropy -|A|, no demos.
    "sac": AlgoEntry("robolearn.rl.sac:SAC",
                     agent={"num_critics": 2, "critic_subset": 2, "backup_entropy": True, "init_temperature": 0.1,
                            "target_entropy_scale": 1.0, "discount": 0.99, "tau": 0.01, "actor_lr": 1e-3,
                            "critic_lr": 1e-3, "temp_lr": 3e-4},
                     train={"demo_fraction": 0.0, "warmup_steps": 8_000, "utd_ratio": 1, "actor_every": 1,
                            "batch_size": 256, "steps": 100_000, "eval_episodes": 5,
                            "env_defaults": {f"dmc/{domain}-*": {"action_repeat": repeat}
                                             for domain, repeat in DMC_ACTION_REPEAT.items()}},
                     help="soft actor-critic from scratch"),
    # Residual RL on a frozen base (ResiP's residual, trained off-policy as ResFiT / Policy Decorator):
    # 10 LayerNorm critics, min over 2, n-step 3, 50/50 demos (relabelled with the base's actions).
    "residual": AlgoEntry("robolearn.rl.residual:ResidualRL",
                          agent={"num_critics": 10, "critic_subset": 2, "n_step": 3, "discount": 0.99,
                                 "alpha": 0.5, "actor_lr": 3e-4, "q_normalize": True, "residual_l2": 1.0,
                                 "critic_warmup": 2000},   # tuned on pick_cube: see policies/residual.yaml
                          train={"demo_fraction": 0.5, "random_warmup": False},
                          help="a residual actor on a frozen BC base (ResiP / ResFiT); needs --base"),
    # EXPO: the base keeps its imitation loss online, a Gaussian edit policy, argmax-Q over N candidates.
    "expo": AlgoEntry("robolearn.rl.expo:EXPO",
                      agent={"num_critics": 10, "critic_subset": 2, "hidden": [128, 128], "discount": 0.99},
                      train={"demo_fraction": 0.5, "random_warmup": False},
                      help="expressive policy + edit policy with on-the-fly argmax-Q selection (EXPO); needs --base"),
    # ConRFT: consistency actor with BC + Q; offline Cal-QL stage, then online TD; 2 critics, gamma 0.98.
    "conrft": AlgoEntry("robolearn.rl.conrft:ConRFT",
                        agent={"num_critics": 2, "critic_subset": 2, "discount": 0.98, "actor_lr": 1e-5,
                               "online_bc_weight": 1.0, "online_q_weight": 0.1, "q_normalize": True,
                               "target_clip": [0.0, 1.0], "anchor_weight": 1.0},   # measured departures: see policies/conrft.yaml
                        train={"demo_fraction": 0.5, "batch_size": 64, "actor_every": 2, "random_warmup": False,
                               "offline_steps": 100, "warmup_steps": 200},
                        help="consistency-policy fine-tuning with Cal-QL offline, then BC + Q online (ConRFT); "
                             "needs --base"),
}


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def names() -> list[str]:
    return sorted(n for n, e in _ALGOS.items() if _importable(e.cls))


def _importable(cls) -> bool:
    """Entries whose module is not in this checkout are not offered (e.g. a method still being built)."""
    if not isinstance(cls, str):
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(cls.partition(":")[0]) is not None
    except (ImportError, ValueError):
        return False


def register(name: str, entry: AlgoEntry) -> None:
    _ALGOS[name] = entry


def unregister(name: str) -> None:
    _ALGOS.pop(name, None)


def entry(name: str) -> AlgoEntry:
    if name not in _ALGOS:
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownAlgorithmError(f"unknown algo {name!r}{hint}; known: {', '.join(names())}")
    e = _ALGOS[name]
    return AlgoEntry(e.cls, copy.deepcopy(e.agent), copy.deepcopy(e.train), e.help)


def algorithm_class(name: str):
    cls = _ALGOS[name].cls if name in _ALGOS else entry(name).cls
    if not isinstance(cls, str):
        return cls
    module, _, attr = cls.partition(":")
    return getattr(importlib.import_module(module), attr)
