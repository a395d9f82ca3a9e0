"""``robolearn data info PATH``: what an episode store holds (episodes, steps, success, keys, corrupt files)
and how it was recorded (env, source, cameras, image size, fps, expert noise)."""
from __future__ import annotations

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

# What ``data info`` reports from each episode's recorded meta, in display order. Cameras and image size
# come from the recorded frames (the index), so stores written before they were in the meta show them too.
RECORDED_FIELDS = ("env", "source", "cameras", "image_size", "fps", "noise")
_LABELS = {"env": "env", "source": "source", "cameras": "cameras", "image_size": "image size", "fps": "fps",
           "noise": "expert noise"}
NOT_RECORDED = "not recorded"


def add_arguments(parser) -> None:
    parser.add_argument("path", help="episode store directory")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--stats", action="store_true",
                        help="also print per-dimension mean/std/min/max of state, action and reward, with names")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when any episode file is corrupt (for scripts and CI)")


def _read_meta(path: Path) -> dict | None:
    """Only the ``meta`` member of an episode file: the summary must not read every frame of a store."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, EOFError):
        return None  # changed or damaged since it was indexed: the index already reports corrupt files
    return meta if isinstance(meta, dict) else None


def _value_text(value) -> str:
    if value is None:
        return NOT_RECORDED
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value)) if value else "none"
    return str(value)


def _recorded(store) -> tuple[dict[str, dict[str, int]], list[dict]]:
    """Per recorded field, ``{value text: number of episodes}``; and the metas (for dimension names).

    Counts, not one value, because a store can mix recordings (e.g. resumed with another ``--noise``),
    and a single value would hide that.
    """
    counts: dict[str, Counter] = {f: Counter() for f in RECORDED_FIELDS}
    metas = []
    for fname, entry in sorted(store.refresh()["files"].items()):
        if "corrupt" in entry:
            continue
        meta = _read_meta(store.root / fname) or {}
        metas.append(meta)
        cams = sorted(k.split("/", 1)[1] for k in entry["shapes"] if k.startswith("images/"))
        sizes = sorted({f"{h}x{w}" for h, w, *_ in (entry["shapes"][f"images/{c}"] for c in cams)})
        values = {
            "env": meta.get("env"),
            "source": meta.get("source"),
            "cameras": cams,
            "image_size": " and ".join(sizes) if sizes else "no images",
            "fps": meta.get("fps"),
            "noise": meta.get("noise"),
        }
        for field, value in values.items():
            counts[field][_value_text(value)] += 1
    return {f: dict(c.most_common()) for f, c in counts.items()}, metas


def dimension_names(metas: list[dict], stats: dict) -> dict[str, list[str]]:
    """Names for each statistic's dimensions: the recorded ``state_names`` / ``action_names`` when they
    fit the dimension, the known action layout of the env family, else ``state_i`` / ``action_i``."""
    from robolearn.data.lerobot_export import ACTION_NAMES

    def recorded(key: str, dim: int) -> list[str] | None:
        for meta in metas:
            value = meta.get(f"{key}_names")
            if isinstance(value, list) and len(value) == dim and all(isinstance(v, str) for v in value):
                return list(value)
        return None

    names: dict[str, list[str]] = {}
    for key, d in stats.items():
        dim = int(np.size(d["mean"]))
        if key == "reward" and np.ndim(d["mean"]) == 0:
            names[key] = ["reward"]
            continue
        got = recorded(key, dim)
        if got is None and key == "action":
            env = next((m["env"] for m in metas if isinstance(m.get("env"), str)), "")
            got = next((v for (prefix, size), v in ACTION_NAMES.items() if env.startswith(prefix) and size == dim),
                       None)
        names[key] = got or [f"{key}_{i}" for i in range(dim)]
    return names


def info(path: str | Path, *, stats: bool = False) -> dict:
    """The summary dict (JSON-ready); FileNotFoundError when there is no store at ``path``.

    A folder that is not a store (a run folder, say) is an error naming what it holds, and nothing is
    written into it: opening with ``create=False`` refuses before the index could be refreshed.

    ``recorded`` maps each of RECORDED_FIELDS to ``{value: episodes}`` (``"not recorded"`` when the
    episodes' meta lacks it); with ``stats``, ``stat_names`` gives the dimension names of each statistic.
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
        summary["recorded"], metas = _recorded(store)
        if stats and summary["episodes"]:
            raw = store.stats()
            summary["stats"] = {k: {s: v.tolist() for s, v in d.items()} for k, d in raw.items()}
            summary["stat_names"] = dimension_names(metas, raw)
    return summary


def _num(v: float) -> str:
    """4 decimals (what a state in metres, radians or a normalised action needs; float noise such as
    3e-13 reads 0.0000, not as a number to worry about); 4 significant digits beyond 10^4."""
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    if abs(v) >= 1e4:
        return f"{v:.4g}"
    text = f"{v:.4f}"
    return text[1:] if text == "-0.0000" else text


def format_stats(key: str, d: dict, names: list[str] | None) -> list[str]:
    """One row per dimension: its name, then mean / std / min / max rounded (see ``_num``)."""
    cols = ("mean", "std", "min", "max")
    arrays = {s: np.atleast_1d(np.asarray(d[s], dtype=np.float64)) for s in cols if s in d}
    dim = len(next(iter(arrays.values())))
    names = names if names and len(names) == dim else [f"{key}_{i}" for i in range(dim)]
    width = max(8, *(len(n) for n in names))
    lines = [f"stats {key} ({dim} dim{'s' if dim != 1 else ''}):",
             f"  {'':<{width}} " + " ".join(f"{s:>10}" for s in arrays)]
    for i, name in enumerate(names):
        lines.append(f"  {name:<{width}} " + " ".join(f"{_num(a[i]):>10}" for a in arrays.values()))
    return lines


def format_summary(summary: dict) -> str:
    lines = [
        f"store:        {summary['path']}",
        f"episodes:     {summary['episodes']}",
        f"steps:        {summary['steps']} (mean {summary['mean_length']:.1f} per episode)",
        f"success rate: {summary['success_rate']:.1%}",
    ]
    for field in RECORDED_FIELDS:
        counts = summary.get("recorded", {}).get(field)
        if not counts:
            continue
        if len(counts) == 1:
            text = next(iter(counts))
        else:  # a mixed store: every value with its episode count
            text = ", ".join(f"{v} ({n} episode{'s' if n != 1 else ''})" for v, n in counts.items())
        lines.append(f"{_LABELS[field] + ':':<14}{text}")
    lines.append("keys:")
    for key, shape in summary["keys"].items():
        lines.append(f"  {key:<16} {tuple(shape)}")
    if summary["corrupt"]:
        lines.append(f"corrupt files skipped ({len(summary['corrupt'])}):")
        for name in summary["corrupt"]:
            lines.append(f"  {summary['corrupt_reasons'][name]}")
    stats = summary.get("stats", {})
    order = {"state": 0, "action": 1, "reward": 2}  # the cached index keeps keys sorted; show them in reading order
    for key in sorted(stats, key=lambda k: (order.get(k, 3), k)):
        d = stats[key]
        lines.extend(format_stats(key, d, summary.get("stat_names", {}).get(key)))
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
