"""Shared benchmark plumbing: machine description, medians, atomic JSON output."""
from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

from robolearn.data.fsutil import atomic_write_json


def machine_info() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        import mujoco

        info["mujoco"] = mujoco.__version__
    except ImportError:
        pass
    return info


def rate(fn: Callable[[], None], n: int) -> float:
    """Calls per second of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def median(values) -> float:
    return float(statistics.median(values))


def write_json(result: dict, path: str | Path) -> Path:
    """Write a benchmark result atomically (an interrupted run never leaves a truncated JSON); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(path, result, indent=2)
