"""Scalar logger shared by the training loops: a long-format CSV (step, tag, value, wall) + TensorBoard.

The CSV is what ``robolearn plot`` reads. On resume, rows after the checkpoint step are dropped
(rewritten atomically) so a run killed and resumed shows one continuous curve, not a doubled tail.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

CSV_NAME = "scalars.csv"
HEADER = ["step", "tag", "value", "wall_time"]


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


def read_scalars(path: str | Path) -> list[dict]:
    """All rows of a scalars.csv; a torn last line (killed mid-write) is ignored."""
    path = Path(path)
    if path.is_dir():
        path = path / CSV_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no scalar log at {path}")
    rows = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            try:
                rows.append({"step": int(r["step"]), "tag": r["tag"], "value": float(r["value"]),
                             "wall_time": r.get("wall_time") or ""})
            except (TypeError, ValueError):
                continue
    return rows


def series(path: str | Path, tag: str) -> tuple[list[int], list[float]]:
    rows = [r for r in read_scalars(path) if r["tag"] == tag]
    rows.sort(key=lambda r: r["step"])
    return [r["step"] for r in rows], [r["value"] for r in rows]
