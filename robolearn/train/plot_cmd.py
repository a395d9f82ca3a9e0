"""``robolearn plot RUN_DIRS... --metric eval/return --out curve.png``: learning curves from CSV logs.

Run directories given together are seeds of one curve (mean line, min-max band). ``--curve`` adds
another curve: ``robolearn plot a0 a1 --curve b0 b1 --label A --label B``. Steps are aligned by taking
the steps every seed of a curve logged (evaluation steps are the same across seeds).
"""
from __future__ import annotations

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("runs", nargs="*", help="run directories (holding scalars.csv): the seeds of one curve")
    parser.add_argument("--curve", action="append", nargs="+", default=[], metavar="RUN_DIR",
                        help="the seeds of a further curve (repeatable)")
    parser.add_argument("--metric", default="eval/return", help="scalar tag to plot")
    parser.add_argument("--out", required=True, help="PNG path")
    parser.add_argument("--label", action="append", default=[], help="legend label per curve (repeatable)")
    parser.add_argument("--x-scale", type=float, default=1.0,
                        help="multiply steps (e.g. 8 for env steps under action repeat 8)")
    parser.add_argument("--xlabel", default="env steps")
    parser.add_argument("--title", default=None)
    parser.add_argument("--hline", type=float, default=None, help="reference line (e.g. a published score)")
    parser.add_argument("--json", default=None, help="also write the plotted numbers to this JSON file")


def curve(run_dirs: list[str], metric: str) -> dict:
    """Mean / min / max across seeds at the steps all seeds logged."""
    import numpy as np

    from robolearn.train.logging import series

    per_run = []
    for d in run_dirs:
        steps, vals = series(d, metric)
        if not steps:
            raise ValueError(f"run {d} has no values for metric {metric!r}")
        per_run.append(dict(zip(steps, vals)))
    common = sorted(set.intersection(*(set(p) for p in per_run)))
    if not common:
        raise ValueError(f"runs {run_dirs} share no logged steps for {metric!r}")
    vals = np.array([[p[s] for s in common] for p in per_run])
    return {"steps": common, "mean": vals.mean(0).tolist(), "min": vals.min(0).tolist(),
            "max": vals.max(0).tolist(), "seeds": len(run_dirs), "runs": run_dirs}


def run(args) -> int:

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = ([args.runs] if args.runs else []) + list(args.curve)
    if not groups:
        raise ValueError("no run directories given")
    if args.label and len(args.label) != len(groups):
        raise ValueError(f"{len(args.label)} --label for {len(groups)} curves")
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    data = {}
    for i, runs in enumerate(groups):
        c = curve(runs, args.metric)
        x = np.array(c["steps"]) * args.x_scale
        label = args.label[i] if args.label else ", ".join(Path(r).name for r in runs)
        ax.plot(x, c["mean"], label=f"{label} (n={c['seeds']})")
        ax.fill_between(x, c["min"], c["max"], alpha=0.25)
        data[label] = {**c, "x": x.tolist()}
    if args.hline is not None:
        ax.axhline(args.hline, color="gray", linestyle="--", linewidth=1)
    ax.set_xlabel(args.xlabel)
    ax.set_ylabel(args.metric)
    ax.set_title(args.title or args.metric)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import io

    from robolearn.data.fsutil import atomic_write_bytes, atomic_write_json

    buf = io.BytesIO()
    fig.savefig(buf, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    atomic_write_bytes(out, buf.getvalue())
    if args.json:
        atomic_write_json(args.json, data, indent=2)
    print(f"wrote {out}")
    return 0
