"""``robolearn data export STORE --format lerobot --out DIR [--json]``: convert an episode store for other tools.

Starts with one line saying what it will export and where, ends with a summary naming the files
written; ``--json`` prints the summary as one JSON object on stdout instead, and the header goes to
stderr (the convention of every long command).
"""
from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

from robolearn.data.lerobot_export import DEFAULT_DATA_FILES_SIZE_IN_MB, DEFAULT_VIDEO_FILES_SIZE_IN_MB

FORMATS = ("lerobot",)


def add_arguments(parser) -> None:
    parser.add_argument("source", help="episode store directory")
    parser.add_argument("--format", default="lerobot", choices=FORMATS, help="output layout (LeRobotDataset v3.0)")
    parser.add_argument("--out", required=True, help="output directory (must not exist unless --force)")
    parser.add_argument("--repo-id", default=None, help="dataset id for LeRobot, e.g. local/peg (default local/<out name>)")
    parser.add_argument("--fps", type=int, default=None,
                        help="control rate of the recorded episodes (default: the fps collect recorded, else 20)")
    parser.add_argument("--task", default=None, help="task text for every episode (default: episode meta task, else env)")
    parser.add_argument("--no-env-names", action="store_true",
                        help="no state dimension names (default: the names collect recorded, else state_0..)")
    parser.add_argument("--data-file-size-mb", type=float, default=DEFAULT_DATA_FILES_SIZE_IN_MB,
                        help="start a new data parquet file before one would pass this size (uncompressed rows, MB)")
    parser.add_argument("--video-file-size-mb", type=float, default=DEFAULT_VIDEO_FILES_SIZE_IN_MB,
                        help="start a new mp4 per camera before one would pass this size (MB)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as one JSON object on stdout (the header goes to stderr)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def output_files(out: str | Path) -> dict[str, Any]:
    """What the export wrote, by kind: the metadata files (meta/episodes/ included) and the data and video files."""
    out = Path(out)
    return {"meta": sorted(str(p) for p in (out / "meta").rglob("*") if p.is_file()),
            "data": sorted(str(p) for p in (out / "data").rglob("*.parquet")),
            "videos": sorted(str(p) for p in (out / "videos").rglob("*.mp4"))}


def format_files(out: str | Path, files: dict[str, Any]) -> str:
    out = Path(out)
    def count(n: int, what: str) -> str:
        return f"{n} {what}{'s' if n != 1 else ''}"

    meta = ", ".join(Path(p).relative_to(out / "meta").as_posix() for p in files["meta"])
    lines = [f"  files: {out / 'meta'}/{{{meta}}}",
             f"         {count(len(files['data']), 'parquet file')} under {out / 'data'}"]
    if files["videos"]:
        lines.append(f"         {count(len(files['videos']), 'mp4 video')} under {out / 'videos'}")
    return "\n".join(lines)


def recorded_fps(source: str | Path, default: int = 20) -> int:
    """The fps ``collect`` recorded in the first readable episode's meta, else ``default``: the header
    states the rate before the export starts, and the export uses the same one."""
    import numpy as np

    for path in sorted(Path(source).glob("episode_*.npz")):
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
        except (OSError, ValueError, KeyError, EOFError):
            continue
        value = meta.get("fps") if isinstance(meta, dict) else None
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default
    return default


def run(args) -> int:
    from robolearn.data.lerobot_export import format_summary, export_lerobot

    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    if args.fps is not None and args.fps < 1:
        raise ValueError(f"--fps must be >= 1, got {args.fps}")
    if not Path(args.source).is_dir():
        raise FileNotFoundError(f"no episode store at {args.source}")
    fps = args.fps or recorded_fps(args.source)
    say(f"data export: {args.source} as {args.format} (LeRobotDataset v3.0) at {fps} fps"
        f"{' (replacing it)' if args.force and Path(args.out).exists() else ''} -> {args.out}")
    try:
        summary = export_lerobot(
            args.source, args.out, repo_id=args.repo_id, fps=fps, task=args.task, force=args.force,
            data_files_size_in_mb=args.data_file_size_mb, video_files_size_in_mb=args.video_file_size_mb,
            state_names_from_env=not args.no_env_names, progress=not args.no_progress, log=None,
        )
    except FileExistsError as exc:
        print(f"robolearn: error: {exc}", file=sys.stderr)
        return 1
    summary["files"] = output_files(summary["out"])
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        say(format_summary(summary) + "\n" + format_files(summary["out"], summary["files"]))
    return 0
