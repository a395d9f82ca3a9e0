"""Single-process off-policy RL: act in the env, store transitions, update the agent, evaluate, checkpoint.

Determinism for resume: episode k is reset with seed ``seed * 1_000_003 + k``, warm-up actions come from
a saved numpy Generator, and the agent and buffers carry their own RNG states. Checkpoints are taken at
episode ends, so a run killed with SIGKILL and resumed with ``--resume`` continues the same curve.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robolearn.config_io import from_dict, to_dict
from robolearn.data.mixer import Mixer
from robolearn.data.replay import ObsSpec, ReplayBuffer
from robolearn.rl.sac import SACAgent, SACConfig
from robolearn.train.logging import ScalarLogger


@dataclass
class TrainConfig:
    steps: int = 20_000
    warmup_steps: int = 1_000          # env steps before the first update
    random_warmup: bool = True         # uniform random actions during warm-up (else the initial policy)
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
        for name in ("steps", "eval_every", "checkpoint_every", "log_every", "buffer_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "eval_episodes", "demo_extra_capacity", "torch_threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"train.demo_fraction must be in [0, 1], got {self.demo_fraction}")


@dataclass
class RunConfig:
    algo: str = "rlpd"
    agent: SACConfig = field(default_factory=SACConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# Algorithm registry: name -> preset overrides (a recipe YAML is merged on top) ---------------------------
ALGOS: dict[str, dict[str, Any]] = {
    # RLPD / SERL: 10-critic LayerNorm ensemble, min over a random pair, no entropy backup, 50/50 demos.
    "rlpd": {"agent": {"num_critics": 10, "critic_subset": 2, "backup_entropy": False, "init_temperature": 1e-2,
                       "target_entropy_scale": 0.5, "discount": 0.97},
             "train": {"demo_fraction": 0.5}},
    # Plain SAC: twin critics, entropy in the backup, target entropy -|A|, no demos.
    "sac": {"agent": {"num_critics": 2, "critic_subset": 2, "backup_entropy": True, "init_temperature": 0.1,
                      "target_entropy_scale": 1.0, "discount": 0.99},
            "train": {"demo_fraction": 0.0, "warmup_steps": 5_000}},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(algo: str, recipe: dict | None = None, overrides: dict | None = None) -> RunConfig:
    if algo not in ALGOS:
        raise KeyError(f"unknown algo {algo!r}; known: {', '.join(sorted(ALGOS))}")
    data = _merge({"algo": algo, **ALGOS[algo]}, recipe or {})
    data = _merge(data, overrides or {})
    if data.get("algo", algo) != algo:
        raise ValueError(f"recipe is for algo {data['algo']!r} but --algo is {algo!r}")
    data["algo"] = algo
    return from_dict(RunConfig, data)


# Checkpoints -------------------------------------------------------------------------------------------
LATEST = "latest.json"


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def latest_checkpoint(run_dir: Path) -> Path | None:
    p = Path(run_dir) / LATEST
    if not p.is_file():
        return None
    name = json.loads(p.read_text())["checkpoint"]
    ck = Path(run_dir) / "checkpoints" / name
    if not (ck / "train_state.safetensors").is_file():
        raise ValueError(f"{p} points to {ck}, which is incomplete")
    return ck


class OnlineTrainer:
    def __init__(self, cfg: RunConfig, env_name: str, out_dir: str | Path, demos: str | Path | None = None,
                 seed: int = 0, env_factory: Callable[..., Any] | None = None):
        self.cfg, self.env_name, self.seed = cfg, env_name, int(seed)
        self.out = Path(out_dir)
        self.demos_path = str(demos) if demos else None
        if cfg.train.torch_threads:
            torch.set_num_threads(cfg.train.torch_threads)
        if env_factory is None:
            import robolearn

            env_factory = robolearn.make
        self.env = env_factory(env_name, **cfg.train.env_overrides)
        self.eval_env = env_factory(env_name, **cfg.train.env_overrides)
        spec = ObsSpec.from_space(self.env.observation_space)
        self.action_dim = int(self.env.action_space.shape[0])
        self.agent = SACAgent(cfg.agent, spec.state_dim, self.action_dim, spec.images, seed=self.seed)
        # State-only buffers take the configured capacity (untouched pages cost no memory), so a resumed
        # run may raise --steps; frame buffers are sized to the run (<= 2 obs slots per env step).
        cap = cfg.train.buffer_capacity
        if spec.images:
            cap = min(cap, cfg.train.steps * 2 + 16)
        self.online = ReplayBuffer(cap, spec, self.action_dim, seed=self.seed + 2)
        self.demo = None
        if self.demos_path:
            from robolearn.data.demo_buffer import DemoBuffer

            self.demo = DemoBuffer.from_store(self.demos_path, spec, self.action_dim,
                                              extra_capacity=cfg.train.demo_extra_capacity, seed=self.seed + 3,
                                              reward_bias=cfg.train.reward_bias)
        if self.demo is not None and cfg.agent.normalize_state:
            # raw states mix metres, quaternions and gripper openings; a grasp needs ~1 cm resolution
            self.agent.encoder.set_state_stats(torch.from_numpy(self.demo.state[self.demo.episode >= 0]))
        self.mixer = Mixer(self.online, self.demo, cfg.train.demo_fraction if self.demo is not None else 0.0)
        self.rng = np.random.default_rng(self.seed + 4)  # warm-up actions
        self.env_step = 0
        self.episode = 0
        self.critic_updates = 0
        self.recent_returns: list[float] = []
        self.recent_success: list[float] = []
        self.last_ckpt_step = 0
        self.interventions = 0

    # State ---------------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        from safetensors.torch import save_file

        ck_root = self.out / "checkpoints"
        ck_root.mkdir(parents=True, exist_ok=True)
        name = f"step_{self.env_step:09d}"
        final = ck_root / name
        tmp = ck_root / (name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        tensors = self.agent.state_tensors()
        tensors["torch_rng"] = torch.get_rng_state()
        save_file(tensors, str(tmp / "train_state.safetensors"))
        save_file(self.agent.policy_tensors(), str(tmp / "model.safetensors"))
        self.online.save(tmp / "online.npz")
        if self.demo is not None:
            self.demo.save(tmp / "demo.npz")
        state = {"env_step": self.env_step, "episode": self.episode, "critic_updates": self.critic_updates,
                 "recent_returns": self.recent_returns, "recent_success": self.recent_success,
                 "interventions": self.interventions, "rng": self.rng.bit_generator.state, "env": self.env_name, "seed": self.seed,
                 "demos": self.demos_path}
        (tmp / "state.json").write_text(json.dumps(state))
        (tmp / "config.json").write_text(json.dumps({"env": self.env_name, **to_dict(self.cfg),
                                                     "policy": json.loads(self.agent.describe())}, indent=2))
        for f in tmp.iterdir():  # make the files durable before the pointer flips
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _atomic_write_text(self.out / LATEST, json.dumps({"checkpoint": name, "env_step": self.env_step}))
        for old in ck_root.iterdir():
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        self.last_ckpt_step = self.env_step
        return final

    def load_checkpoint(self, ck: Path) -> None:
        from safetensors.torch import load_file

        state = json.loads((ck / "state.json").read_text())
        if state["env"] != self.env_name or state["seed"] != self.seed:
            raise ValueError(f"checkpoint {ck} is for env {state['env']!r} seed {state['seed']}, "
                             f"not {self.env_name!r} seed {self.seed}")
        saved = json.loads((ck / "config.json").read_text())
        # keys added to SACConfig after the checkpoint was written count as their defaults
        saved_agent = {**json.loads(json.dumps(to_dict(SACConfig()))), **saved.get("agent", {})}
        current = json.loads(json.dumps(to_dict(self.cfg.agent)))
        for same_math in ("compile",):  # how the update runs, not what it computes: may change on resume
            saved_agent.pop(same_math, None)
            current.pop(same_math, None)
        if saved_agent != current:
            raise ValueError(f"checkpoint {ck} was trained with a different agent config; resume with the same "
                             f"recipe and --set flags (saved: {saved_agent})")
        tensors = load_file(str(ck / "train_state.safetensors"))
        torch.set_rng_state(tensors.pop("torch_rng"))
        self.agent.load_state_tensors(tensors)
        self.online.load(ck / "online.npz")
        if self.demo is not None and (ck / "demo.npz").is_file():
            self.demo.load(ck / "demo.npz")
        self.env_step, self.episode = state["env_step"], state["episode"]
        self.critic_updates = state["critic_updates"]
        self.recent_returns, self.recent_success = state["recent_returns"], state["recent_success"]
        self.rng.bit_generator.state = state["rng"]
        self.interventions = state.get("interventions", 0)
        self.last_ckpt_step = self.env_step

    # Loop ----------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        returns, successes, lengths = [], [], []
        for k in range(self.cfg.train.eval_episodes):
            obs, _ = self.eval_env.reset(seed=10**9 + k)
            done, ret, succ, n = False, 0.0, False, 0
            while not done:
                obs, r, term, trunc, info = self.eval_env.step(self.agent.act(obs, deterministic=True))
                ret += r
                n += 1
                succ = succ or bool(info.get("success", False))
                done = term or trunc
            returns.append(ret)
            successes.append(float(succ))
            lengths.append(n)
        return {"eval/return": float(np.mean(returns)), "eval/success_rate": float(np.mean(successes)),
                "eval/episode_length": float(np.mean(lengths))}

    def _add_intervention(self, obs, action, reward, next_obs, terminated) -> None:
        """HIL-SERL: interventions also go to the demo buffer, so the demo share of batches grows.

        Each intervened step is stored as its own one-step segment (bootstrapping from next_obs unless
        terminal), which keeps 1-step targets exact without tracking where a takeover ends.
        """
        if self.demo is None:
            return
        self.demo.start_episode(obs)
        self.demo.add(action, reward + self.cfg.train.reward_bias, next_obs, terminated, True)
        self.interventions += 1

    def _update(self) -> dict[str, float]:
        a, metrics = self.cfg.agent, {}
        for _ in range(a.utd_ratio):
            batch = self.mixer.sample(a.batch_size, a.discount, a.n_step)
            self.critic_updates += 1
            metrics = self.agent.update(batch, update_actor=self.critic_updates % a.actor_every == 0) or metrics
        return metrics

    def run(self, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
        """Train until ``train.steps`` env steps (or ``stop_at``, for tests); returns a summary."""
        from tqdm import tqdm

        tc = self.cfg.train
        ck = latest_checkpoint(self.out)
        if ck is not None and not resume:
            raise ValueError(f"{self.out} already holds a run (checkpoint {ck.name}); pass --resume or pick --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and ck is not None:
            self.load_checkpoint(ck)
        logger = ScalarLogger(self.out, purge_after=self.env_step if resume else None)
        end = min(tc.steps, stop_at) if stop_at is not None else tc.steps
        bar = tqdm(total=tc.steps, initial=self.env_step, disable=not progress, unit="step", dynamic_ncols=True,
                   desc=f"{self.cfg.algo} {self.env_name}")
        metrics: dict[str, float] = {}
        last_eval: dict[str, float] = {}
        t_mark, upd_mark = time.perf_counter(), self.agent.num_updates
        announced = False
        try:
            while self.env_step < end:
                obs, _ = self.env.reset(seed=self.seed * 1_000_003 + self.episode)
                self.online.start_episode(obs)
                done, ep_ret, ep_succ, ep_len = False, 0.0, False, 0
                while not done and self.env_step < end:
                    if self.env_step < tc.warmup_steps and tc.random_warmup:
                        action = self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
                    else:
                        action = self.agent.act(obs)
                    next_obs, reward, term, trunc, info = self.env.step(action)
                    executed = info.get("intervene_action")
                    if executed is not None:  # a person took over: learn from what was executed
                        action = np.asarray(executed, np.float32)
                        self._add_intervention(obs, action, reward, next_obs, term)
                    self.online.add(action, reward + tc.reward_bias, next_obs, term, trunc)
                    self.env_step += 1
                    ep_ret += reward
                    ep_len += 1
                    ep_succ = ep_succ or bool(info.get("success", False))
                    done = term or trunc
                    obs = next_obs
                    if self.env_step >= tc.warmup_steps:
                        fused = getattr(self.agent, "_fused", None)
                        if not announced and fused is not None and not fused.native and progress:
                            bar.write("compiling the learner update (once per process, ~30-60 s)...")
                        announced = True
                        metrics = self._update()
                    bar.update(1)
                    if self.env_step % tc.log_every == 0 and metrics:
                        now = time.perf_counter()
                        ups = (self.agent.num_updates - upd_mark) / max(now - t_mark, 1e-9)
                        t_mark, upd_mark = now, self.agent.num_updates
                        logger.log(self.env_step, {**{f"train/{k}": v for k, v in metrics.items()},
                                                   "perf/updates_per_s": ups})
                        bar.set_postfix(self._postfix(ups, last_eval), refresh=False)
                    if tc.eval_episodes and self.env_step % tc.eval_every == 0:
                        last_eval = self.evaluate()
                        logger.log(self.env_step, last_eval)
                        bar.set_postfix(self._postfix(None, last_eval), refresh=False)
                if done:
                    self.episode += 1
                    self.recent_returns = (self.recent_returns + [ep_ret])[-20:]
                    self.recent_success = (self.recent_success + [float(ep_succ)])[-20:]
                    logger.log(self.env_step, {"train/episode_return": ep_ret, "train/episode_success": float(ep_succ),
                                               "train/episode_length": ep_len,
                                               "train/success_rate_20": float(np.mean(self.recent_success))})
                    if self.env_step - self.last_ckpt_step >= tc.checkpoint_every:
                        self.save_checkpoint()
            if self.env_step > self.last_ckpt_step or latest_checkpoint(self.out) is None:
                self.save_checkpoint()
        finally:
            bar.close()
            logger.close()
        return {"env_step": self.env_step, "episodes": self.episode, "updates": self.agent.num_updates,
                "recent_return": float(np.mean(self.recent_returns)) if self.recent_returns else None,
                **last_eval}

    def _postfix(self, ups, last_eval) -> dict:
        out = {"ret": f"{self.recent_returns[-1]:.1f}" if self.recent_returns else "-",
               "succ": f"{np.mean(self.recent_success):.2f}" if self.recent_success else "-"}
        if ups is not None:
            out["upd/s"] = f"{ups:.0f}"
        if last_eval:
            out["eval"] = f"{last_eval['eval/return']:.1f}"
        return out
