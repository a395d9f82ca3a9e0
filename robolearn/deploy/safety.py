"""The safety filter every command passes before it reaches the wire.

The math is pure functions (tested against hand-computed values); :class:`SafetyFilter` holds the
little state they need: enable / e-stop latch, the last command sent (for the rate limit) and counters.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np


class UnsafeCommandError(ValueError):
    """A command that cannot be made safe by clamping (wrong shape, NaN/inf)."""


def check_vector(x, size: int, what: str = "command") -> np.ndarray:
    """Return ``x`` as a float64 vector of ``size`` entries, or raise naming the problem."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UnsafeCommandError(f"{what}: not numeric ({exc})") from None
    if arr.shape != (size,):
        raise UnsafeCommandError(f"{what}: expected shape ({size},), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr)).tolist()
        raise UnsafeCommandError(f"{what}: non-finite value(s) at index {bad}")
    return arr


def clamp_joints(q: np.ndarray, lower: np.ndarray, upper: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Clip joint positions into [lower + margin, upper - margin]."""
    return np.clip(q, np.asarray(lower) + margin, np.asarray(upper) - margin)


def clamp_workspace(pos: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Clip a Cartesian position into the workspace box."""
    return np.clip(pos, low, high)


def rate_limit(target: np.ndarray, last: np.ndarray, max_step) -> np.ndarray:
    """Move from ``last`` towards ``target`` by at most ``max_step`` per joint (scalar or per-joint)."""
    step = np.clip(np.asarray(target) - np.asarray(last), -np.asarray(max_step), np.asarray(max_step))
    return np.asarray(last) + step


def is_stale(now: float, last_obs_time: float | None, period: float, periods: float = 3.0) -> bool:
    """True when no observation arrived for more than ``periods`` control periods (or ever)."""
    return last_obs_time is None or (now - last_obs_time) > periods * period


@dataclass
class SafetyLimits:
    lower: np.ndarray
    upper: np.ndarray
    max_step: np.ndarray  # per tick, per joint (rad)
    margin: float = 0.0
    max_gripper_step: float = 0.2  # per tick, gripper command units ([-1, 1])

    def __post_init__(self) -> None:
        self.lower = np.asarray(self.lower, dtype=np.float64)
        self.upper = np.asarray(self.upper, dtype=np.float64)
        self.max_step = np.broadcast_to(np.asarray(self.max_step, dtype=np.float64), self.lower.shape).copy()
        if self.lower.shape != self.upper.shape or self.lower.ndim != 1:
            raise ValueError("safety limits: lower/upper must be 1-D and the same length")
        if np.any(self.lower + self.margin >= self.upper - self.margin):
            raise ValueError("safety limits: lower + margin must be < upper - margin on every joint")
        if np.any(self.max_step <= 0):
            raise ValueError("safety limits: max_step must be positive")


@dataclass
class SafetyCounters:
    rejected: int = 0  # NaN / shape: replaced by a hold
    clamped_limits: int = 0  # ticks where a joint limit clipped the command
    rate_limited: int = 0  # ticks where the rate limit clipped the command
    holds: int = 0  # ticks that commanded a watchdog hold
    estops: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SafetyFilter:
    """Stateful wrapper over the pure functions. Starts disabled; e-stop latches until cleared."""

    limits: SafetyLimits
    enabled: bool = False
    estopped: bool = False
    last: np.ndarray | None = None  # last joint command that went out
    last_gripper: float | None = None
    counters: SafetyCounters = field(default_factory=SafetyCounters)
    last_error: str = ""

    def __post_init__(self) -> None:
        self.lock = threading.RLock()

    @property
    def n(self) -> int:
        return self.limits.lower.shape[0]

    @property
    def active(self) -> bool:
        return self.enabled and not self.estopped

    def set_enabled(self, on: bool) -> None:
        with self.lock:
            if on and self.estopped:
                return  # e-stop must be cleared first
            if on and not self.enabled:
                self.last = None  # the rate limit restarts from the measured position
                self.last_gripper = None
            self.enabled = bool(on)

    def set_estop(self, on: bool) -> None:
        with self.lock:
            if on:
                if not self.estopped:
                    self.counters.estops += 1
                self.estopped = True
                self.enabled = False
            else:
                self.estopped = False  # stays disabled until enabled again

    def hold(self, q_measured) -> np.ndarray:
        """A hold at the measured position (clamped into limits); resets the rate-limit reference."""
        q = clamp_joints(check_vector(q_measured, self.n, "measured position"), self.limits.lower, self.limits.upper)
        with self.lock:
            self.counters.holds += 1
            self.last = q.copy()
        return q

    def filter(self, q_target, q_measured, gripper: float | None = None) -> tuple[np.ndarray, float | None]:
        """Shape/NaN check, joint clamp, rate limit; a rejected target becomes a hold at the measured position."""
        with self.lock:
            try:
                q = check_vector(q_target, self.n, "joint target")
                if gripper is not None:
                    g = float(check_vector([gripper], 1, "gripper command")[0])
            except UnsafeCommandError as exc:
                self.counters.rejected += 1
                self.last_error = str(exc)
                return self.hold(q_measured), self.last_gripper
            clamped = clamp_joints(q, self.limits.lower, self.limits.upper, self.limits.margin)
            if not np.array_equal(clamped, q):
                self.counters.clamped_limits += 1
            ref = self.last if self.last is not None else clamp_joints(
                check_vector(q_measured, self.n, "measured position"), self.limits.lower, self.limits.upper)
            out = rate_limit(clamped, ref, self.limits.max_step)
            if not np.array_equal(out, clamped):
                self.counters.rate_limited += 1
            self.last = out
            if gripper is not None:
                g = float(np.clip(g, -1.0, 1.0))
                if self.last_gripper is not None:
                    g = float(rate_limit(g, self.last_gripper, self.limits.max_gripper_step))
                self.last_gripper = g
                return out, g
            return out, None
