"""``robolearn demo``: the main job end to end, as stages that each leave files in ``--out``.

Stages are a registry (name -> function of the shared context) so later capabilities add a
stage rather than a new script. Each stage is skipped when its outputs already exist, so a
killed demo resumes where it stopped.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from robolearn.device import add_device_argument

TASKS = ("sim/pick_cube", "sim/peg_insert")


@dataclass
class DemoContext:
    out: Path
    episodes: int = 50
    noise: float = 0.2
    image_size: int = 128
    quick: bool = False
    seed: int = 0
    bc_steps: int = 2000
    eval_episodes: int = 20
    device: str = "auto"  # BC training only; evaluation acts at batch 1, where a small net is fastest on CPU
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


@stage("bc")
def train_and_eval_bc(ctx: DemoContext) -> dict:
    """A small diffusion policy trained by BC on the peg demos, evaluated in sim with a rollout video."""
    import json as _json
    from dataclasses import replace

    import torch

    from robolearn.device import resolve_device
    from robolearn.train.bc import load_episodes, load_recipe, train_bc
    from robolearn.train.evaluate import evaluate, load_policy

    recipe_path = Path(__file__).resolve().parents[2] / "policies" / "diffusion.yaml"
    recipe = load_recipe(recipe_path) if recipe_path.is_file() else None
    if recipe is None:
        raise FileNotFoundError(f"policy recipe not found: {recipe_path}")
    task = "sim/peg_insert"
    run_dir = ctx.out / "peg_bc"
    steps = 40 if ctx.quick else ctx.bc_steps
    episodes = 2 if ctx.quick else ctx.eval_episodes
    if ctx.quick:  # a short warm-up, and a loss curve with a few points, so the trend of a short run shows
        recipe = replace(recipe, train=replace(recipe.train, log_every=10, warmup_steps=10))
    device = resolve_device(ctx.device)
    torch.set_num_threads(1)  # CPU-sized nets: one thread beats OpenMP barriers on a busy machine
    print(f"\n== behaviour cloning: diffusion policy on {task} demos, {steps} steps on {device} ==")
    demos = load_episodes(ctx.data_dir(task), success_only=True)
    train = train_bc(recipe, demos, run_dir, steps=steps, resume=(run_dir / "checkpoint").exists(),
                     data_path=str(ctx.data_dir(task)), device=device)
    curve = [[row["step"], round(row["loss"], 5)]
             for row in map(_json.loads, (run_dir / "log.jsonl").read_text().splitlines())]
    policy = load_policy(run_dir)
    print(f"== evaluating on {task}: {episodes} episodes, DDIM-10 ==")
    result = evaluate(policy, task, episodes=episodes, sampler="ddim", steps=10, video_episodes=1,
                      video_dir=ctx.out / "peg_bc_rollouts")
    from robolearn.data.fsutil import atomic_write_json

    atomic_write_json(ctx.out / "peg_bc_eval.json", result, indent=2, default=str)
    lo, hi = result["ci95"]
    print(f"{task} BC (diffusion, DDIM-10): success {result['successes']}/{episodes} "
          f"({100 * result['success_rate']:.0f}%, 95% CI {100 * lo:.0f}-{100 * hi:.0f}%), video {result['videos']}")
    return {"task": task, "train_steps": train["step"], "final_loss": round(float(train["loss"]), 5),
            "loss_curve": curve, "device": str(device), "episodes": episodes,
            "success_rate": result["success_rate"], "ci95": [lo, hi],
            "videos": result["videos"]}


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
    from robolearn.data.fsutil import atomic_write_json

    atomic_write_json(ctx.out / "summary.json", ctx.summary, indent=2, default=str)
    return ctx.summary


def print_summary(summary: dict) -> None:
    print("\n==== robolearn demo summary ====")
    for task, s in summary.get("collect", {}).items():
        print(f"{task:>16}: {s.get('episodes')} episodes, success {100 * s.get('success_rate', 0):.0f}%, "
              f"{s.get('total_steps')} steps")
    for key, value in summary.items():
        if key == "bc":
            lo, hi = value["ci95"]
            curve = value.get("loss_curve") or [[0, float("nan")]]
            print(f"{'BC peg_insert':>16}: diffusion policy ({value['train_steps']} steps, loss "
                  f"{curve[0][1]:.3f} -> {curve[-1][1]:.3f}) success "
                  f"{100 * value['success_rate']:.0f}% over {value['episodes']} episodes "
                  f"(95% CI {100 * lo:.0f}-{100 * hi:.0f}%), rollout video {value['videos']}")
        elif key not in ("collect", "videos", "seconds", "total_seconds") and isinstance(value, dict):
            print(f"{key:>16}: {json.dumps(value, default=str)[:300]}")
    print(f"{'time':>16}: {summary.get('total_seconds')} s  (per stage: {summary.get('seconds')})")


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--episodes", type=int, default=50, help="expert demos per task")
    parser.add_argument("--bc-steps", type=int, default=2000, help="behaviour-cloning steps for the peg policy")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.2, help="expert noise (suboptimal, varied demos)")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="a short smoke run (few episodes, tiny training)")
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of: {', '.join(STAGES)}")
    add_device_argument(parser)


def run(args) -> int:
    episodes = 3 if args.quick and args.episodes == 50 else args.episodes
    ctx = DemoContext(out=Path(args.out), episodes=episodes, noise=args.noise, image_size=args.image_size,
                      quick=args.quick, bc_steps=args.bc_steps, eval_episodes=args.eval_episodes,
                      device=args.device)
    stages = [s for s in args.stages.split(",") if s] if args.stages else None
    summary = run_demo(ctx, stages)
    print_summary(summary)
    return 0
