"""``robolearn distill --teacher runs/peg_dp --out runs/peg_cp [--policy policies/consistency.yaml] [--data DIR] [--device auto] [--json]``

Output follows ``train bc``: a header line, a summary naming the checkpoint and scalar log, ``--json``.
"""
from __future__ import annotations

import argparse

from robolearn.device import add_device_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robolearn.train.bc_cmd import add_json_argument

    parser.add_argument("--teacher", required=True, help="diffusion policy run or checkpoint folder")
    parser.add_argument("--out", required=True, help="run directory for the consistency student")
    parser.add_argument("--policy", default="policies/consistency.yaml",
                        help="consistency recipe: its consistency settings and train section are used; "
                             "the network and horizons come from the teacher")
    parser.add_argument("--data", default=None, help="demo episode store (default: the teacher's training data)")
    parser.add_argument("--steps", type=int, default=None, help="total distillation steps (overrides the recipe)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--no-progress", action="store_true")
    add_json_argument(parser)
    add_device_argument(parser)


def run(args: argparse.Namespace) -> int:
    from robolearn.train.bc_cmd import check_flags  # the same flags, the same rules

    check_flags(args)
    import time

    import torch

    from robolearn.device import resolve_device
    from robolearn.train import checkpoint as ckpt
    from robolearn.train.bc import load_episodes, load_recipe
    from robolearn.train.bc_cmd import (describe_data, format_training_summary, print_json, resume_note, sayer,
                                        training_summary)
    from robolearn.train.distill import distill

    say = sayer(args)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.policy)
    teacher_type, _, teacher_meta = ckpt.read_config(args.teacher)
    data = args.data or teacher_meta.get("data")
    if not data:
        raise ValueError("the teacher checkpoint does not record its data; pass --data")
    episodes = load_episodes(data, success_only=recipe.train.success_only)
    described, env = describe_data(episodes, data)
    steps = args.steps or recipe.train.steps
    say(f"distill: {recipe.type} student ({args.policy}) of the {teacher_type} teacher {args.teacher} on "
        f"{described}, {steps} steps on {device}{resume_note(args.out, args.resume)} -> {args.out}")
    t0 = time.perf_counter()
    result = distill(args.teacher, recipe, episodes, args.out, steps=args.steps, resume=args.resume,
                     data_path=str(data), progress=not args.no_progress, device=device)
    summary = training_summary("distill", result, args.out, wall_s=time.perf_counter() - t0,
                               policy=recipe.type, recipe=str(args.policy), teacher=str(args.teacher),
                               env=env or teacher_meta.get("env"), data=str(data), episodes=len(episodes),
                               device=str(device))
    if args.json:
        print_json(summary)
    else:
        say(format_training_summary(summary, f"{recipe.type} student"))
    return 0
