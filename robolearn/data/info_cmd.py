"""``robolearn data info PATH``: what an episode store holds (episodes, steps, success, keys, corrupt files)."""
from __future__ import annotations

import json
import warnings
from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("path", help="episode store directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--stats", action="store_true", help="also print per-key mean/std/min/max")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any episode file is corrupt (for scripts and CI)")


def info(path: str | Path, *, stats: bool = False) -> dict:
    """The summary dict (JSON-ready); FileNotFoundError when there is no store at ``path``.

    A folder that is not a store (a run folder, say) is an error naming what it holds, and nothing is
    written into it: opening with ``create=False`` refuses before the index could be refreshed.
    """
    from robolearn.data.episode_store import EpisodeStore

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no episode store at {path} (path does not exist)")
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not an episode store directory")
    store = EpisodeStore(path, create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt files are listed in the summary instead
        summary = store.summary()
        if stats and summary["episodes"]:
            summary["stats"] = {
                k: {s: v.tolist() for s, v in d.items()} for k, d in store.stats().items()
            }
    return summary


def format_summary(summary: dict) -> str:
    lines = [
        f"store:        {summary['path']}",
        f"episodes:     {summary['episodes']}",
        f"steps:        {summary['steps']} (mean {summary['mean_length']:.1f} per episode)",
        f"success rate: {summary['success_rate']:.1%}",
        "keys:",
    ]
    for key, shape in summary["keys"].items():
        lines.append(f"  {key:<16} {tuple(shape)}")
    if summary["corrupt"]:
        lines.append(f"corrupt files skipped ({len(summary['corrupt'])}):")
        for name in summary["corrupt"]:
            lines.append(f"  {summary['corrupt_reasons'][name]}")
    for key, d in summary.get("stats", {}).items():
        lines.append(f"stats {key}:")
        for s, v in d.items():
            lines.append(f"  {s:<4} {v}")
    return "\n".join(lines)


def run(args) -> int:
    import sys

    summary = info(args.path, stats=args.stats)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    if args.strict and summary["corrupt"]:
        # The summary still prints (it says which files); the exit code is what a script checks.
        print(f"robolearn: error: {len(summary['corrupt'])} corrupt episode file(s) in {summary['path']} "
              f"(--strict)", file=sys.stderr)
        return 1
    return 0
