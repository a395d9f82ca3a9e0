"""``robolearn train bc --policy policies/diffusion.yaml --data data/peg --out runs/peg_dp [--steps N] [--resume] [--device auto]``"""
from __future__ import annotations

import argparse

from robolearn.device import add_device_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy recipe YAML (policies/diffusion.yaml, ...)")
    parser.add_argument("--data", required=True, help="episode store directory with demos")
    parser.add_argument("--out", required=True, help="run directory (checkpoint/, tb/, log.jsonl)")
    parser.add_argument("--steps", type=int, default=None, help="total training steps (overrides the recipe)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_argument(parser)


def check_flags(args: argparse.Namespace) -> None:
    """Refuse bad numbers before any work: ``--steps -5`` used to train nothing and still report a
    checkpoint (step 0, loss nan) with exit 0."""
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch default), got {args.threads}")


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    import torch

    from robolearn.device import resolve_device
    from robolearn.train.bc import load_episodes, load_recipe, train_bc

    device = resolve_device(args.device)  # before loading data: a missing GPU is the first thing said
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.policy)
    episodes = load_episodes(args.data, success_only=recipe.train.success_only)
    print(f"{len(episodes)} episodes, {sum(len(e.action) for e in episodes)} steps from {args.data}; training on {device}")
    result = train_bc(recipe, episodes, args.out, steps=args.steps, resume=args.resume,
                      data_path=str(args.data), progress=not args.no_progress, device=device)
    print(f"step {result['step']}: final loss {result['loss']:.5f}; checkpoint in {args.out}/checkpoint")
    return 0
