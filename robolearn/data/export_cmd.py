"""``robolearn data export STORE --format lerobot --out DIR``: convert an episode store for other tools."""
from __future__ import annotations

import json
import sys

FORMATS = ("lerobot",)


def add_arguments(parser) -> None:
    parser.add_argument("source", help="episode store directory")
    parser.add_argument("--format", default="lerobot", choices=FORMATS, help="output layout (LeRobotDataset v2.1)")
    parser.add_argument("--out", required=True, help="output directory (must not exist unless --force)")
    parser.add_argument("--repo-id", default=None, help="dataset id for LeRobot, e.g. local/peg (default local/<out name>)")
    parser.add_argument("--fps", type=int, default=20, help="control rate of the recorded episodes (frames per second)")
    parser.add_argument("--task", default=None, help="task text for every episode (default: episode meta task, else env)")
    parser.add_argument("--no-env-names", action="store_true",
                        help="no state dimension names (default: the names collect recorded, else state_0..)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from robolearn.data.lerobot_export import export_lerobot

    try:
        summary = export_lerobot(
            args.source, args.out, repo_id=args.repo_id, fps=args.fps, task=args.task, force=args.force,
            state_names_from_env=not args.no_env_names, progress=not args.no_progress, log=None if args.json else print,
        )
    except FileExistsError as exc:
        print(f"robolearn: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
