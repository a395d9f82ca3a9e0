"""Intervention wrapper with SERL's semantics, on the real sim env with a real teleop device (issue 13).

The device is the keyboard teleop fed by a replayed key stream on a simulated clock (one control period
per env step), so the test runs the same parser and mapping a person at a terminal would.
"""
import numpy as np
import pytest

import robolearn
from robolearn.envs.wrappers import Intervention
from robolearn.hardware.teleop import KeyboardDevice, ReplaySource, load_teleop_config

DT = 0.05  # sim/pick_cube runs at 20 Hz


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def make(keys, quiet_period_s=0.25, **kw):
    """pick_cube wrapped in Intervention, a keyboard device replaying ``keys`` ((step, bytes) pairs)."""
    clock = Clock()
    cfg = load_teleop_config("keyboard")  # hold_s 0.2: one key press moves for 4 steps
    records = [(step * DT, data) for step, data in keys]
    device = KeyboardDevice(cfg, ReplaySource(records, clock=clock, start=0.0), clock=clock)
    env = Intervention(robolearn.make("sim/pick_cube"), device, quiet_period_s=quiet_period_s, **kw)
    return env, clock


def run(env, clock, policy_action, steps):
    infos, states = [], []
    obs, _ = env.reset(seed=0)
    states.append(obs["state"].copy())
    for _ in range(steps):
        clock.t += DT / 2  # the poll lands mid-period, after any key recorded at the period's start
        obs, _r, term, trunc, info = env.step(policy_action)
        clock.t += DT / 2
        infos.append(info)
        states.append(obs["state"].copy())
        assert not term and not trunc
    return infos, np.array(states)


def test_device_input_replaces_the_policy_action_then_control_returns_after_the_quiet_period():
    # One 'w' press at step 3 (+dx for 0.2 s = 4 steps), quiet period 0.25 s = 5 steps at 20 Hz.
    env, clock = make([(3, b"w")])
    policy = np.array([-1, 0, 0, 0, 0, 0, 1], np.float32)  # the policy moves -x with the gripper closed
    try:
        infos, states = run(env, clock, policy, 16)
    finally:
        env.close()
    acting = [i["intervening"] for i in infos]
    # steps 0-2 policy; 3-6 the key is held; 7-11 quiet but still the person's (hold still); 12+ policy
    assert acting == [False] * 3 + [True] * 9 + [False] * 4
    assert all(("intervene_action" in i) == a for i, a in zip(infos, acting))
    np.testing.assert_allclose(infos[3]["intervene_action"], [0.5, 0, 0, 0, 0, 0, 1])  # gripper: the policy's
    np.testing.assert_allclose(infos[8]["intervene_action"], [0, 0, 0, 0, 0, 0, 1])  # quiet: hold still
    dx = np.diff(states[:, 0])
    assert np.all(dx[4:7] > 0) and np.all(dx[13:] < 0)  # the env executed +x for the person, -x for the policy
    assert infos[-1]["intervention_count"] == 1
    assert infos[-1]["intervention_rate"] == pytest.approx(9 / 16)


def test_count_rate_gripper_and_summary_over_episodes():
    # Two separate takeovers: a gripper toggle at step 1, and 'a' (+dy) at step 12; quiet period 0.
    env, clock = make([(1, b" "), (12, b"a")], quiet_period_s=0.0)
    policy = np.array([0, 0, 0, 0, 0, 0, 1], np.float32)
    try:
        infos, _ = run(env, clock, policy, 20)
        assert [i for i, info in enumerate(infos) if info["intervening"]] == [1, 12, 13, 14, 15]
        assert infos[1]["intervene_action"][6] == -1.0  # toggled from the policy's closed gripper: open
        assert infos[1]["teleop_buttons"] == ["gripper_toggle"]
        assert infos[12]["intervene_action"][6] == 1.0  # a new takeover starts from the policy's gripper again
        assert infos[-1]["intervention_count"] == 2 and infos[-1]["intervention_rate"] == pytest.approx(5 / 20)
        s = env.summary()
        assert s["episode"] == {"steps": 20, "intervened_steps": 5, "interventions": 2, "rate": 0.25}
        run(env, clock, policy, 4)  # a second episode without input
        s = env.summary()
        assert s["episode"]["interventions"] == 0 and s["episode"]["steps"] == 4
        assert s["total"]["episodes"] == 2 and s["total"]["interventions"] == 2
        assert s["total"]["rate"] == pytest.approx(5 / 24) and s["total"]["per_episode"] == 1.0
    finally:
        env.close()


def test_any_object_with_poll_is_a_device_and_actions_are_recorded_as_executed(tmp_path):
    """A duck-typed device (no hardware import), and the episode store keeps the executed action."""
    from types import SimpleNamespace

    from robolearn.data.episode_store import EpisodeStore

    cmds = iter([SimpleNamespace(action=np.r_[0, 0, 1.0, 0, 0, 0, -1], buttons=(), active=True)]
                + [SimpleNamespace(action=np.zeros(7), buttons=(), active=False)] * 10)

    class Pedal:
        def poll(self):
            return next(cmds)

    env = Intervention(robolearn.make("sim/pick_cube"), Pedal(), quiet_period_s=0.0)
    store = EpisodeStore(tmp_path / "s")
    w = store.writer()
    obs, _ = env.reset(seed=1)
    w.reset(obs)
    policy = np.full(7, 0.3, np.float32)
    for _ in range(3):
        obs, r, term, trunc, info = env.step(policy)
        w.step(policy, obs, r, term, trunc, info)
    w.close()
    env.close()
    ep = store.load(0, images=False)
    assert ep.intervened.tolist() == [True, False, False]
    np.testing.assert_allclose(ep.action[0], [0, 0, 1, 0, 0, 0, 1])  # device motion, the policy's gripper
    np.testing.assert_allclose(ep.action[1], policy)


def test_bad_arguments_are_named():
    env = robolearn.make("sim/pick_cube")
    try:
        with pytest.raises(ValueError, match="needs a device with a poll\\(\\) method"):
            Intervention(env, object())
        with pytest.raises(ValueError, match="quiet_period_s must be a number >= 0"):
            Intervention(env, load_teleop_config("keyboard") and KeyboardDevice(load_teleop_config("keyboard")),
                         quiet_period_s=-1)
        with pytest.raises(ValueError, match="gripper_index 9 is outside the action"):
            Intervention(env, KeyboardDevice(load_teleop_config("keyboard")), gripper_index=9)
        from types import SimpleNamespace

        short = SimpleNamespace(poll=lambda: SimpleNamespace(action=np.ones(3), buttons=(), active=True))
        wrapped = Intervention(env, short)
        wrapped.reset(seed=0)
        with pytest.raises(ValueError, match="device gives a \\(3,\\) action, the env takes \\(7,\\)"):
            wrapped.step(np.zeros(7, np.float32))
    finally:
        env.close()


def test_quiet_period_comes_from_the_device_config():
    cfg = load_teleop_config("keyboard")
    env = Intervention(robolearn.make("sim/pick_cube"), KeyboardDevice(cfg))
    try:
        assert env.quiet_period_s == cfg.quiet_period_s == 0.5 and env.quiet_steps == 10
    finally:
        env.close()
