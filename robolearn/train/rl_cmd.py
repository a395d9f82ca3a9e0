"""``robolearn train rl``: off-policy RL from demos plus online data, in one process (any registered --algo).

It says what it will do in one line first (env, algorithm, data, steps, output folder) and ends with a human
summary naming the checkpoint and policy folders; ``--json`` prints that summary as one JSON object on stdout
instead (the header then goes to stderr). Steps are env steps (agent steps x the env's action repeat).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def add_arguments(parser) -> None:
    from robolearn.device import add_device_argument
    from robolearn.rl import registry

    parser.add_argument("--algo", default="rlpd", choices=registry.names(),
                        help="algorithm: " + "; ".join(f"{n}: {registry.entry(n).help}" for n in registry.names()))
    parser.add_argument("--env", required=True, help="env name, e.g. sim/pick_cube or dmc/cartpole-swingup")
    parser.add_argument("--demos", default=None, help="episode store directory with demonstrations")
    parser.add_argument("--base", default=None,
                        help="base policy (a BC run or checkpoint) for methods that refine one (residual, expo, conrft)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps: physics control steps = agent steps x the env's action_repeat (overrides "
                             "the recipe's train.steps; eval, checkpoint and log intervals follow it unless set)")
    parser.add_argument("--config", default=None,
                        help="recipe: a YAML path or a shipped name (rlpd, sac, ...; policies/rlpd.yaml works from any "
                             "folder), merged on the --algo preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory (default runs/<algo>-<env>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (overrides the recipe)")
    parser.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE",
                        help="env override, e.g. --env-set action_repeat=8 (YAML value syntax; repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="sets",
                        help="recipe override, e.g. --set agent.hidden=[128,128] (YAML value syntax; repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true",
                        help="print the final summary as one JSON object on stdout (the header goes to stderr)")
    add_device_argument(parser)


def run(args) -> int:
    import yaml

    from robolearn.device import resolve_device
    from robolearn.train.online import OnlineTrainer
    from robolearn.train.rl_config import build_config

    if args.steps is not None and args.steps < 1:
        raise ValueError(f"--steps must be >= 1 (env steps), got {args.steps}")
    if args.threads is not None and args.threads < 0:
        raise ValueError(f"--threads must be >= 0 (0: torch's default), got {args.threads}")
    recipe = {}
    if args.config:
        from robolearn.shipped import resolve_recipe

        path = resolve_recipe(args.config)  # a file, else the shipped copy of "sac" / "policies/sac.yaml"
        recipe = yaml.safe_load(path.read_text()) or {}
        if not isinstance(recipe, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    overrides: dict = {"train": {}}  # --steps, --threads, --set and --env-set win over the recipe
    if args.steps is not None:
        overrides["train"]["steps"] = args.steps
    if args.threads is not None:
        overrides["train"]["torch_threads"] = args.threads
    env_sets = {}
    for item in args.env_set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env-set expects KEY=VALUE, got {item!r}")
        env_sets[key] = yaml.safe_load(value)
    for item in args.sets:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise ValueError(f"--set expects SECTION.KEY=VALUE, got {item!r}")
        node = overrides
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part!r} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    if env_sets:
        overrides["train"]["env_overrides"] = env_sets
    cfg = build_config(args.algo, recipe, overrides, where=str(path) if args.config else "preset")
    out = Path(args.out or f"runs/{args.algo}-{args.env.replace('/', '_')}-s{args.seed}")
    device = resolve_device(args.device)
    from robolearn.rl import registry

    algo_cls = registry.algorithm_class(args.algo)
    if algo_cls.needs_base and not args.base:
        raise ValueError(f"--algo {args.algo} refines a base policy: pass --base RUN (a BC run directory)")
    if args.base and not algo_cls.needs_base:
        raise ValueError(f"--algo {args.algo} does not use a base policy (--base {args.base})")
    extra = {"base": args.base} if args.base else {}
    trainer = OnlineTrainer(cfg, args.env, out, demos=args.demos, seed=args.seed, device=device, **extra)
    print(header(trainer.plan(), resume=args.resume), file=sys.stderr if args.json else sys.stdout, flush=True)
    t0 = time.perf_counter()
    summary = trainer.run(resume=args.resume, progress=not args.no_progress)
    summary["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(summary))
    else:
        print(render_summary(summary))
    return 0


def steps_text(env_steps: int, agent_steps: int, repeat: int) -> str:
    """``N env steps``, with the agent steps next to them when the env repeats actions."""
    if repeat == 1:
        return f"{env_steps} env steps"
    return f"{env_steps} env steps ({agent_steps} agent steps x action repeat {repeat})"


def header(plan: dict[str, Any], resume: bool = False) -> str:
    """The one line a run starts with: what it will train, on what, for how long, into where."""
    return (f"train rl: {plan['algo']} on {plan['env']}, demos {plan['demos'] or 'none'}, "
            f"base {plan['base'] or 'none'}, "
            f"{steps_text(plan['steps'], plan['agent_steps'], plan['action_repeat'])}, eval every "
            f"{plan['eval_every']}, checkpoint every {plan['checkpoint_every']} -> {plan['out']}"
            + (" (resuming)" if resume else ""))


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def render_summary(summary: dict[str, Any]) -> str:
    """The human end of a run: how far it got, the final evaluation, and the files to use next."""
    done = steps_text(summary["env_step"], summary["agent_step"], summary["action_repeat"])
    wall = f" in {_duration(summary['wall_s'])}" if summary.get("wall_s") is not None else ""
    lines = [f"train rl: done, {done}, {summary['episodes']} episodes, {summary['updates']} updates{wall}"]
    if "eval/return" in summary:
        lines.append(f"  final eval (step {summary['eval_step']}): success {summary['eval/success_rate']:.0%}, "
                     f"return {summary['eval/return']:.1f}, episode length {summary['eval/episode_length']:.0f}")
    else:
        lines.append("  no evaluation (train.eval_episodes is 0)")
    if summary.get("recent_return") is not None:
        lines.append(f"  last {min(20, summary['episodes'])} training episodes: success "
                     f"{summary['recent_success']:.0%}, return {summary['recent_return']:.1f}")
    out = summary["out"]
    lines += [f"  checkpoint: {summary['checkpoint']}  (robolearn train rl ... --out {out} --resume)",
              f"  policy:     {summary['policy']}  (robolearn eval --checkpoint {out} --env {summary['env']})",
              f"  logs:       {summary['scalars']}  (robolearn plot {out})"]
    return "\n".join(lines)
