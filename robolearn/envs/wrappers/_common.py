"""Small helpers the wrappers share: config checks and observation-dict copies."""
from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def copy_obs(obs: Any) -> Any:
    """Deep copy of a (nested) observation dict of arrays, so buffers never alias env memory."""
    if isinstance(obs, dict):
        return {k: copy_obs(v) for k, v in obs.items()}
    return np.array(obs, copy=True)


def map_obs(fn, a: Any, *rest: Any) -> Any:
    """Apply ``fn`` leaf-wise over matching nested dicts."""
    if isinstance(a, dict):
        return {k: map_obs(fn, a[k], *(r[k] for r in rest)) for k in a}
    return fn(a, *rest)
