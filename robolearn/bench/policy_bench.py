"""``robolearn bench policy``: batch-1 inference latency of one network under each sampler.

DDPM-100 and DDIM-10 (Diffusion Policy) and 1-step / few-step consistency sampling all run the same
U-Net + encoder architecture, so the ratios isolate the cost of the number of network evaluations.
Each timing is one ``act(obs)`` call (history update, normalization, sampling, unnormalization). On a GPU
(``--device cuda``) that call ends by copying the chunk to the host, which waits for the device, so the wall
time of a call is its full latency.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from typing import Any, Callable

import numpy as np

from robolearn.device import add_device_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="diffusion run/checkpoint to take the network from "
                        "(default: a randomly initialised network from --recipe)")
    parser.add_argument("--recipe", default="diffusion", help="diffusion recipe when no checkpoint: a shipped "
                        "name (diffusion, diffusion_image) or a YAML path")
    parser.add_argument("--state-dim", type=int, default=15)
    parser.add_argument("--action-dim", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200, help="timed calls per variant (>= 200 for p99)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--few-steps", type=int, default=3, help="consistency few-step count")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench/policy.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (stderr)")
    add_device_argument(parser)


def time_calls(fn, calls: int, warmup: int, on_call: Callable[[], None] | None = None) -> dict[str, float]:
    """Wall times of ``calls`` calls after ``warmup`` untimed ones; ``on_call`` runs after each call
    (warm-up included) outside the timed span, so a progress bar costs the measurement nothing."""
    tick = on_call or (lambda: None)
    for _ in range(warmup):
        fn()
        tick()
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - t0
        tick()
    ms = times * 1e3
    return {"calls": calls, "median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min())}


def build_pair(args, device=None) -> tuple[Any, Any]:
    """(DDPM/DDIM teacher, consistency student) on one network: the deploy module's pair, from the CLI args."""
    from robolearn.deploy.synthetic_policies import diffusion_consistency_pair

    from robolearn.shipped import resolve_recipe

    recipe = None if args.checkpoint else str(resolve_recipe(args.recipe))  # a name works from any folder
    return diffusion_consistency_pair(args.checkpoint, recipe, args.state_dim, args.action_dim, device)


def _measure(name: str, fn, args: argparse.Namespace, desc: str) -> dict[str, float]:
    """One sampler's timings with a progress bar on stderr: DDPM-100 alone takes minutes on a CPU, and a
    benchmark that prints nothing for that long looks hung. The bar closes before the result line."""
    from tqdm import tqdm

    bar = tqdm(total=args.warmup + args.calls, desc=desc, unit="call", file=sys.stderr, mininterval=0.5,
               disable=args.no_progress, dynamic_ncols=True, leave=False)
    try:
        return time_calls(fn, args.calls, args.warmup, on_call=lambda: bar.update(1))
    finally:
        bar.close()


def run(args: argparse.Namespace) -> int:
    if args.calls < 1:
        raise ValueError(f"--calls must be >= 1, got {args.calls}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    if args.few_steps < 1:
        raise ValueError(f"--few-steps must be >= 1, got {args.few_steps}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not args.checkpoint:
        from robolearn.shipped import resolve_recipe

        resolve_recipe(args.recipe)  # a wrong name fails here, before torch is set up
    import torch

    from robolearn.device import make_generator, resolve_device

    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dp, cp = build_pair(args, device)
    cfg = dp.config
    rng = np.random.default_rng(0)
    obs: dict[str, Any] = {"state": rng.uniform(-1, 1, cfg.state_dim).astype(np.float32)}
    if cfg.cameras:
        obs["images"] = {c: rng.integers(0, 256, (cfg.image_size, cfg.image_size, 3), dtype=np.uint8) for c in cfg.cameras}
    gen = make_generator(device, 0)
    variants = {
        "dp_ddpm_100": lambda: dp.act(obs, generator=gen, sampler="ddpm", steps=100),
        "dp_ddim_10": lambda: dp.act(obs, generator=gen, sampler="ddim", steps=10),
        "cp_1_step": lambda: cp.act(obs, generator=gen, steps=1),
        f"cp_{args.few_steps}_step": lambda: cp.act(obs, generator=gen, steps=args.few_steps),
    }
    source = args.checkpoint or args.recipe
    print(f"bench policy: {len(variants)} samplers ({', '.join(variants)}) x {args.calls} timed calls "
          f"(+{args.warmup} warm-up) on {device}, {args.threads} thread(s), network from {source}; "
          f"writes {args.out}", flush=True)
    results = {}
    with torch.inference_mode():
        for k, (name, fn) in enumerate(variants.items(), 1):
            results[name] = _measure(name, fn, args, f"[{k}/{len(variants)}] {name}")
            print(f"{name:14s} median {results[name]['median_ms']:8.2f} ms   p99 {results[name]['p99_ms']:8.2f} ms",
                  flush=True)
    one = results["cp_1_step"]["median_ms"]
    ratios = {
        "cp1_over_ddim10": one / results["dp_ddim_10"]["median_ms"],
        "cp1_over_ddpm100": one / results["dp_ddpm_100"]["median_ms"],
    }
    doc = {
        "benchmark": "policy inference latency, batch 1, one act() call",
        "torch": torch.__version__, "threads": args.threads, "machine": platform.machine(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or device.type,
        "network": {"params": sum(p.numel() for p in dp.parameters()), "down_dims": list(cfg.down_dims),
                    "horizon": cfg.horizon, "state_dim": cfg.state_dim, "action_dim": cfg.action_dim,
                    "cameras": list(cfg.cameras), "source": args.checkpoint or args.recipe},
        "results": results, "ratios": ratios,
        "targets": {"cp1_over_ddim10_max": 0.2, "cp1_over_ddpm100_max": 0.05},
        "meets_targets": ratios["cp1_over_ddim10"] <= 0.2 and ratios["cp1_over_ddpm100"] <= 0.05,
    }
    from robolearn.bench.common import write_json

    out = write_json(doc, args.out)
    print(f"cp 1-step / ddim-10 = {ratios['cp1_over_ddim10']:.3f}, / ddpm-100 = {ratios['cp1_over_ddpm100']:.4f}; wrote {out}")
    return 0
