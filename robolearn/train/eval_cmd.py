"""``robolearn eval --checkpoint runs/peg_dp --env sim/peg_insert --episodes 50 [--video-episodes 3] [--json]``

Starts with one line saying what it will evaluate and where the results go, ends with the success rate
and the files written; ``--json`` prints the summary as one JSON object on stdout instead (the header
goes to stderr), the convention of every long command.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="policy run directory or checkpoint folder")
    parser.add_argument("--env", required=True, help="env name, e.g. sim/peg_insert")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000, help="episode i uses seed + i")
    parser.add_argument("--sampler", choices=["ddim", "ddpm"], default=None, help="diffusion sampler (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="denoising / consistency steps (default: the config's)")
    parser.add_argument("--video-episodes", type=int, default=0,
                        help="write mp4s of the first N episodes (a step counter and the outcome drawn on the frames)")
    parser.add_argument("--video-size", type=int, default=256,
                        help="video frame size in px (default 256; the policy still sees its own image size)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode step limit override")
    parser.add_argument("--out", default=None, help="directory for eval.json and videos (default: <checkpoint>/eval)")
    parser.add_argument("--name", default=None, help="result file name stem (default: derived from env and sampling)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--allow-env-mismatch", action="store_true",
                        help="evaluate on another env than the checkpoint was trained on (an intended transfer)")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on stdout (the header goes to stderr)")
    from robolearn.device import add_device_argument

    add_device_argument(parser)


def check_flags(args: argparse.Namespace) -> None:
    for name, low in (("episodes", 1), ("seed", 0), ("video_episodes", 0), ("threads", 0), ("video_size", 16)):
        if getattr(args, name) < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    for name in ("steps", "max_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")


def describe_sampling(kw: dict[str, Any]) -> str:
    """``{'sampler': 'ddim', 'steps': 10}`` -> ``DDIM, 10 steps`` (a summary never shows a raw dict)."""
    if not kw:
        return "deterministic action"
    steps = f"{kw['steps']} step{'s' if kw['steps'] != 1 else ''}"
    return f"{kw['sampler'].upper()}, {steps}" if "sampler" in kw else steps


def format_summary(s: dict[str, Any]) -> str:
    lo, hi = s["ci95"]
    lines = [f"{s['env']}, {s['policy_type']} ({describe_sampling(s['sampling'])}): success "
             f"{s['successes']}/{s['episodes']} = {s['success_rate']:.1%} (95% Wilson CI {lo:.1%}-{hi:.1%}), "
             f"mean length {s['mean_length']:.1f}, mean return {s['mean_return']:.2f}",
             f"  results: {s['result_file']}"]
    if s["videos"]:
        first = Path(s["videos"][0])
        span = first.name + (f" .. {Path(s['videos'][-1]).name}" if len(s["videos"]) > 1 else "")
        lines.append(f"  videos: {first.parent}/{span}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import functools
    import json
    import sys

    import torch

    from robolearn.device import resolve_device
    from robolearn.train.evaluate import check_env, evaluate, load_policy, sampling_kwargs, save_json

    check_flags(args)
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    policy = load_policy(args.checkpoint, device=device)
    check_env(policy, args.env, args.allow_env_mismatch)  # before the header promises a run
    kw = sampling_kwargs(policy, args.sampler, args.steps)
    tag = f"{kw.get('sampler', 'cm')}{kw['steps']}" if "steps" in kw else "mean"
    kind = policy.type if policy.type != "consistency" else f"consistency-{policy.config.objective}"
    stem = args.name or f"{args.env.replace('/', '-')}_{kind}_{tag}"
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    videos = f", videos of the first {args.video_episodes}" if args.video_episodes else ""
    say(f"eval: {args.checkpoint} ({kind}, {describe_sampling(kw)}) on {args.env}, {args.episodes} episodes "
        f"(seeds {args.seed}..{args.seed + args.episodes - 1}){videos} on {device} -> {out / (stem + '.json')}")
    result = evaluate(policy, args.env, args.episodes, seed=args.seed, sampler=args.sampler, steps=args.steps,
                      video_episodes=args.video_episodes, video_dir=out / f"{stem}_videos",
                      max_steps=args.max_steps, progress=not args.no_progress,
                      allow_env_mismatch=args.allow_env_mismatch, video_size=args.video_size)
    path = save_json(result, out / f"{stem}.json")
    summary = {key: value for key, value in result.items() if key != "per_episode"}
    summary.update(checkpoint=str(args.checkpoint), result_file=str(path))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(format_summary(summary))
    return 0
