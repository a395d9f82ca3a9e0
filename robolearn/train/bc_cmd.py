"""``robolearn train bc --policy policies/diffusion.yaml --data data/peg --out runs/peg_dp [--steps N] [--resume] [--device auto] [--json]``

Starts with one line saying what it will train (policy, env, data, steps, device, output folder) and
ends with a summary naming the checkpoint and the scalar log; ``--json`` prints that summary as one JSON
object on stdout instead, and the header goes to stderr (the convention of every long command).
The helpers below are shared with ``distill``, which trains through the same loop.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from robolearn.device import add_device_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, help="policy recipe: a shipped name (diffusion, consistency, diffusion_image, ...) or a YAML path")
    parser.add_argument("--data", required=True, help="episode store directory with demos")
    parser.add_argument("--out", required=True, help="run directory (checkpoint/, scalars.csv, tb/)")
    parser.add_argument("--steps", type=int, default=None, help="total training steps (overrides the recipe)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_json_argument(parser)
    add_device_argument(parser)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on stdout (the header goes to stderr)")


def check_flags(args: argparse.Namespace) -> None:
    """Refuse bad numbers before any work: ``--steps -5`` used to train nothing and still report a
    checkpoint (step 0, loss nan) with exit 0."""
    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch default), got {args.threads}")


def sayer(args: argparse.Namespace) -> Callable[..., None]:
    """Human lines: stdout, or stderr under ``--json`` so stdout holds only the JSON object."""
    return functools.partial(print, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def describe_data(episodes: Sequence, data: str | Path) -> tuple[str, str | None]:
    """``12 sim/peg_insert episodes (1834 steps, cameras front) from data/peg`` and the env (if one)."""
    envs = sorted({str(e.meta["env"]) for e in episodes
                   if isinstance(getattr(e, "meta", None), dict) and e.meta.get("env")})
    cams = sorted({cam for e in episodes for cam in (getattr(e, "images", None) or {})})
    steps = sum(len(e.action) for e in episodes)
    what = f"{len(episodes)} {' + '.join(envs) + ' ' if envs else ''}episodes ({steps} steps"
    what += f", cameras {','.join(cams)})" if cams else ")"
    return f"{what} from {data}", envs[0] if len(envs) == 1 else None


def resume_note(out: str | Path, resume: bool) -> str:
    """``, resuming at step N`` when ``--resume`` continues a checkpoint in ``out``."""
    state = Path(out) / "checkpoint" / "train" / "state.json"
    if not resume or not state.is_file():
        return ""
    try:
        return f", resuming at step {int(json.loads(state.read_text())['step'])}"
    except (ValueError, KeyError, TypeError):
        return ", resuming"


def _finite(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def training_summary(command: str, result: dict[str, Any], out: str | Path, *, wall_s: float,
                     **fields: Any) -> dict[str, Any]:
    """The machine-readable end of a training command (losses are null when no step ran)."""
    out = Path(out)
    return {"command": command, **fields, "steps": int(result["step"]),
            "first_loss": _finite(result["first_loss"]), "final_loss": _finite(result["loss"]),
            "wall_time_s": round(wall_s, 1), "out": str(out), "checkpoint": str(out / "checkpoint"),
            "scalars": str(out / "scalars.csv"), "tensorboard": str(out / "tb")}


def format_training_summary(s: dict[str, Any], what: str) -> str:
    if s["final_loss"] is None:
        head = f"{s['out']} already holds {what} trained to step {s['steps']}: nothing to train"
    else:
        head = (f"trained {what} to step {s['steps']} (loss {s['first_loss']:.4g} -> {s['final_loss']:.4g}) "
                f"in {s['wall_time_s']:.1f} s")
    return "\n".join([
        head,
        f"  checkpoint: {s['checkpoint']}",
        f"  scalar log: {s['scalars']} (TensorBoard: {s['tensorboard']}; robolearn plot {s['out']})",
    ])


def print_json(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, indent=2, allow_nan=False))


def run(args: argparse.Namespace) -> int:
    check_flags(args)
    import time

    import torch

    from robolearn.device import resolve_device
    from robolearn.train.bc import load_episodes, load_recipe, train_bc

    say = sayer(args)
    device = resolve_device(args.device)  # before loading data: a missing GPU is the first thing said
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.policy)
    episodes = load_episodes(args.data, success_only=recipe.train.success_only)
    data, env = describe_data(episodes, args.data)
    steps = args.steps or recipe.train.steps
    say(f"train bc: {recipe.type} policy ({args.policy}) on {data}, {steps} steps on {device}"
        f"{resume_note(args.out, args.resume)} -> {args.out}")
    t0 = time.perf_counter()
    result = train_bc(recipe, episodes, args.out, steps=args.steps, resume=args.resume,
                      data_path=str(args.data), progress=not args.no_progress, device=device)
    summary = training_summary("train bc", result, args.out, wall_s=time.perf_counter() - t0,
                               policy=recipe.type, recipe=str(args.policy), env=env, data=str(args.data),
                               episodes=len(episodes), device=str(device))
    if args.json:
        print_json(summary)
    else:
        say(format_training_summary(summary, f"{recipe.type} policy"))
    return 0
