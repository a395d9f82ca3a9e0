"""Wrappers against hand-computable cases (a tiny deterministic RobotEnv) and real envs."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robolearn
from robolearn.envs import api
from robolearn.envs.registry import registered
from robolearn.envs.wrappers import ActionChunk, Latency, ObsHistory, ObsNoise, RelativeFrame, TimeLimit
from robolearn.envs.wrappers.relative_frame import quat_mul, quat_to_mat, relative_pose

STATE_DIM = 9  # ee_pos 3, ee_quat 4, gripper 1, t 1


def yaw_quat(angle: float) -> np.ndarray:
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def rotvec_quat(v: np.ndarray) -> np.ndarray:
    angle = float(np.linalg.norm(v))
    if angle == 0:
        return np.array([1.0, 0, 0, 0])
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * np.asarray(v) / angle])


class TinyEnv(api.RobotEnv):
    """A point end-effector: pos += 0.1 * a[:3] and q = exp(0.1 * a[3:6]) * q in the base frame,
    gripper = a[6]; reward at step t is t; terminates (successfully) at ``terminate_at``;
    returns ``intervene`` as info["intervene_action"] at the steps listed in ``intervene_at``."""

    def __init__(self, yaw0=0.0, terminate_at=None, cameras=(), intervene_at=(), intervene=None, jitter=0.0):
        self.state_layout = [("ee_pos", 3), ("ee_quat", 4), ("gripper", 1), ("t", 1)]
        self.observation_space = api.observation_space(STATE_DIM, cameras, image_size=4)
        self.action_space = api.action_space(7)
        self.yaw0, self.terminate_at, self.cameras = yaw0, terminate_at, tuple(cameras)
        self.intervene_at, self.intervene, self.jitter = set(intervene_at), intervene, jitter
        self.applied: list[np.ndarray] = []

    def _obs(self):
        state = np.concatenate([self.pos, self.quat, [self.grip, self.t]]).astype(np.float32)
        obs = {"state": state}
        if self.cameras:
            obs["images"] = {c: np.full((4, 4, 3), 10 * self.t + i, np.uint8) for i, c in enumerate(self.cameras)}
        return obs

    def _reset(self, options):
        self.pos = np.array([0.5, 0.0, 0.2]) + self.np_random.uniform(-1, 1, 3) * self.jitter
        self.quat, self.grip, self.t = yaw_quat(self.yaw0), -1.0, 0
        self.applied = []
        return self._obs(), {}

    def _step(self, action):
        self.applied.append(action.copy())
        self.pos = self.pos + 0.1 * action[:3]
        self.quat = quat_mul(rotvec_quat(0.1 * action[3:6].astype(np.float64)), self.quat)
        self.grip, self.t = float(action[6]), self.t + 1
        done = self.terminate_at is not None and self.t >= self.terminate_at
        info = {"success": done}
        if self.t in self.intervene_at:
            info["intervene_action"] = self.intervene
        return self._obs(), float(self.t), done, False, info


def act(g: float = 0.0, **axes) -> np.ndarray:
    """Action with gripper ``g`` and named axes, e.g. act(x=1, rz=0.5)."""
    a = np.zeros(7, np.float32)
    for i, k in enumerate(("x", "y", "z", "rx", "ry", "rz")):
        a[i] = axes.get(k, 0.0)
    a[6] = g
    return a


def _check_env_strict(env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    allowed = ("infinity", "recommend using the raw environment")
    problems = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert not problems, problems


# TimeLimit ---------------------------------------------------------------------------------
def test_time_limit_truncates_exactly_and_marks_info():
    env = TimeLimit(TinyEnv(), 3)
    env.reset(seed=0)
    out = [env.step(act()) for _ in range(3)]
    assert [o[3] for o in out] == [False, False, True]
    assert [o[4]["TimeLimit.truncated"] for o in out] == [False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(act())
    env.reset()
    assert env.elapsed_steps == 0 and env.step(act())[3] is False


def test_time_limit_termination_at_the_limit_is_not_a_timeout():
    env = TimeLimit(TinyEnv(terminate_at=2), 2)
    env.reset(seed=0)
    env.step(act())
    _, _, terminated, truncated, info = env.step(act())
    assert terminated and truncated and info["TimeLimit.truncated"] is False


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_time_limit_rejects_bad_config(bad):
    with pytest.raises(ValueError, match="max_steps"):
        TimeLimit(TinyEnv(), bad)


# ActionChunk -------------------------------------------------------------------------------
def test_chunk_sums_rewards_and_stacks_transitions():
    base = TinyEnv(cameras=["cam"])
    env = ActionChunk(base, 3)
    assert env.action_space.shape == (3, 7)
    env.reset(seed=0)
    chunk = np.stack([act(g=0.1), act(g=0.2), act(g=0.3)])
    obs, reward, terminated, truncated, info = env.step(chunk)
    assert reward == 1 + 2 + 3 and not terminated and not truncated
    c = info["chunk"]
    assert c["n_executed"] == 3
    np.testing.assert_array_equal(c["state"][:, -1], [1, 2, 3])  # t after each step
    np.testing.assert_allclose(c["state"][:, 7], [0.1, 0.2, 0.3], atol=1e-6)  # gripper = a[6]
    np.testing.assert_array_equal(c["reward"], [1, 2, 3])
    assert c["images"]["cam"].shape == (3, 4, 4, 3) and c["images"]["cam"][2, 0, 0, 0] == 30
    np.testing.assert_array_equal(obs["state"], c["state"][-1])  # last obs returned
    np.testing.assert_array_equal(np.stack(base.applied), chunk)  # executed in order
    assert not c["intervened"].any() and np.array_equal(c["executed_action"], chunk)


def test_chunk_stops_early_at_termination():
    base = TinyEnv(terminate_at=2)
    env = ActionChunk(base, 4)
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(np.zeros((4, 7), np.float32))
    assert len(base.applied) == 2 and reward == 1 + 2 and terminated and not truncated
    c = info["chunk"]
    assert c["n_executed"] == 2 and c["state"].shape == (2, STATE_DIM) and c["action"].shape == (2, 7)
    np.testing.assert_array_equal(c["terminated"], [False, True])
    np.testing.assert_array_equal(c["success"], [False, True])
    assert info["success"] is True


def test_chunk_stops_early_at_truncation_of_inner_time_limit():
    env = ActionChunk(TimeLimit(TinyEnv(), 5), 4)
    env.reset(seed=0)
    assert env.step(np.zeros((4, 7)))[4]["chunk"]["n_executed"] == 4
    _, reward, terminated, truncated, info = env.step(np.zeros((4, 7)))
    assert info["chunk"]["n_executed"] == 1 and reward == 5 and truncated and not terminated


def test_chunk_records_interventions_and_passes_info_through():
    fix = act(g=0.9, x=0.5)
    env = ActionChunk(TinyEnv(intervene_at={2, 3}, intervene=fix), 3)
    env.reset(seed=0)
    chunk = np.zeros((3, 7), np.float32)
    _, _, _, _, info = env.step(chunk)
    np.testing.assert_array_equal(info["chunk"]["intervened"], [False, True, True])
    np.testing.assert_array_equal(info["chunk"]["executed_action"], [chunk[0], fix, fix])
    assert info["intervene_action"] is fix  # last step's info, untouched


def test_chunk_bad_shapes_and_nan_execute_nothing():
    base = TinyEnv()
    env = ActionChunk(base, 3)
    env.reset(seed=0)
    for bad in (np.zeros(7), np.zeros((2, 7)), np.zeros((3, 6))):
        with pytest.raises(api.InvalidActionError, match=r"expected \(horizon, action_dim\) = \(3, 7\)"):
            env.step(bad)
    nan = np.zeros((3, 7), np.float32)
    nan[2, 4] = np.nan
    with pytest.raises(api.InvalidActionError, match=r"rows \[2\]"):
        env.step(nan)
    assert base.applied == []
    with pytest.raises(ValueError, match="horizon"):
        ActionChunk(TinyEnv(), 0)


# ObsHistory --------------------------------------------------------------------------------
def test_history_pads_with_first_obs_then_shifts():
    env = ObsHistory(TinyEnv(cameras=["a", "b"]), 3)
    assert env.observation_space["state"].shape == (3, STATE_DIM)
    assert env.observation_space["images"]["a"].shape == (3, 4, 4, 3)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (3, STATE_DIM) and obs["images"]["b"].shape == (3, 4, 4, 3)
    np.testing.assert_array_equal(obs["state"][:, -1], [0, 0, 0])
    assert env.observation_space.contains(obs)
    ts = []
    for _ in range(4):
        obs = env.step(act())[0]
        ts.append(obs["state"][:, -1].tolist())
    assert ts == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    np.testing.assert_array_equal(obs["images"]["a"][:, 0, 0, 0], [20, 30, 40])
    np.testing.assert_array_equal(obs["images"]["b"][:, 0, 0, 0], [21, 31, 41])
    obs, _ = env.reset(seed=0)  # history cleared at reset
    np.testing.assert_array_equal(obs["state"][:, -1], [0, 0, 0])
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        ObsHistory(TinyEnv(), 0)


def test_history_frames_do_not_alias_env_buffers():
    base = TinyEnv()
    env = ObsHistory(base, 2)
    obs, _ = env.reset(seed=0)
    obs["state"][:] = 99.0  # a consumer scribbling on its obs must not corrupt the history
    obs = env.step(act())[0]
    assert obs["state"][0, -1] == 0 and obs["state"][1, -1] == 1


# RelativeFrame -----------------------------------------------------------------------------
def test_quaternion_helpers_hand_values():
    q90 = yaw_quat(np.pi / 2)
    np.testing.assert_allclose(quat_to_mat(q90) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(quat_mul(q90, q90), yaw_quat(np.pi), atol=1e-12)
    p, q = relative_pose([1, 2, 3], q90, [1, 3, 3], quat_mul(yaw_quat(0.3), q90))
    np.testing.assert_allclose(p, [1, 0, 0], atol=1e-12)  # +y in base is +x in the 90-deg frame
    np.testing.assert_allclose(q, yaw_quat(0.3), atol=1e-12)


def test_ee_frame_action_is_rotated_into_base():
    base = TinyEnv(yaw0=np.pi / 2)
    env = RelativeFrame(base)
    env.reset(seed=0)
    env.step(act(g=0.7, x=1.0))
    np.testing.assert_allclose(base.applied[-1], act(g=0.7, y=1.0), atol=1e-6)  # +x EE -> +y base
    env.step(act(rx=0.5, z=-1.0))
    np.testing.assert_allclose(base.applied[-1], act(ry=0.5, z=-1.0), atol=1e-6)
    # A rotated vector leaving the unit box is scaled back keeping its direction: at 45 deg yaw,
    # EE (1, 1, 0) -> base (0, 1.414, 0) -> (0, 1, 0); EE (1, 0, 0) -> (0.707, 0.707, 0) unscaled.
    base = TinyEnv(yaw0=np.pi / 4)
    env = RelativeFrame(base)
    env.reset(seed=0)
    env.step(act(x=1.0, y=1.0))
    np.testing.assert_allclose(base.applied[-1][:3], [0.0, 1.0, 0.0], atol=1e-6)
    env.reset(seed=0)
    env.step(act(x=1.0))
    np.testing.assert_allclose(base.applied[-1][:3], [0.5**0.5, 0.5**0.5, 0.0], atol=1e-6)


def test_pose_is_relative_to_reset_pose():
    env = RelativeFrame(TinyEnv(yaw0=np.pi / 2, jitter=0.05))
    obs, _ = env.reset(seed=1)
    np.testing.assert_allclose(obs["state"][:3], 0.0, atol=1e-7)
    np.testing.assert_allclose(obs["state"][3:7], [1, 0, 0, 0], atol=1e-7)
    obs = env.step(act(x=1.0))[0]  # 0.1 along the EE x axis
    np.testing.assert_allclose(obs["state"][:3], [0.1, 0, 0], atol=1e-6)
    obs = env.step(act(rz=1.0))[0]  # rotate 0.1 rad about EE z
    np.testing.assert_allclose(obs["state"][3:7], yaw_quat(0.1), atol=1e-6)
    obs = env.step(act(x=1.0))[0]  # EE x now points 0.1 rad further round
    np.testing.assert_allclose(obs["state"][:3], [0.1 + 0.1 * np.cos(0.1), 0.1 * np.sin(0.1), 0], atol=1e-6)
    assert obs["state"][7] == 0.0 and obs["state"][8] == 3  # other slices untouched


def test_relative_frame_without_relative_pose_keeps_base_pose():
    env = RelativeFrame(TinyEnv(yaw0=np.pi / 2), relative_pose=False)
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["state"][:3], [0.5, 0, 0.2], atol=1e-7)


def test_intervention_is_expressed_in_the_ee_frame():
    env = RelativeFrame(TinyEnv(yaw0=np.pi / 2, intervene_at={1}, intervene=act(g=1.0, y=1.0)))
    env.reset(seed=0)
    info = env.step(act())[4]
    np.testing.assert_allclose(info["intervene_action"], act(g=1.0, x=1.0), atol=1e-6)


def test_relative_frame_needs_a_pose_layout():
    env = robolearn.make("dmc/cartpole-swingup")
    with pytest.raises(ValueError, match="'ee_pos'.*position"):
        RelativeFrame(env)
    env.close()
    bare = TinyEnv()
    del bare.state_layout
    with pytest.raises(ValueError, match="state_layout"):
        RelativeFrame(bare)
    with pytest.raises(ValueError, match="below ObsHistory"):
        RelativeFrame(ObsHistory(TinyEnv(), 2)).reset(seed=0)


@pytest.mark.parametrize("name", [n for n in registered() if n.startswith("sim/")])
def test_relative_frame_on_sim_arm(name):
    env = RelativeFrame(robolearn.make(name))
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs["state"][:3], 0.0, atol=1e-6)
    np.testing.assert_allclose(np.abs(obs["state"][3:7]), [1, 0, 0, 0], atol=1e-6)
    layout = dict(env.unwrapped.state_layout)
    assert layout["ee_pos"] == 3 and layout["ee_quat"] == 4
    for _ in range(3):
        obs = env.step(np.array([1, 0, 0, 0, 0, 0, -1], np.float32))[0]
    moved = obs["state"][:3]
    assert moved[0] > 0.005 and abs(moved[1]) < 0.3 * moved[0] and abs(moved[2]) < 0.3 * moved[0]
    env.close()


# Latency / ObsNoise ------------------------------------------------------------------------
def test_action_delay_is_exactly_k_steps():
    base = TinyEnv()
    init = act(g=-1.0)
    env = Latency(base, action_delay_steps=2, initial_action=init)
    env.reset(seed=0)
    sent = [act(g=0.1 * i) for i in range(1, 6)]
    applied = [env.step(a)[4]["applied_action"] for a in sent]
    np.testing.assert_allclose(np.stack(base.applied), [init, init, sent[0], sent[1], sent[2]])
    np.testing.assert_allclose(np.stack(applied), np.stack(base.applied))


def test_obs_delay_is_exactly_k_steps():
    env = Latency(TinyEnv(), obs_delay_steps=2)
    obs, _ = env.reset(seed=0)
    assert obs["state"][-1] == 0
    seen = []
    for _ in range(5):
        obs, reward, *_ = env.step(act())
        seen.append((int(obs["state"][-1]), reward))
    assert seen == [(0, 1), (0, 2), (1, 3), (2, 4), (3, 5)]  # reward is not delayed


def test_zero_latency_is_identity():
    a, b = TinyEnv(), Latency(TinyEnv(), 0, 0)
    a.reset(seed=0), b.reset(seed=0)
    for i in range(3):
        np.testing.assert_array_equal(a.step(act(g=0.1 * i))[0]["state"], b.step(act(g=0.1 * i))[0]["state"])


def test_random_latency_drawn_per_episode_and_seeded():
    env = Latency(TinyEnv(), obs_delay_steps=(0, 4), action_delay_steps=(1, 3))
    draws = []
    for seed in range(12):
        env.reset(seed=seed)
        first = (env.obs_delay, env.action_delay)
        env.reset(seed=seed)
        assert (env.obs_delay, env.action_delay) == first
        assert 0 <= first[0] <= 4 and 1 <= first[1] <= 3
        draws.append(first)
    assert len(set(draws)) > 3


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"obs_delay_steps": -1}, "obs_delay_steps"),
        ({"action_delay_steps": (3, 1)}, "min > max"),
        ({"action_delay_steps": 1.5}, "action_delay_steps"),
        ({"initial_action": np.zeros(3)}, "initial_action"),
        ({"initial_action": np.full(7, 2.0)}, "initial_action"),
        ({"seed": -3}, "seed"),
    ],
)
def test_latency_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Latency(TinyEnv(), **kwargs)


def test_latency_rejects_bad_action_immediately():
    env = Latency(TinyEnv(), action_delay_steps=3)
    env.reset(seed=0)
    with pytest.raises(api.InvalidActionError, match="non-finite"):
        env.step(np.full(7, np.nan, np.float32))


def _noisy_run(env, seed, n=5):
    obs, _ = env.reset(seed=seed)
    out = [obs["state"]]
    for _ in range(n):
        out.append(env.step(act())[0]["state"])
    return np.stack(out)


def test_obs_noise_reproducible_with_seeds_and_right_scale():
    env = ObsNoise(TinyEnv(), state_std=0.5, seed=7)
    a, b, c = _noisy_run(env, 1), _noisy_run(env, 1), _noisy_run(env, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    clean = _noisy_run(TinyEnv(), 1)
    long_noise = _noisy_run(env, 3, n=300) - _noisy_run(TinyEnv(), 3, n=300)
    assert abs(long_noise.std() - 0.5) < 0.05 and abs(long_noise.mean()) < 0.05
    assert not np.allclose(a, clean)
    # Another constructor seed gives other noise for the same episode seed.
    assert not np.array_equal(a, _noisy_run(ObsNoise(TinyEnv(), state_std=0.5, seed=8), 1))


def test_obs_noise_per_dim_and_images():
    std = np.zeros(STATE_DIM)
    std[-1] = 1.0
    env = ObsNoise(TinyEnv(cameras=["cam"]), state_std=std, image_noise_std=20.0, seed=0)
    obs, _ = env.reset(seed=0)
    clean = TinyEnv(cameras=["cam"])
    clean_obs, _ = clean.reset(seed=0)
    np.testing.assert_array_equal(obs["state"][:-1], clean_obs["state"][:-1])
    assert obs["state"][-1] != clean_obs["state"][-1]
    img = obs["images"]["cam"]
    assert img.dtype == np.uint8 and img.shape == (4, 4, 3)
    # The clean frame is all 0: about half the noise is negative and clipped to 0, none wraps round.
    assert np.all(img <= 120) and 0.3 < (img == 0).mean() < 0.7
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"state_std": -0.1}, "state_std"),
        ({"state_std": np.ones(3)}, "state_std has shape"),
        ({"state_std": float("nan")}, "state_std"),
        ({"image_noise_std": -1.0}, "image_noise_std"),
    ],
)
def test_obs_noise_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ObsNoise(TinyEnv(), **kwargs)


# Composition, intervention pass-through, gymnasium checker ---------------------------------
@pytest.mark.parametrize(
    "wrap",
    [
        lambda e: TimeLimit(e, 10),
        lambda e: ObsHistory(e, 2),
        lambda e: Latency(e, 1, 1),
        lambda e: ObsNoise(e, 0.1, seed=0),
    ],
    ids=["TimeLimit", "ObsHistory", "Latency", "ObsNoise"],
)
def test_intervene_action_passes_through_untouched(wrap):
    fix = act(g=1.0, z=0.3)
    env = wrap(TinyEnv(intervene_at={1}, intervene=fix))
    env.reset(seed=0)
    assert env.step(act())[4]["intervene_action"] is fix


def test_full_stack_on_dm_control_passes_check_env():
    env = robolearn.make("dmc/cartpole-swingup", cameras=["front"], image_size=16)
    env = ActionChunk(ObsHistory(ObsNoise(Latency(TimeLimit(env, 20), 1, 1), 0.01, 2.0, seed=0), 2), 3)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (2, 5) and obs["images"]["front"].shape == (2, 16, 16, 3)
    _check_env_strict(env)
    env.reset(seed=0)
    total = 0
    for _ in range(10):
        _, _, terminated, truncated, info = env.step(np.zeros((3, 1), np.float32))
        total += info["chunk"]["n_executed"]
        if truncated:
            break
    assert total == 20 and truncated and info["chunk"]["n_executed"] == 2  # 6 chunks of 3, then 2


def test_tiny_env_with_every_wrapper_passes_check_env():
    env = ActionChunk(ObsHistory(ObsNoise(Latency(RelativeFrame(TinyEnv(jitter=0.1)), (0, 2), 1), 0.01, seed=1), 3), 2)
    _check_env_strict(env)
