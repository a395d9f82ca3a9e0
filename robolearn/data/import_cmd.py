"""``robolearn data import SRC --format lerobot --out STORE [--json]``: read another tool's dataset into an
episode store.

Starts with one line saying what it will import and where, ends with a summary (episodes, steps,
cameras, tasks, what was not imported); ``--json`` prints the summary as one JSON object on stdout
instead, and the header goes to stderr (the convention of every long command).
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

FORMATS = ("lerobot",)


def add_arguments(parser) -> None:
    parser.add_argument("source", help="dataset folder (LeRobotDataset v3.0: meta/info.json, data/, videos/)")
    parser.add_argument("--format", default="lerobot", choices=FORMATS, help="input layout (LeRobotDataset v3.0)")
    parser.add_argument("--out", required=True, help="episode store to create (must not exist unless --force)")
    parser.add_argument("--tolerance-s", type=float, default=None,
                        help="how far a video frame may be from the time it is looked up at (default 1e-4 s, "
                             "LeRobot's)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on stdout (the header goes to stderr)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from robolearn.data.lerobot_import import DEFAULT_TOLERANCE_S, format_summary, import_lerobot

    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    tolerance = DEFAULT_TOLERANCE_S if args.tolerance_s is None else args.tolerance_s
    if not tolerance > 0:
        raise ValueError(f"--tolerance-s must be > 0, got {args.tolerance_s}")
    if not Path(args.source).is_dir():
        raise FileNotFoundError(f"no dataset folder at {args.source}")
    say(f"data import: {args.source} as {args.format} (LeRobotDataset v3.0)"
        f"{' (replacing it)' if args.force and Path(args.out).exists() else ''} -> episode store {args.out}")
    try:
        summary = import_lerobot(args.source, args.out, force=args.force, tolerance_s=tolerance,
                                 progress=not args.no_progress, log=None)
    except FileExistsError as exc:
        print(f"robolearn: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(format_summary(summary))
    return 0
