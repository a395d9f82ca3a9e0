"""The controller-loop core without a transport: ticks driven by hand (deterministic) and threaded."""
import threading
import time

import numpy as np
import pytest

from robolearn.deploy.action_map import JointPositionMapper, JointStateObs
from robolearn.deploy.loop import ControllerLoop, LoopConfig, RobotState


class RampPolicy:
    """A real (tiny, deterministic) policy: each chunk steps joint targets up by `inc` per action."""

    def __init__(self, horizon=8, inc=0.01, n=2):
        self.horizon, self.inc, self.n = horizon, inc, n
        self.calls = 0

    def reset(self):
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        q = obs["state"][: self.n].astype(np.float64)
        steps = np.arange(1, self.horizon + 1)[:, None] * self.inc
        return q[None, :] + steps


class StallingPolicy(RampPolicy):
    """Answers `budget` times, then blocks (a hung inference server / GPU)."""

    def __init__(self, budget=1, **kw):
        super().__init__(**kw)
        self.budget = budget
        self.release = threading.Event()

    def act(self, obs):
        if self.calls >= self.budget:
            self.release.wait(30)
        return super().act(obs)


class NaNPolicy(RampPolicy):
    def act(self, obs):
        out = super().act(obs)
        out[2, 0] = np.nan
        return out


def make_loop(policy, **cfg):
    sent = []
    mapper = JointPositionMapper(lower=[-1, -1], upper=[1, 1], gripper=False)
    loop = ControllerLoop(policy, mapper, JointStateObs(), lambda q, g: sent.append((time.monotonic(), q.copy())),
                          lower=[-1, -1], upper=[1, 1], cfg=LoopConfig(**cfg))
    return loop, sent


def state(q, t):
    return RobotState(q=np.asarray(q, float), dq=np.zeros(2), received=t)


def test_nothing_is_sent_until_enabled():
    loop, sent = make_loop(RampPolicy())
    loop.queue.merge(np.full((4, 2), 0.5), 0)
    for k in range(20):
        loop.on_state(state([0, 0], k * 0.01))
        assert loop.step(now=k * 0.01) == "disabled"
    assert sent == []


def test_interpolates_between_policy_steps_under_rate_limit():
    loop, sent = make_loop(RampPolicy(), command_hz=100, policy_hz=20, max_joint_velocity=1.0)
    loop.set_enabled(True)
    loop.queue.merge(np.array([[0.05, -0.5]]), start_step=0)
    for k in range(5):
        loop.on_state(state([0, 0], k * 0.01))
        assert loop.step(now=k * 0.01) == "run"
    got = np.array([q for _, q in sent])
    # joint 0: 0.05 spread over 5 ticks; joint 1: wants -0.1 per tick, limited to 0.01 (1 rad/s at 100 Hz)
    np.testing.assert_allclose(got[:, 0], [0.01, 0.02, 0.03, 0.04, 0.05])
    np.testing.assert_allclose(got[:, 1], [-0.01, -0.02, -0.03, -0.04, -0.05])
    assert loop.filter.counters.rate_limited == 5


def test_stale_observation_holds_at_measured_position():
    loop, sent = make_loop(RampPolicy())
    loop.set_enabled(True)
    loop.queue.merge(np.full((10, 2), 0.5), 0)
    loop.on_state(state([0.2, -0.1], 0.0))
    assert loop.step(now=0.0) == "run"
    assert loop.step(now=0.029) == "run"  # 2.9 periods old: still fresh
    assert loop.step(now=0.0301) == "hold"  # > 3 periods: hold at the measured position
    np.testing.assert_allclose(sent[-1][1], [0.2, -0.1])
    assert loop.stats.stale == 1


def test_dry_queue_holds_and_out_of_limit_is_clamped():
    loop, sent = make_loop(RampPolicy(), max_joint_velocity=100.0)
    loop.set_enabled(True)
    loop.queue.merge(np.array([[3.0, -3.0]]), 0)  # joint-position mapper clips to [-1, 1]
    for k in range(5):
        loop.on_state(state([0.9, -0.9], k * 0.01))
        loop.step(now=k * 0.01)
    assert max(abs(q).max() for _, q in sent) <= 1.0
    loop.on_state(state([0.7, -0.6], 0.05))
    assert loop.step(now=0.05) == "hold"  # queue dry at the next policy step
    np.testing.assert_allclose(sent[-1][1], [0.7, -0.6])
    assert loop.stats.dry == 1


def test_estop_commands_hold_immediately_and_then_nothing():
    loop, sent = make_loop(RampPolicy())
    loop.set_enabled(True)
    loop.queue.merge(np.full((10, 2), 0.5), 0)
    loop.on_state(state([0.1, 0.1], 0.0))
    loop.step(now=0.0)
    n = len(sent)
    loop.on_state(state([0.12, 0.11], 0.005))
    loop.set_estop(True)
    assert len(sent) == n + 1  # sent from the e-stop call itself, not at the next tick
    np.testing.assert_allclose(sent[-1][1], [0.12, 0.11])
    for k in range(1, 10):
        loop.on_state(state([0.12, 0.11], k * 0.01))
        assert loop.step(now=k * 0.01) == "estop"
    assert len(sent) == n + 1 and loop.queue.depth() == 0
    loop.set_enabled(True)
    assert not loop.filter.active  # must clear the e-stop first


def test_config_validation():
    with pytest.raises(ValueError, match="whole multiple"):
        LoopConfig(command_hz=100, policy_hz=30)
    with pytest.raises(ValueError, match="new_weight"):
        LoopConfig(new_weight=2.0)


def _run_threaded(policy, seconds, **cfg):
    loop, sent = make_loop(policy, **cfg)
    stop = threading.Event()

    def robot():  # a 200 Hz state publisher that follows the command
        while not stop.is_set():
            q = sent[-1][1] if sent else np.zeros(2)
            loop.on_state(state(q, time.monotonic()))
            time.sleep(0.005)
    t = threading.Thread(target=robot, daemon=True)
    t.start()
    loop.start()
    time.sleep(0.05)
    loop.set_enabled(True)
    time.sleep(seconds)
    loop.stop()
    stop.set()
    t.join(1)
    return loop, sent


def test_threaded_loop_runs_policy_and_refills_queue():
    loop, sent = _run_threaded(RampPolicy(horizon=8, inc=0.002), 0.6)
    assert loop.policy.calls >= 3  # refilled repeatedly
    assert loop.stats.dry <= 15  # only before the first chunk (a few policy steps on a loaded machine)
    q = np.array([q for _, q in sent])
    assert q[-1, 0] > q[0, 0] + 0.01  # the ramp moved the joint (0 if it had not; ~0.02+ even under heavy load)
    rep = loop.report()
    assert rep["ticks"] > 40 and rep["inference_ms"]["count"] >= 3


def test_stalled_policy_holds_within_three_periods():
    policy = StallingPolicy(budget=1, horizon=4, inc=0.002)
    loop, sent = _run_threaded(policy, 0.5, refill_threshold=1)
    policy.release.set()
    assert loop.stats.dry > 10  # the stall was noticed and held through
    # the last 'run' command and the first hold after it are at most 3 periods apart
    assert loop.filter.counters.holds > 0
    q = np.array([q for _, q in sent])
    steps = np.abs(np.diff(q, axis=0)).max(axis=1)
    moving = np.flatnonzero(steps > 1e-9)
    last_move = moving[-1] + 1
    t_last_move = sent[last_move][0]
    later = [t for t, _ in sent[last_move + 1:]]
    assert later, "the loop kept sending holds after the stall"
    assert later[0] - t_last_move <= 3 * loop.cfg.period + 0.002
    np.testing.assert_allclose(q[-1], q[last_move + 1])  # holding still


def test_nan_chunk_never_reaches_the_wire():
    loop, sent = _run_threaded(NaNPolicy(), 0.3)
    assert loop.stats.bad_chunks >= 1 and "non-finite" in loop.last_error
    assert all(np.all(np.isfinite(q)) for _, q in sent)
    assert loop.queue.chunks_merged == 0


class HistoryPolicy(RampPolicy):
    """Keeps an observation history, like the chunk policies (observe() between inferences)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.observed = 0

    def observe(self, obs):
        self.observed += 1


def test_history_policies_observe_every_policy_step():
    policy = HistoryPolicy(horizon=8, inc=0.001)
    loop, _ = _run_threaded(policy, 0.6)
    steps = loop.stats.depth.n  # policy steps while running
    assert policy.observed > 0
    seen = policy.observed + policy.calls
    assert steps - 3 <= seen <= steps + 1, (seen, steps)


def test_estop_hold_is_always_the_last_command_even_mid_publish():
    sent, gate, entered = [], threading.Event(), threading.Event()

    def publish(q, g):
        sent.append(q.copy())
        if len(sent) == 1:  # the loop is inside its publish when the e-stop arrives
            entered.set()
            gate.wait(2)
    mapper = JointPositionMapper(lower=[-1, -1], upper=[1, 1], gripper=False)
    loop = ControllerLoop(RampPolicy(), mapper, JointStateObs(), publish, [-1, -1], [1, 1], LoopConfig())
    loop.set_enabled(True)
    loop.queue.merge(np.full((10, 2), 0.5), 0)
    loop.on_state(state([0.2, 0.3], 0.0))
    tick = threading.Thread(target=loop.step, kwargs={"now": 0.0})
    tick.start()
    assert entered.wait(2)
    estop = threading.Thread(target=loop.set_estop, args=(True,))
    estop.start()
    time.sleep(0.05)
    gate.set()
    tick.join(2)
    estop.join(2)
    assert len(sent) == 2
    np.testing.assert_allclose(sent[-1], [0.2, 0.3])  # the hold at the measured position came last
    assert loop.step(now=0.01) == "estop" and len(sent) == 2
