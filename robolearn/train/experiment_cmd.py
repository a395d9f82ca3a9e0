"""``robolearn experiment compare``: BC vs RLPD vs residual vs EXPO vs ConRFT from one base per seed.

    robolearn experiment compare --env sim/peg_insert --demos 20 --seeds 3
    robolearn experiment compare --env sim/pick_cube --demos 20 --seeds 3 --noise 0.4 --out runs/compare-pick

Writes OUT/compare.md (table + settings), OUT/compare.json (the same numbers, per seed) and OUT/compare.png
(success against env steps). Rerun the same command after a kill: finished sub-runs are skipped, a partial
one continues from its last checkpoint. The logic lives in ``robolearn.train.experiment``.
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    from robolearn.device import add_device_argument
    from robolearn.train import experiment as ex

    parser.add_argument("--env", required=True, help="env with a scripted expert, e.g. sim/peg_insert or sim/pick_cube")
    parser.add_argument("--demos", type=int, default=20,
                        help="expert demos, collected once for every seed (default 20)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds 0..N-1: one base policy and one run per method each")
    parser.add_argument("--noise", type=float, default=0.4, help="expert noise of the demos (default 0.4)")
    parser.add_argument("--out", default=None, help="output directory (default runs/compare-<task>); rerun to resume")
    parser.add_argument("--methods", default=",".join(ex.METHODS),
                        help=f"comma-separated subset of {','.join(ex.METHODS)} (default: all)")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per RL run (default: " + ", ".join(f"{e} {n}" for e, n in ex.ENV_STEPS.items())
                             + f", else {ex.DEFAULT_STEPS})")
    parser.add_argument("--eval-every", type=int, default=None,
                        help=f"env steps between evaluations (default steps / {ex.EVALS_PER_RUN}; must divide --steps)")
    parser.add_argument("--eval-episodes", type=int, default=ex.EVAL_EPISODES,
                        help=f"episodes per evaluation (default {ex.EVAL_EPISODES})")
    parser.add_argument("--base-recipe", default=ex.BASE_RECIPE,
                        help=f"BC recipe of the base (default {ex.BASE_RECIPE})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per sub-run (default 1; 0: torch's default)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="sub-runs at once, each in its own process (default 1; about one per CPU core)")
    parser.add_argument("--set", action="append", default=[], metavar="METHOD.SECTION.KEY=VALUE", dest="sets",
                        help="recipe override for one method (bc edits the base recipe; rl = every RL method), e.g. "
                             "--set residual.agent.alpha=0.2 --set bc.train.steps=2000 --set rl.train.batch_size=128 "
                             "(YAML value syntax; repeatable)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: write the table and curve of what the runs on disk reached so far")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (the one-line reports remain)")
    add_device_argument(parser)


def run(args) -> int:
    from robolearn.train import experiment as ex

    methods = ex.parse_methods(args.methods)
    cfg = ex.CompareConfig(
        env=args.env, demos=args.demos, seeds=args.seeds, noise=args.noise, out=args.out, methods=methods,
        steps=args.steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
        base_recipe=args.base_recipe, threads=args.threads, sets=ex.parse_sets(args.sets, methods),
        device=args.device, progress=not args.no_progress, jobs=args.jobs,
        report_only=args.report_only,
    )
    ex.run_compare(cfg, log=lambda msg: print(msg, flush=True))
    return 0
