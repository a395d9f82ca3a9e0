"""``robolearn eval --checkpoint runs/peg_dp --env sim/peg_insert --episodes 50 [--video-episodes 3]``"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="policy run directory or checkpoint folder")
    parser.add_argument("--env", required=True, help="env name, e.g. sim/peg_insert")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=100_000, help="episode i uses seed + i")
    parser.add_argument("--sampler", choices=["ddim", "ddpm"], default=None, help="diffusion sampler (default: the config's)")
    parser.add_argument("--steps", type=int, default=None, help="denoising / consistency steps (default: the config's)")
    parser.add_argument("--video-episodes", type=int, default=0, help="write mp4s of the first N episodes")
    parser.add_argument("--max-steps", type=int, default=None, help="episode step limit override")
    parser.add_argument("--out", default=None, help="directory for eval.json and videos (default: <checkpoint>/eval)")
    parser.add_argument("--name", default=None, help="result file name stem (default: derived from env and sampling)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--allow-env-mismatch", action="store_true",
                        help="evaluate on another env than the checkpoint was trained on (an intended transfer)")
    from robolearn.device import add_device_argument

    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from robolearn.device import resolve_device
    from robolearn.train.evaluate import evaluate, load_policy, sampling_kwargs, save_json

    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    if args.threads:
        torch.set_num_threads(args.threads)
    policy = load_policy(args.checkpoint, device=resolve_device(args.device))
    kw = sampling_kwargs(policy, args.sampler, args.steps)
    tag = f"{kw.get('sampler', 'cm')}{kw['steps']}" if "steps" in kw else "mean"
    kind = policy.type if policy.type != "consistency" else f"consistency-{policy.config.objective}"
    stem = args.name or f"{args.env.replace('/', '-')}_{kind}_{tag}"
    out = Path(args.out) if args.out else Path(args.checkpoint) / "eval"
    result = evaluate(policy, args.env, args.episodes, seed=args.seed, sampler=args.sampler, steps=args.steps,
                      video_episodes=args.video_episodes, video_dir=out / f"{stem}_videos",
                      max_steps=args.max_steps, progress=not args.no_progress,
                      allow_env_mismatch=args.allow_env_mismatch)
    path = save_json(result, out / f"{stem}.json")
    lo, hi = result["ci95"]
    print(f"{args.env} {policy.type} {result['sampling']}: success {result['successes']}/{result['episodes']} = "
          f"{result['success_rate']:.1%} (95% Wilson CI {lo:.1%}-{hi:.1%}), mean length {result['mean_length']:.1f}; "
          f"wrote {path}" + (f" and {len(result['videos'])} videos" if result["videos"] else ""))
    return 0
