"""``robolearn demo``: the main job end to end, as stages that each leave files in ``--out``.

Stages are a registry (name -> function of the shared context) so later capabilities add a
stage rather than a new script. Each stage is skipped when its outputs already exist, so a
killed demo resumes where it stopped.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

TASKS = ("sim/pick_cube", "sim/peg_insert")


@dataclass
class DemoContext:
    out: Path
    episodes: int = 30
    noise: float = 0.2
    image_size: int = 128
    quick: bool = False
    seed: int = 0
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.episodes <= 0:
            raise ValueError(f"--episodes must be positive, got {self.episodes}")
        self.out = Path(self.out)

    def data_dir(self, task: str) -> Path:
        return self.out / "data" / task.split("/")[-1]


Stage = Callable[[DemoContext], dict]
STAGES: dict[str, Stage] = {}


def stage(name: str):
    def deco(fn: Stage) -> Stage:
        STAGES[name] = fn
        return fn

    return deco


@stage("collect")
def collect_demos(ctx: DemoContext) -> dict:
    from robolearn.train.collect_cmd import collect

    results = {}
    for task in TASKS:
        print(f"\n== collecting {ctx.episodes} expert demos for {task} (noise {ctx.noise}) ==")
        results[task] = collect(task, "expert", ctx.episodes, str(ctx.data_dir(task)), noise=ctx.noise,
                                seed=ctx.seed, cameras=["front"], image_size=ctx.image_size)
    return results


@stage("videos")
def write_videos(ctx: DemoContext) -> dict:
    """An mp4 and a contact sheet of one successful demo per task (front camera)."""
    from robolearn.data.episode_store import EpisodeStore
    from robolearn.data.video import contact_sheet, write_mp4

    written = {}
    for task in TASKS:
        store = EpisodeStore(ctx.data_dir(task))
        episode = next((ep for ep in store if ep.succeeded), None) or store.load(0)
        frames = episode.images["front"]
        short = task.split("/")[-1]
        mp4 = write_mp4(frames, ctx.out / f"{short}_expert.mp4", fps=20)
        sheet = contact_sheet(frames, ctx.out / f"{short}_contact_sheet.png", cols=8, n=16)
        written[task] = {"episode": episode.name, "frames": int(len(frames)), "mp4": str(mp4), "sheet": str(sheet)}
        print(f"{task}: {mp4} ({len(frames)} frames), {sheet}")
    return written


def run_demo(ctx: DemoContext, stages: list[str] | None = None) -> dict:
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for name in stages or list(STAGES):
        if name not in STAGES:
            raise ValueError(f"unknown demo stage {name!r}; stages: {', '.join(STAGES)}")
        start = time.time()
        ctx.summary[name] = STAGES[name](ctx)
        ctx.summary.setdefault("seconds", {})[name] = round(time.time() - start, 1)
    ctx.summary["total_seconds"] = round(time.time() - t0, 1)
    path = ctx.out / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ctx.summary, indent=2, default=str))
    os.replace(tmp, path)
    return ctx.summary


def print_summary(summary: dict) -> None:
    print("\n==== robolearn demo summary ====")
    for task, s in summary.get("collect", {}).items():
        print(f"{task:>16}: {s.get('episodes')} episodes, success {100 * s.get('success_rate', 0):.0f}%, "
              f"{s.get('total_steps')} steps")
    for key, value in summary.items():
        if key not in ("collect", "videos", "seconds", "total_seconds") and isinstance(value, dict):
            print(f"{key:>16}: {json.dumps(value, default=str)[:300]}")
    print(f"{'time':>16}: {summary.get('total_seconds')} s  (per stage: {summary.get('seconds')})")


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--episodes", type=int, default=30, help="expert demos per task")
    parser.add_argument("--noise", type=float, default=0.2, help="expert noise (suboptimal, varied demos)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (few episodes, tiny training)")
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of: {', '.join(STAGES)}")


def run(args) -> int:
    episodes = 3 if args.quick and args.episodes == 30 else args.episodes
    ctx = DemoContext(out=Path(args.out), episodes=episodes, noise=args.noise, image_size=args.image_size,
                      quick=args.quick)
    stages = [s for s in args.stages.split(",") if s] if args.stages else None
    summary = run_demo(ctx, stages)
    print_summary(summary)
    return 0
