"""Loop statistics: tick lateness (jitter), missed deadlines, inference latency, queue depth."""
from __future__ import annotations

import threading

import numpy as np


class Ring:
    """A preallocated float ring buffer (the loop never allocates while running)."""

    def __init__(self, capacity: int = 1 << 16):
        self.buf = np.zeros(capacity, dtype=np.float64)
        self.n = 0

    def add(self, x: float) -> None:
        self.buf[self.n % self.buf.shape[0]] = x
        self.n += 1

    def values(self) -> np.ndarray:
        return self.buf[: min(self.n, self.buf.shape[0])].copy()


def summarize(x: np.ndarray, scale: float = 1e3) -> dict:
    """p50/p99/max/mean of ``x`` times ``scale`` (seconds -> ms by default); empty -> count 0."""
    if x.size == 0:
        return {"count": 0}
    return {
        "count": int(x.size),
        "p50": float(np.percentile(x, 50) * scale),
        "p99": float(np.percentile(x, 99) * scale),
        "max": float(np.max(x) * scale),
        "mean": float(np.mean(x) * scale),
    }


class LoopStats:
    def __init__(self, period: float, capacity: int = 1 << 16):
        self.period = period
        self.lateness = Ring(capacity)  # tick start - scheduled deadline (s)
        self.work = Ring(capacity)  # time spent inside a tick (s)
        self.inference = Ring(capacity)  # policy.act latency (s)
        self.depth = Ring(capacity)  # queue depth (policy steps) at each policy step
        self.obs_age = Ring(capacity)  # command time - time the observation it used was received (s)
        self.ticks = 0
        self.missed = 0
        self.dry = 0
        self.stale = 0
        self.published = 0
        self.bad_chunks = 0
        self.obs_not_ready = 0  # inference skipped: part of the observation had not arrived yet
        self.lock = threading.Lock()

    def tick(self, lateness: float, work: float) -> None:
        self.ticks += 1
        self.lateness.add(lateness)
        self.work.add(work)
        if lateness > self.period or lateness + work > self.period:
            self.missed += 1

    def add_inference(self, seconds: float) -> None:
        with self.lock:
            self.inference.add(seconds)

    def as_dict(self) -> dict:
        with self.lock:
            inference = self.inference.values()
        return {
            "period_ms": self.period * 1e3,
            "ticks": self.ticks,
            "missed_deadlines": self.missed,
            "jitter_ms": summarize(np.abs(self.lateness.values())),
            "tick_work_ms": summarize(self.work.values()),
            "inference_ms": summarize(inference),
            "queue_depth": summarize(self.depth.values(), scale=1.0),
            "obs_age_ms": summarize(self.obs_age.values()),
            "queue_dry_ticks": self.dry,
            "stale_obs_ticks": self.stale,
            "published": self.published,
            "bad_chunks": self.bad_chunks,
            "obs_not_ready": self.obs_not_ready,
        }

    def format(self) -> str:
        d = self.as_dict()
        j, inf, q = d["jitter_ms"], d["inference_ms"], d["queue_depth"]

        def f(s: dict, key: str) -> str:
            return f"{s[key]:.3f}" if key in s else "-"
        return (f"ticks {d['ticks']}  missed {d['missed_deadlines']}  jitter p50/p99/max "
                f"{f(j, 'p50')}/{f(j, 'p99')}/{f(j, 'max')} ms  inference p50/p99 {f(inf, 'p50')}/{f(inf, 'p99')} ms  "
                f"queue p50 {f(q, 'p50')}  dry {d['queue_dry_ticks']}  stale {d['stale_obs_ticks']}  "
                f"published {d['published']}")
