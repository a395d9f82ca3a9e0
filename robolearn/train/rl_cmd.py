"""``robolearn train rl``: off-policy RL from demos plus online data, in one process (any registered --algo)."""
from __future__ import annotations

import json
from pathlib import Path


def add_arguments(parser) -> None:
    from robolearn.device import add_device_argument
    from robolearn.rl import registry

    parser.add_argument("--algo", default="rlpd", choices=registry.names(),
                        help="algorithm: " + "; ".join(f"{n}: {registry.entry(n).help}" for n in registry.names()))
    parser.add_argument("--env", required=True, help="env name, e.g. sim/pick_cube or dmc/cartpole-swingup")
    parser.add_argument("--demos", default=None, help="episode store directory with demonstrations")
    parser.add_argument("--base", default=None,
                        help="base policy (a BC run or checkpoint) for methods that refine one (residual, expo, conrft)")
    parser.add_argument("--steps", type=int, default=None, help="env steps (overrides the recipe)")
    parser.add_argument("--config", default=None, help="recipe YAML (e.g. policies/rlpd.yaml), merged on the preset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="run directory (default runs/<algo>-<env>-s<seed>)")
    parser.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (overrides the recipe)")
    parser.add_argument("--env-set", action="append", default=[], metavar="KEY=VALUE",
                        help="env override, e.g. --env-set action_repeat=8 (YAML value syntax; repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", dest="sets",
                        help="recipe override, e.g. --set agent.hidden=[128,128] (YAML value syntax; repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_device_argument(parser)


def run(args) -> int:
    import yaml

    from robolearn.device import resolve_device
    from robolearn.train.online import OnlineTrainer
    from robolearn.train.rl_config import build_config

    recipe = {}
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
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
    cfg = build_config(args.algo, recipe, overrides, where=str(args.config or "preset"))
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
    summary = trainer.run(resume=args.resume, progress=not args.no_progress)
    print(json.dumps({"out": str(out), **summary}))
    return 0
