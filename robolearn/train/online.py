"""Single-process off-policy RL: act in the env, store transitions, update the algorithm, evaluate, checkpoint.

The loop knows algorithms only through the contract in ``rl/algorithm.py`` and builds them from the
registry, so a new method trains here unchanged. Determinism for resume: episode k is reset with seed
``seed * 1_000_003 + k``, warm-up actions come from a saved numpy Generator, and the algorithm and buffers
carry their own RNG states. Checkpoints are taken at episode ends, so a run killed with SIGKILL and
resumed with ``--resume`` continues the same curve.

Steps: every count the loop reports or schedules by (``train.steps``, warm-up, intervals, the scalar log's
step column, checkpoint names, ``latest.json``, the progress bar) is in env steps, the physics control steps
of the underlying env = agent steps x its action repeat (``env.unwrapped.action_repeat``, 1 when it has
none). Agent steps (one stored transition, ``utd_ratio`` updates each) are counted next to them, so a
dm_control run at repeat 8 and a sim run share one axis and ``--steps 100000`` means the benchmark's 100k.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from robolearn.config_io import to_dict
from robolearn.data.mixer import Mixer
from robolearn.data.replay import ObsSpec, ReplayBuffer
from robolearn.rl import registry
from robolearn.rl.algorithm import AlgoSpec, Algorithm
from robolearn.train import rl_checkpoint
from robolearn.train.evaluate import rollout
from robolearn.train.logging import ScalarLogger
from robolearn.train.rl_config import RunConfig, comparable

INTERVENED = "intervened"
STEP_UNIT = "env"  # state.json marker: checkpoints without it counted agent steps


class CheckpointMismatch(ValueError):
    """A checkpoint that loads but belongs to another run (env, seed, algo, config, step unit): falling
    back to an older checkpoint of the same run would mismatch the same way, so resume stops here."""


def action_repeat_of(env: Any) -> int:
    """Physics control steps per agent step of ``env`` (its ``action_repeat``; 1 when it has none)."""
    repeat = getattr(getattr(env, "unwrapped", env), "action_repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, (int, np.integer)) or repeat < 1:
        raise ValueError(f"env action_repeat must be an int >= 1, got {repeat!r}")
    return int(repeat)


def crossed(before: int, after: int, every: int) -> bool:
    """Whether a multiple of ``every`` lies in (before, after]: an interval boundary passed this agent step
    (with action repeat k an agent step advances k env steps, so ``after % every == 0`` may never hold)."""
    return after // every > before // every


def to_device(batch: Any, device: torch.device) -> Any:
    """Move a (nested) batch of tensors to ``device`` (no copy when already there)."""
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if torch.is_tensor(batch) else batch


def buffer_fields(algo: Algorithm, action_dim: int) -> dict[str, tuple[int, ...]]:
    """The algorithm's declared extra fields (``"action"`` in a shape = the action dimension) + the
    intervention flag every run records."""
    fields = {INTERVENED: ()}
    for name, shape in algo.extra_fields.items():
        fields[name] = tuple(action_dim if d == "action" else int(d) for d in shape)
    return fields


class OnlineTrainer:
    def __init__(self, cfg: RunConfig, env_name: str, out_dir: str | Path, demos: str | Path | None = None,
                 seed: int = 0, env_factory: Callable[..., Any] | None = None, device: str | torch.device = "cpu",
                 **algo_kwargs: Any):
        self.cfg, self.env_name, self.seed = cfg, env_name, int(seed)
        self.out = Path(out_dir)
        self.demos_path = str(demos) if demos else None
        self.device = torch.device(device)
        self.algo_kwargs = dict(algo_kwargs)
        if cfg.train.torch_threads:
            torch.set_num_threads(cfg.train.torch_threads)
        if env_factory is None:
            import robolearn

            env_factory = robolearn.make
        self.env_kwargs = cfg.train.env_kwargs(env_name)  # the recipe's per-env defaults < env_overrides
        self.env = env_factory(env_name, **self.env_kwargs)
        self.eval_env = env_factory(env_name, **self.env_kwargs)
        self.action_repeat = action_repeat_of(self.env)
        spec = ObsSpec.from_space(self.env.observation_space)
        self.action_dim = int(self.env.action_space.shape[0])
        algo_cls = registry.algorithm_class(cfg.algo)
        kwargs = dict(algo_kwargs)
        if isinstance(kwargs.get("base"), (str, Path)):  # a BC run / checkpoint: loaded here, not in rl/
            from robolearn.train.checkpoint import check_env, load_policy

            base = load_policy(kwargs["base"], device=self.device)
            check_env(base, env_name, bool(kwargs.pop("allow_env_mismatch", False)))
            kwargs["base"] = base
        self.algo: Algorithm = algo_cls(cfg.agent, AlgoSpec(spec.state_dim, self.action_dim, spec.images),
                                        device=self.device, seed=self.seed, **kwargs)
        fields = buffer_fields(self.algo, self.action_dim)
        # State-only buffers take the configured capacity (untouched pages cost no memory), so a resumed
        # run may raise --steps; frame buffers are sized to the run (<= 2 obs slots per agent step).
        cap = cfg.train.buffer_capacity
        if spec.images:
            cap = min(cap, self.agent_steps_for(cfg.train.steps) * 2 + 16)
        self.online = ReplayBuffer(cap, spec, self.action_dim, seed=self.seed + 2, extra_fields=fields,
                                   mc_discount=cfg.agent.discount)
        self.demo = None
        if self.demos_path:
            from robolearn.data.demo_buffer import DemoBuffer

            self.demo = DemoBuffer.from_store(self.demos_path, spec, self.action_dim,
                                              extra_capacity=cfg.train.demo_extra_capacity, seed=self.seed + 3,
                                              reward_bias=cfg.train.reward_bias, extra_fields=fields,
                                              mc_discount=cfg.agent.discount)
        self.algo.prepare(self.demo)
        self.windows = self.algo.batch_windows()
        self.mixer = Mixer(self.online, self.demo, cfg.train.demo_fraction if self.demo is not None else 0.0)
        self.rng = np.random.default_rng(self.seed + 4)  # warm-up actions
        self.env_step = 0    # physics control steps (the unit of train.steps and of every log/checkpoint)
        self.agent_step = 0  # actions taken = stored transitions = env_step / action_repeat
        self.episode = 0
        self.critic_updates = 0
        self._update_metrics: dict[str, float] = {}  # the latest value of every update metric (see _update)
        self.offline_updates = 0
        self.recent_returns: list[float] = []
        self.recent_success: list[float] = []
        self.last_ckpt_step = 0
        self.last_ckpt: Path | None = None
        self.last_eval: dict[str, float] = {}
        self.last_eval_step: int | None = None
        self.interventions = 0

    def agent_steps_for(self, env_steps: int) -> int:
        """Agent steps a run of ``env_steps`` env steps takes (the last agent step may overshoot)."""
        return -(-int(env_steps) // self.action_repeat)

    def plan(self) -> dict[str, Any]:
        """What ``run`` will do, in both units: for the command's header line and the summary."""
        tc = self.cfg.train
        return {"env": self.env_name, "algo": self.cfg.algo, "demos": self.demos_path,
                "base": str(self.algo_kwargs["base"]) if "base" in self.algo_kwargs else None,
                "steps": tc.steps, "agent_steps": self.agent_steps_for(tc.steps),
                "action_repeat": self.action_repeat, "env_kwargs": dict(self.env_kwargs),
                "eval_every": tc.interval("eval_every"), "checkpoint_every": tc.interval("checkpoint_every"),
                "log_every": tc.interval("log_every"), "out": str(self.out)}

    @property
    def agent(self) -> Algorithm:  # the name earlier versions used
        return self.algo

    # State ---------------------------------------------------------------------------------------------
    def policy_meta(self) -> dict[str, Any]:
        return {"env": self.env_name, "env_kwargs": dict(self.env_kwargs), "trainer": "rl",
                "algo": self.cfg.algo, "env_step": self.env_step, "agent_step": self.agent_step,
                "action_repeat": self.action_repeat, "seed": self.seed, "demos": self.demos_path,
                **{k: str(v) for k, v in self.algo_kwargs.items()}}

    def save_checkpoint(self) -> Path:
        tensors = self.algo.state_tensors()
        tensors["torch_rng"] = torch.get_rng_state()
        buffers = {"online.npz": self.online}
        if self.demo is not None:
            buffers["demo.npz"] = self.demo
        state = {"step_unit": STEP_UNIT, "env_step": self.env_step, "agent_step": self.agent_step,
                 "action_repeat": self.action_repeat, "env_kwargs": dict(self.env_kwargs),
                 "last_eval_step": self.last_eval_step, "last_eval": self.last_eval,
                 "episode": self.episode, "critic_updates": self.critic_updates,
                 "offline_updates": self.offline_updates,
                 "recent_returns": self.recent_returns, "recent_success": self.recent_success,
                 "interventions": self.interventions, "rng": self.rng.bit_generator.state, "env": self.env_name,
                 "seed": self.seed, "demos": self.demos_path}
        final = rl_checkpoint.write_checkpoint(
            self.out, f"step_{self.env_step:09d}", tensors=tensors, policy=self.algo.policy(),
            policy_meta=self.policy_meta(), buffers=buffers, state=state,
            run_config={"env": self.env_name, **to_dict(self.cfg), "policy": self.algo.describe()})
        self.last_ckpt_step = self.env_step
        self.last_ckpt = final
        return final

    def load_checkpoint(self, ck: Path) -> None:
        state, saved, tensors = rl_checkpoint.read_state(ck)
        if state["env"] != self.env_name or state["seed"] != self.seed:
            raise CheckpointMismatch(f"checkpoint {ck} is for env {state['env']!r} seed {state['seed']}, "
                                     f"not {self.env_name!r} seed {self.seed}")
        if saved.get("algo") != self.cfg.algo:
            raise CheckpointMismatch(f"checkpoint {ck} was trained with algo {saved.get('algo')!r}, "
                                     f"not {self.cfg.algo!r}")
        # before the step unit was env steps, checkpoints counted agent steps and the env was built from
        # train.env_overrides alone; at action repeat 1 both units are the same number
        old_format = state.get("step_unit") != STEP_UNIT
        saved_repeat = int(state["action_repeat"]) if not old_format else \
            int(((saved.get("train") or {}).get("env_overrides") or {}).get("action_repeat", 1))
        if saved_repeat != self.action_repeat:
            raise CheckpointMismatch(
                f"checkpoint {ck} was trained with action_repeat {saved_repeat}, this run uses {self.action_repeat} "
                f"(env overrides {self.env_kwargs}); resume with --env-set action_repeat={saved_repeat}")
        if old_format and saved_repeat != 1:
            raise CheckpointMismatch(
                f"checkpoint {ck} was written by an older robolearn that counted agent steps (action_repeat "
                f"{saved_repeat}), and its run's --steps, intervals and scalars.csv are in agent steps; this version "
                "counts env steps (agent steps x action_repeat), so it cannot continue that run: start a new run "
                "(another --out), or evaluate this one with `robolearn eval --checkpoint`")
        # keys added to the config after the checkpoint was written count as their defaults
        defaults = json.loads(json.dumps(to_dict(type(self.cfg.agent)())))
        saved_agent = comparable({**defaults, **saved.get("agent", {})})
        current = comparable(json.loads(json.dumps(to_dict(self.cfg.agent))))
        if saved_agent != current:
            diff = sorted(k for k in set(saved_agent) | set(current) if saved_agent.get(k) != current.get(k))
            raise CheckpointMismatch(f"checkpoint {ck} was trained with a different agent config (differs in {diff}); "
                                     "resume with the same recipe and --set flags")
        torch.set_rng_state(tensors.pop("torch_rng"))
        self.algo.load_state_tensors(tensors)
        self.online.load(ck / "online.npz")
        if self.demo is not None and (ck / "demo.npz").is_file():
            self.demo.load(ck / "demo.npz")
        self.env_step, self.episode = state["env_step"], state["episode"]
        self.agent_step = int(state.get("agent_step", self.env_step))  # old format: repeat 1, same count
        self.last_eval_step = state.get("last_eval_step")
        self.last_eval = dict(state.get("last_eval") or {})
        self.critic_updates = state["critic_updates"]
        self.offline_updates = state.get("offline_updates", 0)
        self.recent_returns, self.recent_success = state["recent_returns"], state["recent_success"]
        self.rng.bit_generator.state = state["rng"]
        self.interventions = state.get("interventions", 0)
        self.last_ckpt_step = self.env_step
        self.last_ckpt = ck

    # Loop ----------------------------------------------------------------------------------------------
    def evaluate(self) -> dict[str, float]:
        """Deterministic episodes; also the critic's mean Q on the visited (s, a) next to the discounted
        return that actually followed (with the run's reward bias): over-estimation shows as q > mc."""
        # the exported policy, as eval / serve run it: its own state (histories, chunk queues), so an
        # evaluation in the middle of a training episode leaves the algorithm's acting state alone
        acting = self.algo.policy().to(self.device).eval()
        results, steps = [], []
        for k in range(self.cfg.train.eval_episodes):
            ep: list = []
            results.append(rollout(acting, self.eval_env, 10**9 + k, {}, steps=ep))
            steps.append(ep)
        out = {"eval/return": float(np.mean([r["return"] for r in results])),
               "eval/success_rate": float(np.mean([r["success"] for r in results])),
               "eval/episode_length": float(np.mean([r["length"] for r in results]))}
        out.update(self._q_vs_return(steps))
        return out

    def _q_vs_return(self, episodes: list) -> dict[str, float]:
        from robolearn.data.replay import discounted_returns

        rows = [s for ep in episodes for s in ep]
        if not rows:
            return {}
        state = torch.from_numpy(np.stack([np.asarray(o["state"], np.float32) for o, _, _ in rows]))
        obs: dict = {"state": state}
        if self.online.spec.images:
            obs["images"] = {cam: torch.from_numpy(np.stack([np.asarray(o["images"][cam]) for o, _, _ in rows]))
                             for cam in self.online.spec.images}
        action = torch.from_numpy(np.stack([a for _, a, _ in rows]))
        q = self.algo.q_estimate(to_device(obs, self.device), action.to(self.device))
        if q is None:
            return {}
        bias, gamma = self.cfg.train.reward_bias, self.cfg.agent.discount
        mc = np.concatenate([discounted_returns(np.array([r for _, _, r in ep], np.float32) + bias, gamma)
                             for ep in episodes if ep])
        return {"eval/q_mean": float(q.mean()), "eval/mc_return": float(mc.mean()),
                "eval/q_overestimation": float(q.mean()) - float(mc.mean())}

    def _add_intervention(self, obs, action, reward, next_obs, terminated, extras) -> None:
        """HIL-SERL: interventions also go to the demo buffer, so the demo share of batches grows.

        Each intervened step is stored as its own one-step segment (bootstrapping from next_obs unless
        terminal), which keeps 1-step targets exact without tracking where a takeover ends.
        """
        if self.demo is None:
            return
        self.demo.start_episode(obs)
        self.demo.add(action, reward + self.cfg.train.reward_bias, next_obs, terminated, True, extras)
        self.interventions += 1

    def _sample(self) -> dict:
        a = self.cfg.agent
        return to_device(self.mixer.sample(self.cfg.train.batch_size, a.discount, a.n_step, self.windows), self.device)

    def _update(self) -> dict[str, float]:
        tc, metrics = self.cfg.train, self._update_metrics
        for _ in range(tc.utd_ratio):
            batch = self._sample()
            self.critic_updates += 1
            # merged across calls, so an actor step's metrics survive the critic-only updates after it: with
            # actor_every 2 and one update per env step, a log step could otherwise always land on a
            # critic-only update and the actor's losses would never be logged
            metrics = {**metrics, **(self.algo.update(batch, update_actor=self.critic_updates % tc.actor_every == 0)
                                     or {})}
        self._update_metrics = metrics
        return metrics

    def _offline_phase(self, logger, progress: bool) -> None:
        """Demos-only updates before the env loop, for algorithms that have such a phase."""
        tc = self.cfg.train
        if not (self.algo.has_offline_phase and tc.offline_steps and self.demo is not None):
            return
        from tqdm import tqdm

        a = self.cfg.agent
        bar = tqdm(total=tc.offline_steps, initial=self.offline_updates, disable=not progress, unit="upd",
                   desc=f"{self.cfg.algo} offline", dynamic_ncols=True)
        try:
            while self.offline_updates < tc.offline_steps:
                batch = to_device(self.demo.sample(tc.batch_size, a.discount, a.n_step, self.windows), self.device)
                batch["is_demo"] = torch.ones(tc.batch_size, dtype=torch.bool, device=self.device)
                metrics = self.algo.offline_update(batch)
                self.offline_updates += 1
                bar.update(1)
                # the offline curve's x axis is its update count (tags offline/*), not env steps
                if self.offline_updates % max(1, min(tc.interval("log_every"), tc.offline_steps // 20)) == 0 \
                        or self.offline_updates == tc.offline_steps:
                    logger.log(self.offline_updates, {f"offline/{k}": v for k, v in metrics.items()})
        finally:
            bar.close()

    def run(self, resume: bool = False, progress: bool = True, stop_at: int | None = None) -> dict:
        """Train until ``train.steps`` env steps (or ``stop_at`` env steps, for tests); returns the summary
        (see ``summary``)."""
        from tqdm import tqdm

        tc = self.cfg.train
        log_every, eval_every = tc.interval("log_every"), tc.interval("eval_every")
        ckpt_every = tc.interval("checkpoint_every")
        found = rl_checkpoint.candidates(self.out)
        ck = found[0] if found else None
        if ck is not None and not resume:
            raise ValueError(f"{self.out} already holds a run (checkpoint {ck.name}); pass --resume or pick --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and ck is not None:
            ck = self._load_first_good(found)
        # a resume keeps the rows up to its checkpoint; a fresh start (or one with nothing to resume)
        # drops whatever an earlier, uncheckpointed attempt logged
        resumed = resume and ck is not None
        logger = ScalarLogger(self.out, purge_after=self.env_step if resumed else -1,
                              purge_after_by_prefix={"offline/": self.offline_updates if resumed else -1})
        self._offline_phase(logger, progress)
        end = min(tc.steps, stop_at) if stop_at is not None else tc.steps
        bar = tqdm(total=tc.steps, initial=min(self.env_step, tc.steps), disable=not progress, unit="env step",
                   dynamic_ncols=True, desc=f"{self.cfg.algo} {self.env_name}")
        metrics: dict[str, float] = {}
        t_mark, upd_mark = time.perf_counter(), self.algo.num_updates
        announced = False
        try:
            while self.env_step < end:
                obs, _ = self.env.reset(seed=self.seed * 1_000_003 + self.episode)
                self.algo.reset()
                self.online.start_episode(obs)
                done, ep_ret, ep_succ, ep_len = False, 0.0, False, 0
                while not done and self.env_step < end:
                    if self.env_step < tc.warmup_steps and tc.random_warmup:
                        action = self.rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
                        extras = {}
                    else:
                        action = self.algo.act(obs)
                        extras = dict(self.algo.step_extras())
                    next_obs, reward, term, trunc, info = self.env.step(action)
                    executed = info.get("intervene_action")
                    if executed is not None:  # a person took over: learn from what was executed
                        action = np.asarray(executed, np.float32)
                        extras[INTERVENED] = np.float32(1.0)
                        self._add_intervention(obs, action, reward, next_obs, term, extras)
                    self.online.add(action, reward + tc.reward_bias, next_obs, term, trunc, extras)
                    before = self.env_step
                    self.agent_step += 1
                    self.env_step += self.action_repeat
                    ep_ret += reward
                    ep_len += 1
                    ep_succ = ep_succ or bool(info.get("success", False))
                    done = term or trunc
                    obs = next_obs
                    if self.env_step >= tc.warmup_steps:
                        if not announced and self.algo_backend() == "compile" and progress:
                            bar.write("compiling the critic (once per process, ~30-60 s)...")
                        announced = True
                        metrics = self._update()
                    bar.update(min(self.env_step, tc.steps) - bar.n)
                    if crossed(before, self.env_step, log_every) and metrics:
                        now = time.perf_counter()
                        ups = (self.algo.num_updates - upd_mark) / max(now - t_mark, 1e-9)
                        t_mark, upd_mark = now, self.algo.num_updates
                        logger.log(self.env_step, {**{f"train/{k}": v for k, v in metrics.items()},
                                                   "perf/updates_per_s": ups})
                        bar.set_postfix(self._postfix(ups), refresh=False)
                    if tc.eval_episodes and crossed(before, self.env_step, eval_every):
                        self._evaluate_and_log(logger)
                        bar.set_postfix(self._postfix(None), refresh=False)
                if done:
                    self.episode += 1
                    self.recent_returns = (self.recent_returns + [ep_ret])[-20:]
                    self.recent_success = (self.recent_success + [float(ep_succ)])[-20:]
                    logger.log(self.env_step, {"train/episode_return": ep_ret, "train/episode_success": float(ep_succ),
                                               "train/episode_length": ep_len,
                                               "train/success_rate_20": float(np.mean(self.recent_success))})
                    if self.env_step - self.last_ckpt_step >= ckpt_every:
                        self.save_checkpoint()
            # the summary's "final eval" is at the final step, also when steps is no multiple of eval_every
            if tc.eval_episodes and self.env_step >= tc.steps and self.last_eval_step != self.env_step:
                self._evaluate_and_log(logger)
            if self.env_step > self.last_ckpt_step or not rl_checkpoint.candidates(self.out):
                self.save_checkpoint()
        finally:
            bar.close()
            logger.close()
        return self.summary()

    def _evaluate_and_log(self, logger: ScalarLogger) -> None:
        self.last_eval = self.evaluate()
        self.last_eval_step = self.env_step
        logger.log(self.env_step, self.last_eval)

    def summary(self) -> dict[str, Any]:
        """Where the run stands, in both step units, and where its files are (JSON-ready).

        The legacy keys (``env_step``, ``episodes``, ``updates``, ``recent_return``, ``eval/*``) stay."""
        ck = self.last_ckpt
        return {"out": str(self.out), "env": self.env_name, "algo": self.cfg.algo,
                "env_step": self.env_step, "agent_step": self.agent_step, "action_repeat": self.action_repeat,
                "steps": self.cfg.train.steps, "episodes": self.episode, "updates": self.algo.num_updates,
                "recent_return": float(np.mean(self.recent_returns)) if self.recent_returns else None,
                "recent_success": float(np.mean(self.recent_success)) if self.recent_success else None,
                "checkpoint": str(ck) if ck is not None else None,
                "policy": str(ck / rl_checkpoint.POLICY_DIR) if ck is not None else None,
                "scalars": str(self.out / "scalars.csv"), "eval_step": self.last_eval_step,
                **self.last_eval}

    def algo_backend(self) -> str | None:
        critic = getattr(self.algo, "critic", None)
        return getattr(critic, "backend", None)

    def _load_first_good(self, found: list[Path]) -> Path:
        """Resume from the newest step folder that loads; a damaged one is named and skipped."""
        import sys

        errors = []
        for ck in found:
            try:
                self.load_checkpoint(ck)
            except Exception as exc:  # noqa: BLE001 - unreadable safetensors, truncated npz, bad JSON...
                if isinstance(exc, CheckpointMismatch):
                    raise  # a mismatch, not damage: the fallback would mismatch too
                errors.append(f"{ck.name}: {type(exc).__name__}: {exc}")
                print(f"robolearn: checkpoint {ck} is damaged ({type(exc).__name__}: {exc}); "
                      "falling back to the previous one", file=sys.stderr)
                continue
            return ck
        raise ValueError(f"no loadable checkpoint in {self.out / 'checkpoints'}: " + "; ".join(errors))

    def _postfix(self, ups) -> dict:
        out = {}
        if self.action_repeat != 1:  # the bar counts env steps; name the agent steps next to them
            out["agent"] = f"{self.agent_step}"
        out.update({"ret": f"{self.recent_returns[-1]:.1f}" if self.recent_returns else "-",
                    "succ": f"{np.mean(self.recent_success):.2f}" if self.recent_success else "-"})
        if ups is not None:
            out["upd/s"] = f"{ups:.0f}"
        if self.last_eval:
            out["eval"] = f"{self.last_eval['eval/return']:.1f}"
        return out
