"""``robolearn demo``: the whole pipeline in one command - expert demos, a BC base policy, its refinement
with RL from demos plus online data, and a before/after evaluation - ending in ``OUT/report.md``.

The first three stages are a one-seed ``experiment compare`` of "bc" against the refinement method (the
same code, so the demo and the README's comparison cannot drift apart); the demo then evaluates both
policies on held-out episodes (other seeds than the trainer's evaluations), films the same episodes
before and after, and writes the report. Stages are a registry (name -> function of the shared context)
and each one skips work whose files exist, so a killed demo resumes where it stopped.

Layout of ``OUT``: the comparison's files (``experiment.json``, ``demos/``, ``seed0/base``,
``seed0/<method>``), then ``eval_base.json``, ``eval_refined.json``, ``videos/{base,refined}/*.mp4``,
``before_after.png`` (contact sheets of the first filmed episode), ``curve.png``, ``report.md`` and
``summary.json``.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from robolearn.device import add_device_argument

METHOD = "conrft"            # the refinement method the demo runs (see docs/results_refine.md)
# env steps of refinement per method: what fits the demo's ~15 minutes on a 2-core CPU (a ConRFT step trains
# the whole consistency policy, twice the cost of a residual step); others default to DEFAULT_RL_STEPS
RL_STEPS = {"conrft": 2000, "residual": 4000, "expo": 4000}
DEFAULT_RL_STEPS = 4000
HELD_OUT_SEED = 100_000      # held-out evaluation episodes: the trainer evaluates on seeds 10**9 + k


@dataclass
class DemoContext:
    out: Path
    env: str = "sim/pick_cube"
    demos: int = 20
    noise: float = 0.4
    method: str = METHOD
    bc_steps: int = 2000         # the base recipe's 4000 halved: the demo must finish in ~15 min on a 2-core CPU
    rl_steps: int | None = None  # None: RL_STEPS[method]
    eval_every: int = 1000
    train_eval_episodes: int = 20
    eval_episodes: int = 50
    video_episodes: int = 2
    quick: bool = False
    seed: int = 0
    threads: int = 1
    device: str = "auto"
    progress: bool = True
    sets: list[str] = field(default_factory=list)   # experiment-compare style METHOD.SECTION.KEY=VALUE
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if self.rl_steps is None:
            self.rl_steps = RL_STEPS.get(self.method, DEFAULT_RL_STEPS)
        for name in ("demos", "bc_steps", "rl_steps", "eval_every", "train_eval_episodes", "eval_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")
        if isinstance(self.video_episodes, bool) or not isinstance(self.video_episodes, int) or self.video_episodes < 0:
            raise ValueError(f"--video-episodes must be an integer >= 0, got {self.video_episodes!r}")
        if self.video_episodes > self.eval_episodes:
            raise ValueError(f"--video-episodes {self.video_episodes} is more than --eval-episodes {self.eval_episodes}")

    def compare_config(self):
        """The comparison this demo's first stages are: bc and the method, one seed."""
        from robolearn.train import experiment as ex

        methods = ("bc", self.method)
        sets = [f"bc.train.steps={self.bc_steps}", *self.sets]  # an explicit --set bc.train.steps wins
        return ex.CompareConfig(env=self.env, demos=self.demos, seeds=1, noise=self.noise, out=str(self.out),
                                methods=methods, steps=self.rl_steps, eval_every=self.eval_every,
                                eval_episodes=self.train_eval_episodes, threads=self.threads,
                                sets=ex.parse_sets(sets, methods), device=self.device, progress=self.progress)

    @property
    def base_dir(self) -> Path:
        return self.out / f"seed{self.seed}" / "base"

    @property
    def refined_dir(self) -> Path:
        return self.out / f"seed{self.seed}" / self.method


Stage = Callable[[DemoContext], dict]
STAGES: dict[str, Stage] = {}


def stage(name: str):
    def deco(fn: Stage) -> Stage:
        STAGES[name] = fn
        return fn

    return deco


def _say(msg: str) -> None:
    print(msg, flush=True)


@stage("train")
def train_base_and_refine(ctx: DemoContext) -> dict:
    """Demos -> BC base -> RL refinement (the comparison's code path, resumable)."""
    from robolearn.train import experiment as ex

    cfg = ctx.compare_config()
    cfg.device = str(_device(ctx.device))
    p = ex.plan(cfg)
    ex._check_manifest(p)
    ex._collect_demos(p, _say)
    base = ex._base(p, ctx.seed, True, _say)
    refined = ex._rl_run(p, ctx.method, ctx.seed, _say)
    return {"env": ctx.env, "demos": ctx.demos, "noise": ctx.noise, "method": ctx.method,
            "base_recipe": p.cfg.base_recipe, "base_steps": p.base_recipe.train.steps,
            "recipe": p.recipe_paths[ctx.method], "rl_steps": ctx.rl_steps,
            "curve": {"steps": refined.steps, "success": refined.success, "episodes": refined.episodes},
            "base_train_eval": {"success": base.success[0], "episodes": base.episodes},
            "q_vs_return": refined.extra}


def _device(name: str):
    from robolearn.device import resolve_device

    return resolve_device(name)


def _evaluate(ctx: DemoContext, run_dir: Path, path: Path, episodes: int, video_dir: Path | None = None) -> dict:
    import torch

    from robolearn.train.evaluate import evaluate, load_policy, save_json

    if path.is_file():
        doc = json.loads(path.read_text())
        if doc.get("episodes") == episodes and doc.get("policy_mtime") == _mtime(run_dir):
            return doc
    if ctx.threads:
        torch.set_num_threads(ctx.threads)
    policy = load_policy(run_dir)
    kw = {"video_episodes": episodes, "video_dir": video_dir, "video_cameras": ("front",)} if video_dir else {}
    doc = evaluate(policy, ctx.env, episodes=episodes, seed=HELD_OUT_SEED, progress=ctx.progress, **kw)
    doc["policy_mtime"] = _mtime(run_dir)
    save_json(doc, path)
    return doc


def _mtime(run_dir: Path) -> float:
    """When the policy a folder resolves to was written (a retrained policy invalidates its evaluation)."""
    from robolearn.train.checkpoint import CONFIG_FILE, resolve

    return round((Path(resolve(run_dir)) / CONFIG_FILE).stat().st_mtime, 3)


@stage("evaluate")
def evaluate_before_after(ctx: DemoContext) -> dict:
    """Base and refined policy on the same held-out episodes (seeds the trainer never evaluated on)."""
    out, docs = {}, {}
    for name, run_dir in (("base", ctx.base_dir), ("refined", ctx.refined_dir)):
        _say(f"evaluate: {name} policy ({run_dir}) on {ctx.eval_episodes} held-out episodes of {ctx.env}")
        doc = docs[name] = _evaluate(ctx, run_dir, ctx.out / f"eval_{name}.json", ctx.eval_episodes)
        out[name] = {"successes": doc["successes"], "episodes": doc["episodes"], "success_rate": doc["success_rate"],
                     "ci95": doc["ci95"], "mean_length": doc["mean_length"], "file": str(ctx.out / f"eval_{name}.json")}
        lo, hi = doc["ci95"]
        _say(f"evaluate: {name}: {doc['successes']}/{doc['episodes']} = {100 * doc['success_rate']:.0f}% "
             f"(95% CI {100 * lo:.0f}-{100 * hi:.0f}%)")
    out["paired"] = paired_outcomes(docs["base"]["per_episode"], docs["refined"]["per_episode"])
    return out


def paired_outcomes(base: list[dict], refined: list[dict]) -> dict[str, int]:
    """Episode by episode (same seeds, so the same initial states): how many both solved, only the refined
    policy, only the base. Two success rates can hide a policy that trades episodes."""
    if [e["seed"] for e in base] != [e["seed"] for e in refined]:
        raise ValueError("base and refined evaluations ran different episodes (seeds differ)")
    pairs = [(bool(b["success"]), bool(r["success"])) for b, r in zip(base, refined)]
    return {"both": pairs.count((True, True)), "refined_only": pairs.count((False, True)),
            "base_only": pairs.count((True, False))}


@stage("videos")
def film_before_after(ctx: DemoContext) -> dict:
    """The first held-out episodes filmed with the front camera, before and after refinement: same seeds, so
    the same cube pose; each frame carries its step and, once decided, the outcome."""
    from robolearn.data.video import contact_sheet

    if ctx.video_episodes == 0:
        return {}
    out: dict = {}
    sheets = []
    for name, run_dir in (("base", ctx.base_dir), ("refined", ctx.refined_dir)):
        vdir = ctx.out / "videos" / name
        doc = _evaluate(ctx, run_dir, vdir / "episodes.json", ctx.video_episodes, video_dir=vdir)
        out[name] = {"videos": [str(v) for v in doc["videos"]],
                     "success": [bool(e["success"]) for e in doc["per_episode"]]}
        frames = _read_mp4(doc["videos"][0])
        sheets.append(contact_sheet(frames, ctx.out / f"sheet_{name}.png", cols=8, n=8, label=False))
    out["before_after"] = str(_stack_images(sheets, ctx.out / "before_after.png"))
    _say(f"videos: {', '.join(out['base']['videos'] + out['refined']['videos'])}; {out['before_after']}")
    return out


def _read_mp4(path: str):
    import imageio.v3 as iio

    return iio.imread(path)


def _stack_images(paths: list[Path], out: Path) -> Path:
    """Contact sheets one above the other (the same width: same camera, size and layout)."""
    import cv2
    import numpy as np

    from robolearn.data.fsutil import atomic_write_bytes

    imgs = [cv2.imread(str(p)) for p in paths]
    width = max(i.shape[1] for i in imgs)
    imgs = [np.pad(i, ((0, 8), (0, width - i.shape[1]), (0, 0)), constant_values=255) for i in imgs]
    ok, buf = cv2.imencode(".png", np.concatenate(imgs, axis=0))
    if not ok:
        raise RuntimeError(f"could not encode {out}")
    atomic_write_bytes(out, buf.tobytes())
    return out


def plot_curve(steps: list[int], success: list[float], base: float, path: Path, title: str) -> Path:
    """Eval success of the refined policy against env steps, with the base policy's level as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robolearn.data.fsutil import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
    ax.plot(steps, success, marker="o", label="refined (trainer's evaluations)")
    ax.axhline(base, color="gray", linestyle="--", label="base policy (same episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("env steps")
    ax.set_ylabel("success rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def render_report(summary: dict, out: Path) -> str:
    """report.md from the summary: the before/after table, the curve, the videos and the settings."""
    t, ev, vids = summary["train"], summary["evaluate"], summary.get("videos", {})
    rel = lambda p: str(Path(p).resolve().relative_to(out.resolve())) if p else ""  # noqa: E731
    lines = [f"# robolearn demo: {t['env']}, {t['demos']} demos, BC base refined with {t['method']}", "",
             "| policy | success (held-out episodes) | 95% interval | mean episode length |",
             "|---|---:|---:|---:|"]
    for name, label in (("base", f"BC base ({t['base_recipe']}, {t['base_steps']} steps)"),
                        ("refined", f"refined: {t['method']}, {t['rl_steps']} env steps")):
        e = ev[name]
        lo, hi = e["ci95"]
        lines.append(f"| {label} | {e['successes']}/{e['episodes']} = {_pct(e['success_rate'])} | "
                     f"{_pct(lo)}-{_pct(hi)} | {e['mean_length']:.1f} |")
    pair = ev.get("paired")
    if pair:
        lines += ["", f"Episode by episode (same seeds): both solved {pair['both']}, only the refined policy "
                      f"{pair['refined_only']}, only the base {pair['base_only']}."]
    lines += ["", f"Held-out episodes: env seeds {HELD_OUT_SEED}.. (the trainer evaluated on other seeds). "
                  "Intervals are Wilson 95% over episodes, for this one training seed; the comparison over "
                  "seeds is `robolearn experiment compare` (README).", "",
              f"![learning curve]({rel(summary.get('curve_png'))})", ""]
    q = t.get("q_vs_return") or {}
    if "q_mean" in q and "mc_return" in q:
        lines += [f"Critic at the last evaluation: mean Q {q['q_mean']:.3f} vs discounted Monte-Carlo return "
                  f"{q['mc_return']:.3f} (over-estimation {q['q_mean'] - q['mc_return']:+.3f}).", ""]
    if vids:
        lines += ["## Before / after (same episodes, front camera)", "",
                  f"![before (top) and after (bottom)]({rel(vids['before_after'])})", ""]
        for name in ("base", "refined"):
            marks = ", ".join(f"[episode {i} ({'success' if s else 'fail'})]({rel(v)})"
                              for i, (v, s) in enumerate(zip(vids[name]["videos"], vids[name]["success"])))
            lines.append(f"- {name}: {marks}")
        lines.append("")
    secs = summary.get("seconds", {})
    lines += ["## Settings", "",
              f"- demos: {t['demos']} scripted-expert episodes, expert noise {t['noise']}",
              f"- base: `{t['base_recipe']}`, {t['base_steps']} BC steps",
              f"- refinement: `{t['recipe']}`, {t['rl_steps']} env steps",
              f"- wall-clock per stage (s): " + ", ".join(f"{k} {v}" for k, v in secs.items()), ""]
    return "\n".join(lines)


@stage("report")
def write_report(ctx: DemoContext) -> dict:
    from robolearn.data.fsutil import atomic_write_text

    s = ctx.summary
    t = s["train"]
    curve = plot_curve(t["curve"]["steps"], t["curve"]["success"], t["base_train_eval"]["success"],
                       ctx.out / "curve.png", f"{ctx.env}: {t['method']} on a BC base")
    s["curve_png"] = str(curve)
    report = ctx.out / "report.md"
    atomic_write_text(report, render_report(s, ctx.out))
    return {"report": str(report), "curve": str(curve)}


def _load_previous(ctx: DemoContext) -> None:
    path = ctx.out / "summary.json"
    if path.is_file():
        try:
            prev = json.loads(path.read_text())
        except json.JSONDecodeError:
            return
        for k, v in prev.items():
            ctx.summary.setdefault(k, v)


def run_demo(ctx: DemoContext, stages: list[str] | None = None) -> dict:
    from robolearn.data.fsutil import atomic_write_json

    ctx.out.mkdir(parents=True, exist_ok=True)
    for name in stages or []:
        if name not in STAGES:
            raise ValueError(f"unknown demo stage {name!r}; stages: {', '.join(STAGES)}")
    if stages:
        _load_previous(ctx)  # a later stage alone needs what earlier ones reported
    t0 = time.time()
    for name in stages or list(STAGES):
        start = time.time()
        ctx.summary[name] = STAGES[name](ctx)
        ctx.summary.setdefault("seconds", {})[name] = round(time.time() - start, 1)
        atomic_write_json(ctx.out / "summary.json", ctx.summary, indent=2, default=str)
    ctx.summary["total_seconds"] = round(time.time() - t0, 1)
    if "report" in (stages or list(STAGES)):  # the report names the total too
        ctx.summary["report"] = write_report(ctx)
    atomic_write_json(ctx.out / "summary.json", ctx.summary, indent=2, default=str)
    return ctx.summary


def print_summary(summary: dict) -> None:
    ev = summary.get("evaluate", {})
    print("\n==== robolearn demo summary ====")
    t = summary.get("train", {})
    if t:
        print(f"{'task':>10}: {t['env']}, {t['demos']} expert demos (noise {t['noise']}), base {t['base_recipe']}, "
              f"refined with {t['method']} for {t['rl_steps']} env steps")
    for name in ("base", "refined"):
        if name in ev:
            e = ev[name]
            lo, hi = e["ci95"]
            print(f"{name:>10}: {e['successes']}/{e['episodes']} held-out episodes = {_pct(e['success_rate'])} "
                  f"(95% CI {_pct(lo)}-{_pct(hi)})")
    if "report" in summary:
        print(f"{'report':>10}: {summary['report']['report']} (curve {summary['report']['curve']})")
    v = summary.get("videos", {})
    if v.get("before_after"):
        print(f"{'videos':>10}: {', '.join(v['base']['videos'][:1] + v['refined']['videos'][:1])}, "
              f"{v['before_after']}")
    per = ", ".join(f"{k} {v:.0f} s" for k, v in summary.get("seconds", {}).items())
    print(f"{'time':>10}: {summary.get('total_seconds', 0):.0f} s ({per})")


QUICK_SETS = ["bc.train.batch_size=16", "bc.train.warmup_steps=5", "bc.train.log_every=10",
              "bc.train.checkpoint_every=20", "rl.train.warmup_steps=20", "rl.train.batch_size=16",
              "rl.train.checkpoint_every=30", "rl.train.log_every=10", "rl.train.offline_steps=5"]


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--env", default="sim/pick_cube", help="a task with a scripted expert (default sim/pick_cube)")
    parser.add_argument("--demos", type=int, default=20, help="expert demos (default 20)")
    parser.add_argument("--noise", type=float, default=0.4, help="expert noise: suboptimal, varied demos (default 0.4)")
    parser.add_argument("--method", default=METHOD, help=f"refinement method (default {METHOD})")
    parser.add_argument("--bc-steps", type=int, default=2000, help="BC steps of the base policy (default 2000)")
    parser.add_argument("--rl-steps", type=int, default=None,
                        help="env steps of refinement (default per method: "
                             + ", ".join(f"{k} {v}" for k, v in RL_STEPS.items()) + f", else {DEFAULT_RL_STEPS})")
    parser.add_argument("--eval-every", type=int, default=1000, help="env steps between the trainer's evaluations")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes per policy (default 50)")
    parser.add_argument("--video-episodes", type=int, default=2, help="held-out episodes filmed per policy")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--set", action="append", default=[], dest="sets", metavar="METHOD.SECTION.KEY=VALUE",
                        help="recipe override as in experiment compare (bc.* for the base, rl.* or the method)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (3 demos, tiny training)")
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of: {', '.join(STAGES)}")
    parser.add_argument("--no-progress", action="store_true")
    add_device_argument(parser)


def run(args) -> int:
    kw = dict(out=Path(args.out), env=args.env, demos=args.demos, noise=args.noise, method=args.method,
              bc_steps=args.bc_steps, rl_steps=args.rl_steps, eval_every=args.eval_every, eval_episodes=args.eval_episodes,
              video_episodes=args.video_episodes, threads=args.threads, device=args.device,
              progress=not args.no_progress, sets=list(args.sets))
    if args.quick:  # a smoke run of every stage: small enough for CI, same code path
        kw.update(demos=3, bc_steps=40, rl_steps=60, eval_every=30, train_eval_episodes=2,
                  eval_episodes=min(args.eval_episodes, 3), video_episodes=min(args.video_episodes, 1),
                  quick=True, sets=QUICK_SETS + list(args.sets))
    ctx = DemoContext(**kw)
    stages = [s for s in args.stages.split(",") if s] if args.stages else None
    print(f"robolearn demo: {ctx.demos} expert demos of {ctx.env} (noise {ctx.noise}) -> BC base -> {ctx.method} "
          f"for {ctx.rl_steps} env steps -> {ctx.eval_episodes} held-out episodes each, into {ctx.out}", flush=True)
    summary = run_demo(ctx, stages)
    print_summary(summary)
    return 0
