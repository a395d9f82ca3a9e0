"""Scalar logger shared by every trainer (BC, distillation, RL): a long-format CSV (step, tag, value,
wall_time) + TensorBoard.

One format for all runs so that ``robolearn plot``, ``experiment compare`` and notebooks read any run the
same way: ``load_scalars(run)`` gives ``{tag: (steps, values)}`` for a run folder, a checkpoint inside it
or the CSV itself. On resume, rows after the checkpoint step are dropped (rewritten atomically) so a run
killed and resumed shows one continuous curve, not a doubled tail.
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

CSV_NAME = "scalars.csv"
HEADER = ["step", "tag", "value", "wall_time"]
LEGACY_BC_LOG = "log.jsonl"  # BC runs written before the CSV: {"step", "loss", "samples_per_s"} per line
_SEARCH_UP = 3  # a checkpoint sits at most this deep in its run: run/checkpoints/step_N/policy


class ScalarLogger:
    def __init__(self, run_dir: str | Path, purge_after: int | None = None, tensorboard: bool = True,
                 purge_after_by_prefix: dict[str, int] | None = None):
        """``purge_after``: drop rows logged after this step (a resume); tags starting with a prefix in
        ``purge_after_by_prefix`` have their own step axis (e.g. offline updates) and their own bound."""
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / CSV_NAME
        self._prefix_bounds = dict(purge_after_by_prefix or {})
        if purge_after is not None and self.path.exists():
            self._truncate(purge_after)
        new = not self.path.exists()
        self._fh = self.path.open("a", newline="")
        self._csv = csv.writer(self._fh)
        if new:
            self._csv.writerow(HEADER)
            self._fh.flush()
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.dir / "tb"),
                                         purge_step=None if purge_after is None else max(purge_after, 0))
            except ImportError:  # tensorboard is a dependency, but the CSV alone is enough to plot
                self._tb = None

    def _truncate(self, step: int) -> None:
        import io

        from robolearn.data.fsutil import atomic_write_text

        rows = read_scalars(self.path)
        buf = io.StringIO(newline="")
        w = csv.writer(buf)
        w.writerow(HEADER)
        for r in rows:
            bound = next((b for p, b in self._prefix_bounds.items() if r["tag"].startswith(p)), step)
            if r["step"] <= bound:
                w.writerow([r["step"], r["tag"], repr(r["value"]), r["wall_time"]])
        atomic_write_text(self.path, buf.getvalue())

    def log(self, step: int, scalars: dict[str, float]) -> None:
        now = time.time()
        for tag, value in scalars.items():
            value = float(value)
            self._csv.writerow([int(step), tag, repr(value), f"{now:.3f}"])
            if self._tb is not None:
                self._tb.add_scalar(tag, value, int(step), walltime=now)
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def find_scalar_log(path: str | Path) -> Path:
    """The scalar log of the run ``path`` names: the CSV itself, a run folder, or a folder inside a run
    (``run/checkpoint``, ``run/checkpoints/step_N``) -- users point at whichever they have at hand."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(f"no run at {path}")
    # walk up lexically (runs/x/checkpoint -> runs/x), so paths in messages keep the user's spelling
    ups = [Path(os.path.normpath(path / ("../" * n))) for n in range(_SEARCH_UP + 1)]
    for d in ups:
        for name in (CSV_NAME, LEGACY_BC_LOG):
            if (d / name).is_file():
                return d / name
    raise FileNotFoundError(f"no scalar log ({CSV_NAME}) in {path} or the {_SEARCH_UP} folders above it; "
                            f"{path} holds: {_listing(path)}")


def _listing(path: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    if not names:
        return "nothing (it is empty)"
    return ", ".join(names[:12]) + (f", ... ({len(names)} entries)" if len(names) > 12 else "")


def read_scalars(path: str | Path) -> list[dict]:
    """All rows of a run's scalar log (see ``find_scalar_log``); a torn last line (killed mid-write) is
    ignored. A BC run from before the CSV (``log.jsonl``) reads as its ``train/*`` rows."""
    path = Path(path)
    if path.is_dir() or not path.exists():
        path = find_scalar_log(path)
    if not path.is_file():
        raise FileNotFoundError(f"no scalar log at {path}")
    if path.name == LEGACY_BC_LOG:
        return _read_legacy_bc_log(path)
    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                rows.append({"step": int(r["step"]), "tag": r["tag"], "value": float(r["value"]),
                             "wall_time": r.get("wall_time") or ""})
            except (TypeError, ValueError):
                continue
    return rows


def _read_legacy_bc_log(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            doc = json.loads(line)
            step = int(doc["step"])
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line
        for key, value in doc.items():
            if key != "step" and isinstance(value, (int, float)):
                rows.append({"step": step, "tag": f"train/{key}", "value": float(value), "wall_time": ""})
    return rows


def migrate_legacy_bc_log(run_dir: str | Path) -> bool:
    """Give a BC run from before the CSV its ``scalars.csv`` (from ``log.jsonl``), so that resuming it
    appends to one continuous log; returns whether it converted anything."""
    import io

    from robolearn.data.fsutil import atomic_write_text

    run_dir = Path(run_dir)
    legacy, csv_path = run_dir / LEGACY_BC_LOG, run_dir / CSV_NAME
    if csv_path.exists() or not legacy.is_file():
        return False
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(HEADER)
    for r in _read_legacy_bc_log(legacy):
        w.writerow([r["step"], r["tag"], repr(r["value"]), r["wall_time"]])
    atomic_write_text(csv_path, buf.getvalue())
    return True


def load_scalars(run: str | Path) -> dict[str, tuple[list[int], list[float]]]:
    """``{tag: (steps, values)}`` of a run (folder, checkpoint inside it, or CSV), steps ascending.

    A step logged twice (a resumed run that could not truncate, or a repeated evaluation) keeps its
    last value, so a curve never doubles back."""
    by_tag: dict[str, dict[int, float]] = {}
    for r in read_scalars(run):
        by_tag.setdefault(r["tag"], {})[r["step"]] = r["value"]
    return {tag: (sorted(v), [v[s] for s in sorted(v)]) for tag, v in sorted(by_tag.items())}


def series(path: str | Path, tag: str) -> tuple[list[int], list[float]]:
    rows = [r for r in read_scalars(path) if r["tag"] == tag]
    rows.sort(key=lambda r: r["step"])
    return [r["step"] for r in rows], [r["value"] for r in rows]
