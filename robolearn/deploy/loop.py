"""The fixed-rate controller loop: never waits on inference.

Transport-independent: a transport feeds :meth:`ControllerLoop.on_state`, :meth:`set_enabled` and
:meth:`set_estop` from its subscriptions, and passes a ``publish(q, gripper)`` callable that puts a
joint command on the wire. A background worker runs the policy whenever the action-chunk queue falls
to ``refill_threshold`` policy steps, and merges the chunk into the queue (see ``chunk_queue``).
The loop interpolates between policy-step targets at the command rate, and every command passes the
:class:`~robolearn.deploy.safety.SafetyFilter`. A stale observation (more than ``stale_periods``
periods old) or a dry queue makes the loop hold at the measured position.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from robolearn.deploy.chunk_queue import ActionQueue
from robolearn.deploy.inference import ObservationNotReady
from robolearn.deploy.safety import SafetyFilter, SafetyLimits, is_stale
from robolearn.deploy.stats import LoopStats


class Policy(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: dict) -> np.ndarray: ...


@dataclass
class RobotState:
    """One joint-state sample as the transport received it."""

    q: np.ndarray
    dq: np.ndarray
    received: float  # time.monotonic() at reception
    stamp: float = 0.0  # the sender's header stamp (wall clock, s)
    gripper: float | None = None
    extras: dict = field(default_factory=dict)  # e.g. {"object_pose": (pos, quat)}, {"images": {...}}


@dataclass
class LoopConfig:
    command_hz: float = 100.0
    policy_hz: float = 20.0
    refill_threshold: int = 4  # request the next chunk when this many policy steps are left
    new_weight: float = 0.5  # weight of the new chunk on overlapping steps (1.0 = replace)
    freeze: int = 0  # RTC-style: keep the first `freeze` queued steps untouched
    stale_periods: float = 3.0
    max_joint_velocity: float = 1.0  # rad/s, becomes the per-tick rate limit
    max_gripper_rate: float = 20.0  # gripper units/s
    joint_margin: float = 0.0  # rad kept away from the limits
    spin_s: float = 0.0003  # busy-wait the last part of each sleep for low jitter
    rt_priority: int = 0  # > 0: run the loop thread SCHED_FIFO at this priority (needs CAP_SYS_NICE)
    inference_nice: int = 0  # > 0: lower the inference thread's priority by this much

    def __post_init__(self) -> None:
        if self.command_hz <= 0 or self.policy_hz <= 0:
            raise ValueError("command_hz and policy_hz must be positive")
        ratio = self.command_hz / self.policy_hz
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError(f"command_hz ({self.command_hz}) must be a whole multiple of policy_hz ({self.policy_hz})")
        if self.refill_threshold < 0 or self.freeze < 0:
            raise ValueError("refill_threshold and freeze must be >= 0")
        if not 0.0 <= self.new_weight <= 1.0:
            raise ValueError("new_weight must be in [0, 1]")
        if not 0 <= self.rt_priority <= 99 or not 0 <= self.inference_nice <= 19:
            raise ValueError("rt_priority must be in [0, 99] and inference_nice in [0, 19]")
        if self.stale_periods <= 0 or self.max_joint_velocity <= 0 or self.max_gripper_rate <= 0:
            raise ValueError("stale_periods, max_joint_velocity and max_gripper_rate must be positive")

    @property
    def period(self) -> float:
        return 1.0 / self.command_hz

    @property
    def ticks_per_step(self) -> int:
        return int(round(self.command_hz / self.policy_hz))


Publish = Callable[[np.ndarray, "float | None"], None]


class ControllerLoop:
    """``inference`` (see robolearn.deploy.inference) defaults to running ``policy`` in a worker thread."""

    def __init__(self, policy: Policy | None, mapper: Any, obs_builder: Any, publish: Publish,
                 lower, upper, cfg: LoopConfig | None = None, inference: Any = None):
        from robolearn.deploy.inference import LocalInference

        self.cfg = cfg or LoopConfig()
        self.policy = policy
        self.inference = inference or LocalInference(policy, obs_builder, mapper)
        self._publish = publish
        period = self.cfg.period
        self.filter = SafetyFilter(SafetyLimits(
            lower=lower, upper=upper, max_step=self.cfg.max_joint_velocity * period,
            margin=self.cfg.joint_margin, max_gripper_step=self.cfg.max_gripper_rate * period))
        self.n_joints = len(lower)
        self.queue = ActionQueue(self.inference.command_dim, self.cfg.new_weight, self.cfg.freeze)
        self.stats = LoopStats(period)
        self._state: RobotState | None = None
        self._state_lock = threading.Lock()
        self._pub_lock = threading.Lock()
        self._need = threading.Event()
        self._running = threading.Event()
        self._generation = 0  # bumps on enable / e-stop so in-flight inference results are dropped
        self._tick = 0
        self._segment: tuple[np.ndarray, np.ndarray, float | None] | None = None  # (start, end, gripper)
        self._hold_q: np.ndarray | None = None
        self._observe_pending = False
        self._reset_pending = False
        self.sent_obs_stamp = 0.0  # header stamp of the observation behind the last command (latency)
        self._threads: list[threading.Thread] = []
        self.mode = "disabled"  # disabled | estop | hold | run
        self.last_error = ""
        self.scheduling = {"loop": "default", "inference": "default"}

    # ---- inputs from the transport -------------------------------------------------------------
    def on_state(self, state: RobotState) -> None:
        with self._state_lock:
            self._state = state

    def latest_state(self) -> RobotState | None:
        with self._state_lock:
            return self._state

    def set_enabled(self, on: bool) -> None:
        was = self.filter.active
        self.filter.set_enabled(on)
        if self.filter.active and not was:
            self._generation += 1
            self.queue.clear()
            self._segment = None
            self._hold_q = None
            self._reset_pending = True  # done by the worker: it owns the policy
            self._need.set()

    def set_estop(self, on: bool) -> None:
        """E-stop: latch, drop queued actions, and command a hold right now (not at the next tick)."""
        if not on:
            self.filter.set_estop(False)
            return
        self.filter.set_estop(True)
        self._generation += 1
        self.queue.clear()
        self._segment = None
        state = self.latest_state()
        if state is not None:
            self._send(self.filter.hold(state.q), None, estop_hold=True)

    # ---- output ----------------------------------------------------------------------------------
    def _send(self, q: np.ndarray, gripper: float | None, estop_hold: bool = False) -> bool:
        """Publish unless disabled / e-stopped meanwhile. The check and the publish share a lock with the
        e-stop's own hold, so that hold is always the last command on the wire."""
        with self._pub_lock:
            if not estop_hold and not self.filter.active:
                return False
            self._publish(q, gripper)
            self.stats.published += 1
            return True

    # ---- one tick ----------------------------------------------------------------------------------
    def step(self, now: float | None = None) -> str:
        """Run one control tick (the thread calls this at the command rate; tests may call it directly)."""
        now = time.monotonic() if now is None else now
        cfg = self.cfg
        tick = self._tick
        self._tick += 1
        boundary = tick % cfg.ticks_per_step == 0
        if not self.filter.active:
            if boundary:
                self.queue.pop()  # keep policy time moving while disabled
            self.mode = "estop" if self.filter.estopped else "disabled"
            return self.mode
        state = self.latest_state()
        if state is None or is_stale(now, state.received, cfg.period, cfg.stale_periods):
            self.stats.stale += 1
            if boundary:
                self.queue.pop()
            return self._hold(state)
        if boundary:
            depth = self.queue.depth()
            self.stats.depth.add(depth)
            action = self.queue.pop()
            self._observe_pending = True  # policies with an observation history see every policy step
            self._need.set()
            if action is None:
                self._segment = None
            else:
                n = self.n_joints
                grip = float(action[n]) if action.shape[0] > n else None
                start = self.filter.last if self.filter.last is not None else np.asarray(state.q, np.float64)
                self._segment = (np.array(start, np.float64), action[:n], grip)
        if self._segment is None:
            self.stats.dry += 1
            return self._hold(state)
        start, end, grip = self._segment
        frac = (tick % cfg.ticks_per_step + 1) / cfg.ticks_per_step
        q_cmd, g_cmd = self.filter.filter(start + (end - start) * frac, state.q, grip)
        self._hold_q = None
        self.stats.obs_age.add(now - state.received)
        self.sent_obs_stamp = state.stamp
        self._send(q_cmd, g_cmd)
        self.mode = "run"
        return self.mode

    def _hold(self, state: RobotState | None) -> str:
        self.mode = "hold"
        if state is None:
            return self.mode  # nothing measured yet: nothing to hold at, send nothing
        if self._hold_q is None:
            self._hold_q = self.filter.hold(state.q)  # latch the measured position once
        else:
            self.filter.counters.holds += 1
        self.sent_obs_stamp = state.stamp
        self._send(self._hold_q, self.filter.last_gripper)
        return self.mode

    # ---- threads -----------------------------------------------------------------------------------
    def _worker(self) -> None:
        cfg = self.cfg
        if cfg.inference_nice > 0:
            try:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), cfg.inference_nice)
                self.scheduling["inference"] = f"nice +{cfg.inference_nice}"
            except (OSError, AttributeError) as exc:
                self.scheduling["inference"] = f"default (nice failed: {exc})"
        while self._running.is_set():
            self._need.wait(timeout=cfg.period)
            self._need.clear()
            if not self._running.is_set() or not self.filter.active:
                continue
            state = self.latest_state()
            if state is None or is_stale(time.monotonic(), state.received, cfg.period, cfg.stale_periods):
                continue
            if self._reset_pending:
                self._reset_pending = False
                try:
                    self.inference.reset()
                except Exception as exc:
                    self.last_error = f"policy reset: {exc}"
            if self.queue.depth() > cfg.refill_threshold:
                if self._observe_pending:  # policies with an observation history see every step
                    self._observe_pending = False
                    try:
                        self.inference.observe(state)
                    except Exception as exc:
                        self.last_error = f"observe: {exc}"
                continue
            self._observe_pending = False  # act() observes this step itself
            generation = self._generation
            start_step = self.queue.next_step
            last = self.filter.last
            t0 = time.perf_counter()
            try:
                targets = self.inference.infer(state, None if last is None else last.copy())
            except ObservationNotReady as exc:
                self.stats.obs_not_ready += 1
                self.last_error = f"waiting: {exc}"
                time.sleep(cfg.period)
                continue
            except Exception as exc:
                if not self._running.is_set():
                    break  # stopping: the inference process was closed under us
                self.stats.bad_chunks += 1
                self.last_error = f"inference: {exc}"
                continue
            finally:
                self.stats.add_inference(time.perf_counter() - t0)
            if generation == self._generation and self.filter.active:
                self.queue.merge(targets, start_step)

    def _loop(self) -> None:
        period, spin = self.cfg.period, self.cfg.spin_s
        if self.cfg.rt_priority > 0:
            self._go_realtime(self.cfg.rt_priority)
        next_t = time.perf_counter()
        while self._running.is_set():
            remaining = next_t - time.perf_counter()
            if remaining > spin:
                time.sleep(remaining - spin)
            while time.perf_counter() < next_t:
                pass
            start = time.perf_counter()
            lateness = start - next_t
            try:
                self.step()
            except Exception as exc:  # the loop must keep ticking; the filter already held
                self.last_error = f"tick: {exc!r}"
            work = time.perf_counter() - start
            self.stats.tick(lateness, work)
            next_t += period
            if time.perf_counter() > next_t:  # overran: skip the missed ticks instead of bursting
                missed = int((time.perf_counter() - next_t) / period) + 1
                next_t += missed * period

    def _go_realtime(self, prio: int) -> None:
        """SCHED_FIFO for the loop thread, and one level lower for every other thread of the process.

        The other threads (DDS listeners, the inference client) take the GIL briefly; left at normal
        priority they can be preempted while holding it and stall the loop (priority inversion).
        """
        me = threading.get_native_id()
        try:
            os.sched_setscheduler(me, os.SCHED_FIFO, os.sched_param(prio))
        except (OSError, AttributeError) as exc:  # no CAP_SYS_NICE: run anyway, say so
            self.scheduling["loop"] = f"default (SCHED_FIFO refused: {exc})"
            return
        self.scheduling["loop"] = f"SCHED_FIFO {prio}"
        others = 0
        try:
            tids = [int(t) for t in os.listdir("/proc/self/task")]
        except OSError:
            tids = []
        for tid in tids:
            if tid == me:
                continue
            try:
                os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(max(1, prio - 1)))
                others += 1
            except OSError:
                pass
        self.scheduling["other_threads"] = f"SCHED_FIFO {max(1, prio - 1)} x{others}"

    def start(self) -> "ControllerLoop":
        if self._running.is_set():
            return self
        self._running.set()
        self._threads = [threading.Thread(target=self._loop, name="control-loop", daemon=True),
                         threading.Thread(target=self._worker, name="inference", daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self._running.clear()
        self._need.set()
        self._threads[0].join(timeout=timeout) if self._threads else None
        try:
            self.inference.close()  # a child process is stopped, which also frees a blocked worker
        except Exception:
            pass
        for t in self._threads[1:]:
            t.join(timeout=timeout)  # a stalled in-process policy leaves its daemon thread behind

    def report(self) -> dict:
        d = self.stats.as_dict()
        d["safety"] = self.filter.counters.as_dict()
        d["mode"] = self.mode
        d["scheduling"] = dict(self.scheduling)
        d["last_error"] = self.last_error or self.filter.last_error
        return d
