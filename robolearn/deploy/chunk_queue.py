"""The action-chunk queue between the inference worker and the fixed-rate loop.

Actions are keyed by absolute policy step. A new chunk computed from the observation at step ``s``
covers steps ``s, s+1, ...``; the steps already executed while inference ran are dropped, the steps
still queued are blended with the new ones (LeRobot-style aggregation), and optionally the first
``freeze`` queued steps keep their old value (RTC-style: they will surely run before the next chunk).
"""
from __future__ import annotations

import threading

import numpy as np


def merge_chunk(queued: dict[int, np.ndarray], next_step: int, chunk: np.ndarray, start_step: int,
                new_weight: float = 0.5, freeze: int = 0) -> dict[int, np.ndarray]:
    """Pure merge of ``chunk`` (H, A) starting at ``start_step`` into ``queued`` (step -> action).

    Steps < ``next_step`` are in the past and dropped. On an overlap step ``s``:
    ``s < next_step + freeze`` keeps the old action, otherwise ``(1 - w) * old + w * new``.
    """
    if not 0.0 <= new_weight <= 1.0:
        raise ValueError(f"new_weight must be in [0, 1], got {new_weight}")
    out = {s: a for s, a in queued.items() if s >= next_step}
    for i, action in enumerate(np.asarray(chunk, dtype=np.float64)):
        s = start_step + i
        if s < next_step:
            continue
        old = out.get(s)
        if old is None:
            out[s] = action.copy()
        elif s >= next_step + freeze:
            out[s] = (1.0 - new_weight) * old + new_weight * action
    return out


class ActionQueue:
    """Thread-safe queue of policy-step actions; the loop pops, the worker merges."""

    def __init__(self, action_dim: int, new_weight: float = 0.5, freeze: int = 0):
        self.action_dim = action_dim
        self.new_weight = new_weight
        self.freeze = freeze
        self._queued: dict[int, np.ndarray] = {}
        self._next_step = 0
        self._lock = threading.Lock()
        self.chunks_merged = 0

    @property
    def next_step(self) -> int:
        with self._lock:
            return self._next_step

    def depth(self) -> int:
        with self._lock:
            return sum(1 for s in self._queued if s >= self._next_step)

    def merge(self, chunk: np.ndarray, start_step: int) -> int:
        """Merge a chunk; returns how many of its steps were already in the past."""
        chunk = np.asarray(chunk)
        if chunk.ndim != 2 or chunk.shape[1] != self.action_dim:
            raise ValueError(f"action chunk: expected shape (H, {self.action_dim}), got {chunk.shape}")
        with self._lock:
            self._queued = merge_chunk(self._queued, self._next_step, chunk, start_step,
                                       self.new_weight, self.freeze)
            self.chunks_merged += 1
            return max(0, self._next_step - start_step)

    def pop(self) -> np.ndarray | None:
        """The action for the next step, or None when the queue ran dry (the step still advances)."""
        with self._lock:
            step = self._next_step
            self._next_step += 1
            return self._queued.pop(step, None)

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()
