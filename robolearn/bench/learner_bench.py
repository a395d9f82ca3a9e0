"""``robolearn bench learner``: SAC/RLPD updates per second, FLOP rate vs a measured matmul peak.

Configs run interleaved (round-robin, several rounds, medians reported) so that load changes on a
shared machine hit all of them alike: the RLPD default (10 critics) and plain SAC (2 critics) on each
requested critic backend (``eager``, ``compile``, ``native``: see rl/critic.py), the 10-critic ensemble
as a Python loop of modules, and Stable-Baselines3's SAC update at the same sizes when it is installed
(extra ``bench``). Every config is the registered algorithm's real ``update`` (rl/sac.py).
FLOPs per update are counted by ``torch.utils.flop_counter`` on a real update, not estimated.
"""
from __future__ import annotations

import os
import time

import numpy as np


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/bench/learner.json")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--state-dim", type=int, default=17)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--updates", type=int, default=20, help="updates per config per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="eager,native",
                        help="comma-separated critic backends to time: eager, compile (torch.compile; cold compile "
                             "30-60 s), native (C++ critic step, built once per machine)")
    parser.add_argument("--no-sb3", action="store_true", help="skip Stable-Baselines3 even if installed")


def matmul_peak(threads: int, n: int = 1024, reps: int = 10) -> float:
    """Best achieved fp32 GFLOP/s of an n x n matmul on this machine (the denominator of the fraction)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best / 1e9


def copy_bandwidth(threads: int, mib: int = 32, reps: int = 10) -> float:
    """Best GB/s (read + write) of a large tensor copy: the ceiling for the element-wise half of an update."""
    import torch

    src = torch.randn(mib * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        dst.copy_(src)
        best = max(best, 2 * src.numel() * 4 / (time.perf_counter() - t))
    return best / 1e9


def _batch(b: int, state_dim: int, action_dim: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return {"obs": {"state": torch.randn(b, state_dim, generator=g)},
            "next_obs": {"state": torch.randn(b, state_dim, generator=g)},
            "action": torch.rand(b, action_dim, generator=g) * 2 - 1,
            "reward": torch.randn(b, generator=g), "discount": torch.full((b,), 0.99)}


def _use_loop_critic(critic) -> None:
    """Swap the shared critic's batched ensemble for the same members as a Python loop of modules (the
    baseline the batched ensemble is measured against), with a fresh optimizer."""
    import copy

    from robolearn.rl.algorithm import adam
    from robolearn.policies.q_ensemble import LoopCritic

    critic.net = critic._fwd_net = LoopCritic(critic.net)
    critic.target = critic._fwd_target = copy.deepcopy(critic.net).requires_grad_(False)
    critic._net_params, critic._target_params = list(critic.net.parameters()), list(critic.target.parameters())
    critic.params = list(critic.encoder.parameters()) + critic._net_params
    critic.opt = adam(critic.params, critic.cfg.critic_lr, critic.cfg.fused_adam)


def _agent_runner(algo_name, cfg, state_dim, action_dim, batch, loop=False):
    from robolearn.rl import registry
    from robolearn.rl.algorithm import AlgoSpec

    agent = registry.algorithm_class(algo_name)(cfg, AlgoSpec(state_dim, action_dim), seed=0)
    if loop:
        _use_loop_critic(agent.critic)

    def step():  # RLPD schedule: actor every `actor_every` critic updates (1 here: every update)
        agent.update(batch, update_actor=True)

    return agent, step


def _flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        step()
    return float(fc.get_total_flops())


def _sb3_runner(state_dim, action_dim, batch, hidden):
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    class _Env(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        action_space = gym.spaces.Box(-1, 1, (action_dim,), np.float32)

        def reset(self, *, seed=None, options=None):
            return np.zeros(state_dim, np.float32), {}

        def step(self, a):
            return np.zeros(state_dim, np.float32), 0.0, False, False, {}

    model = SAC("MlpPolicy", _Env(), buffer_size=5000, learning_starts=0, batch_size=batch, device="cpu",
                policy_kwargs={"net_arch": [hidden, hidden]}, seed=0)
    model.set_logger(configure(None, []))
    rng = np.random.default_rng(0)
    for _ in range(2000):
        o = rng.normal(size=(1, state_dim)).astype(np.float32)
        model.replay_buffer.add(o, o, rng.uniform(-1, 1, (1, action_dim)).astype(np.float32),
                                np.zeros(1), np.zeros(1), [{}])

    def step():
        model.train(gradient_steps=1, batch_size=batch)

    return model, step


def run(args) -> int:
    import torch

    from robolearn.bench.common import machine_info, median, write_json
    from robolearn.rl.sac import SACConfig

    backends = [x.strip() for x in args.backends.split(",") if x.strip()]
    bad = sorted(set(backends) - {"eager", "compile", "native"})
    if bad or not backends:
        raise ValueError(f"--backends: unknown backend(s) {bad}; choose from eager, compile, native")
    for name in ("threads", "batch", "hidden", "updates", "rounds", "state_dim", "action_dim"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    sd, ad, b, h = args.state_dim, args.action_dim, args.batch, args.hidden
    print(f"bench learner: RLPD-10 and SAC-2 critic updates on {', '.join(['eager'] + [x for x in backends if x != 'eager'])}"
          f", batch {b}, hidden {h}x{h}, {args.rounds} rounds x {args.updates} updates, {args.threads} thread(s) "
          f"-> {args.out}", flush=True)
    batch = _batch(b, sd, ad)
    base = dict(hidden=(h, h))
    configs: dict[str, tuple] = {"rlpd_10_critics_eager": ("rlpd", SACConfig(**base, num_critics=10, backend="eager"), False),
                                 "rlpd_10_critics_loop": ("rlpd", SACConfig(**base, num_critics=10, backend="eager"), True),
                                 "sac_2_critics_eager": ("sac", SACConfig(**base, num_critics=2, backup_entropy=True,
                                                                          backend="eager"), False)}
    for be in backends:
        if be != "eager":
            configs[f"rlpd_10_critics_{be}"] = ("rlpd", SACConfig(**base, num_critics=10, backend=be), False)
            configs[f"sac_2_critics_{be}"] = ("sac", SACConfig(**base, num_critics=2, backup_entropy=True,
                                                               backend=be), False)
    runners, flops, notes = {}, {}, {}
    for name, (algo, cfg, loop) in configs.items():
        _, step = _agent_runner(algo, cfg, sd, ad, batch, loop)
        t = time.perf_counter()
        for _ in range(3):  # warm-up (includes the cold compile / operator build)
            step()
        notes[name] = {"warmup_s": round(time.perf_counter() - t, 2)}
        flops[name] = _flops(step) if cfg.backend == "eager" else None
        runners[name] = step
    for name in list(flops):
        if flops[name] is None:  # compiled / C++ steps hide ops from the counter: the eager update's FLOPs (same math)
            flops[name] = flops["rlpd_10_critics_eager" if "rlpd" in name else "sac_2_critics_eager"]
    if not args.no_sb3:
        try:
            _, step = _sb3_runner(sd, ad, b, h)
            step()
            runners["sb3_sac_2_critics"] = step
            flops["sb3_sac_2_critics"] = flops["sac_2_critics_eager"]  # same layer sizes, same update math
        except ImportError:
            notes["sb3_sac_2_critics"] = "stable-baselines3 not installed (pip install -e .[bench])"
    peak_before = matmul_peak(args.threads)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(args.rounds):
        for name, step in runners.items():
            t = time.perf_counter()
            for _ in range(args.updates):
                step()
            rates[name].append(args.updates / (time.perf_counter() - t))
    peak = max(peak_before, matmul_peak(args.threads))
    bandwidth = copy_bandwidth(args.threads)
    results = {}
    for name, rs in rates.items():
        ups = median(rs)
        gflop = flops[name] / 1e9
        results[name] = {"updates_per_s": round(ups, 2), "updates_per_s_rounds": [round(r, 2) for r in rs],
                         "gflop_per_update": float(f"{gflop:.6g}"), "achieved_gflops": float(f"{ups * gflop:.5g}"),
                         "fraction_of_matmul_peak": float(f"{ups * gflop / peak:.4g}"),
                         **(notes.get(name) or {})}
    ratios = {}
    if "sb3_sac_2_critics" in results:
        for be in ("eager", "compile", "native"):
            if f"sac_2_critics_{be}" in results:
                ratios[f"sac_2_critics_{be}_vs_sb3"] = round(results[f"sac_2_critics_{be}"]["updates_per_s"]
                                                             / results["sb3_sac_2_critics"]["updates_per_s"], 2)
    for be in ("compile", "native"):
        if f"rlpd_10_critics_{be}" in results:
            ratios[f"{be}_vs_eager_10_critics"] = round(results[f"rlpd_10_critics_{be}"]["updates_per_s"]
                                                        / results["rlpd_10_critics_eager"]["updates_per_s"], 2)
    ratios["batched_vs_loop_10_critics"] = round(results["rlpd_10_critics_eager"]["updates_per_s"]
                                                 / results["rlpd_10_critics_loop"]["updates_per_s"], 2)
    out = {"bench": "learner", "machine": machine_info(), "load_average": list(os.getloadavg()),
           "sizes": {"state_dim": sd, "action_dim": ad, "batch": b, "hidden": [h, h]},
           "matmul_peak_gflops": round(peak, 1), "copy_bandwidth_gbs": round(bandwidth, 1), "rounds": args.rounds, "updates_per_round": args.updates,
           "results": results, "ratios": ratios,
           "notes": {k: v for k, v in notes.items() if isinstance(v, str)}}
    path = write_json(out, args.out)
    for name, r in results.items():
        print(f"{name:28s} {r['updates_per_s']:8.1f} upd/s  {r['achieved_gflops']:7.1f} GFLOP/s "
              f"({100 * r['fraction_of_matmul_peak']:.0f}% of {peak:.0f})")
    print(f"matmul peak {peak:.0f} GFLOP/s, copy bandwidth {bandwidth:.1f} GB/s")
    print("ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    print(f"wrote {path}")
    return 0
