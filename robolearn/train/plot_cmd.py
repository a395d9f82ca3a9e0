"""``robolearn plot RUN... [--metric eval/return] [--out curve.png]``: learning curves from any run's scalar log.

A RUN is a BC, distillation or RL run folder, a checkpoint inside one, or a ``scalars.csv``: every
trainer writes the same log (robolearn.train.logging), so one command plots them all. Run folders given
together are seeds of one curve (mean line, min-max band); ``--curve`` adds another curve:
``robolearn plot a0 a1 --curve b0 b1 --label A --label B``. Steps are aligned by taking the steps every
seed of a curve logged (evaluation steps are the same across seeds).

Without ``--metric`` the first of ``DEFAULT_METRICS`` the runs logged is drawn (a BC run has no
evaluation, so its loss); an unknown metric is an error listing the ones the run has. Success rates
are drawn on a fixed 0-1 axis with a marker per evaluation: an autoscaled axis made 0.9 -> 1.0 look like
a collapse, and a line between sparse evaluations hid how few there were.
"""
from __future__ import annotations

import difflib
from pathlib import Path

DEFAULT_METRICS = ("eval/return", "eval/success_rate", "train/loss")


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*",
                        help="run folders (BC or RL), checkpoints inside them or scalars.csv files: the seeds of one curve")
    parser.add_argument("--curve", action="append", nargs="+", default=[], metavar="RUN_DIR",
                        help="the seeds of a further curve (repeatable)")
    parser.add_argument("--metric", default=None,
                        help=f"scalar tag to plot (default: the first logged of {', '.join(DEFAULT_METRICS)})")
    parser.add_argument("--out", default=None, help="image path (default: <first run>/plots/<metric>.png)")
    parser.add_argument("--label", action="append", default=[], help="legend label per curve (repeatable)")
    parser.add_argument("--x-scale", type=float, default=1.0,
                        help="multiply steps (only for RL runs logged before steps counted env steps: e.g. 8 under action repeat 8)")
    parser.add_argument("--xlabel", default=None, help="x axis label (default: the runs' step unit)")
    parser.add_argument("--title", default=None)
    parser.add_argument("--hline", type=float, default=None, help="reference line (e.g. a published score)")
    parser.add_argument("--json", default=None, help="also write the plotted numbers to this JSON file")


def is_rate(metric: str) -> bool:
    """Metrics that are fractions of episodes (success rates): drawn on 0-1 with markers."""
    return "success" in metric.rsplit("/", 1)[-1].lower()


def _available(scalars: dict, run: str, metric: str) -> None:
    if metric in scalars:
        return
    from robolearn.train.logging import find_scalar_log

    names = sorted(scalars)
    close = difflib.get_close_matches(metric, names, n=1) or [n for n in names if n.rsplit("/", 1)[-1] == metric][:1]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{run} has no values for metric {metric!r}{hint} in {find_scalar_log(run)}; "
                     f"available metrics: {', '.join(names) or 'none (the log is empty)'}")


def pick_metric(groups: list[list[str]]) -> str:
    """The first of ``DEFAULT_METRICS`` every run logged."""
    from robolearn.train.logging import load_scalars

    logged = [set(load_scalars(r)) for runs in groups for r in runs]
    common = set.intersection(*logged)
    for m in DEFAULT_METRICS:
        if m in common:
            return m
    raise ValueError(f"the runs share none of {', '.join(DEFAULT_METRICS)}; pass --metric, one of: "
                     f"{', '.join(sorted(common)) or 'none (they share no metric)'}")


def curve(run_dirs: list[str], metric: str) -> dict:
    """Mean / min / max across seeds at the steps all seeds logged."""
    import numpy as np

    from robolearn.train.logging import load_scalars

    per_run = []
    for d in run_dirs:
        scalars = load_scalars(d)
        _available(scalars, str(d), metric)
        steps, vals = scalars[metric]
        per_run.append(dict(zip(steps, vals)))
    common = sorted(set.intersection(*(set(p) for p in per_run)))
    if not common:
        raise ValueError(f"runs {', '.join(map(str, run_dirs))} share no logged steps for {metric!r}")
    vals = np.array([[p[s] for s in common] for p in per_run])
    return {"steps": common, "mean": vals.mean(0).tolist(), "min": vals.min(0).tolist(),
            "max": vals.max(0).tolist(), "seeds": len(run_dirs), "runs": [str(r) for r in run_dirs]}


def run_folder(run: str | Path) -> Path:
    """The folder holding a run's scalar log (a checkpoint path resolves to its run)."""
    from robolearn.train.logging import find_scalar_log

    return find_scalar_log(run).parent


def step_unit(run: str | Path) -> str:
    """BC and distillation log per gradient step; RL runs per env step."""
    d = run_folder(run)
    return "training steps" if (d / "checkpoint").is_dir() and not (d / "checkpoints").is_dir() else "env steps"


def draw(groups: list[list[str]], metric: str, *, labels=(), x_scale: float = 1.0, xlabel: str | None = None,
         title: str | None = None, hline: float | None = None):
    """The figure and the plotted numbers per curve label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rate = is_rate(metric)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    data = {}
    for i, runs in enumerate(groups):
        c = curve(runs, metric)
        x = np.array(c["steps"]) * x_scale
        label = labels[i] if labels else ", ".join(run_folder(r).name for r in runs)
        style = {"marker": "o", "markersize": 4, "clip_on": False} if rate else {}
        ax.plot(x, c["mean"], label=f"{label} (n={c['seeds']})", **style)
        ax.fill_between(x, c["min"], c["max"], alpha=0.25)
        data[label] = {**c, "x": x.tolist()}
    if hline is not None:
        ax.axhline(hline, color="gray", linestyle="--", linewidth=1)
    if rate:
        ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(xlabel or step_unit(groups[0][0]))
    ax.set_ylabel(metric)
    ax.set_title(title or metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig, data


def run(args) -> int:
    import io

    import matplotlib.pyplot as plt

    from robolearn.data.fsutil import atomic_write_bytes, atomic_write_json

    groups = ([args.runs] if args.runs else []) + list(args.curve)
    if not groups:
        raise ValueError("no run given: robolearn plot RUN_DIR [--metric TAG]")
    if args.label and len(args.label) != len(groups):
        raise ValueError(f"{len(args.label)} --label for {len(groups)} curves")
    metric = args.metric or pick_metric(groups)
    fig, data = draw(groups, metric, labels=args.label, x_scale=args.x_scale, xlabel=args.xlabel,
                     title=args.title, hline=args.hline)
    out = Path(args.out) if args.out else run_folder(groups[0][0]) / "plots" / f"{metric.replace('/', '_')}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    if args.json:
        atomic_write_json(args.json, data, indent=2)
    points = sum(len(c["steps"]) for c in data.values())
    print(f"plotted {metric} ({len(data)} curve{'s' if len(data) != 1 else ''}, "
          f"{points} point{'s' if points != 1 else ''}) to {out}"
          + (f"; numbers in {args.json}" if args.json else ""))
    if not args.metric:
        from robolearn.train.logging import load_scalars

        print(f"  other metrics (--metric): {', '.join(m for m in load_scalars(groups[0][0]) if m != metric)}")
    return 0
