"""dm_control suite envs behind the robolearn contract (real MuJoCo, short runs)."""
from __future__ import annotations

import numpy as np
import pytest

import robolearn
from robolearn.envs.api import InvalidActionError
from robolearn.envs.dmc import rescale_action, split_last_step


@pytest.fixture
def cartpole():
    env = robolearn.make("dmc/cartpole-swingup")
    yield env
    env.close()


def test_flat_state_dtype_shape_and_documented_order(cartpole):
    obs, info = cartpole.reset(seed=0)
    assert set(obs) == {"state"}
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (5,)
    assert cartpole.unwrapped.state_layout == [("position", 3), ("velocity", 2)]
    assert cartpole.observation_space.contains(obs)
    assert info["success"] is False
    # The vector is exactly the suite's observation dict in spec order.
    dm_obs = cartpole.unwrapped._dm.task.get_observation(cartpole.unwrapped.physics)
    expected = np.concatenate([dm_obs["position"], dm_obs["velocity"]]).astype(np.float32)
    np.testing.assert_array_equal(obs["state"], expected)
    obs, reward, terminated, truncated, info = cartpole.step(np.zeros(1, np.float32))
    assert isinstance(reward, float) and not terminated and not truncated and info["success"] is False


def test_walker_scalar_observation_is_flattened():
    env = robolearn.make("dmc/walker-walk")
    obs, _ = env.reset(seed=0)
    assert env.unwrapped.state_layout == [("orientations", 14), ("height", 1), ("velocity", 9)]
    assert obs["state"].shape == (24,)
    assert env.action_space.shape == (6,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    env.close()


def test_seeded_reset_reproducible_and_seeds_differ(cartpole):
    a = cartpole.reset(seed=7)[0]["state"]
    b = cartpole.reset(seed=7)[0]["state"]
    c = cartpole.reset(seed=8)[0]["state"]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Same seed and actions -> same trajectory; unseeded resets continue the RNG sequence.
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 1)).astype(np.float32)
    trajs = []
    for _ in range(2):
        cartpole.reset(seed=3)
        trajs.append([cartpole.step(a)[0]["state"] for a in actions])
    np.testing.assert_array_equal(np.stack(trajs[0]), np.stack(trajs[1]))
    cartpole.reset(seed=3)
    first = cartpole.reset()[0]["state"]
    second = cartpole.reset()[0]["state"]
    assert not np.array_equal(first, second)


def test_rescale_function_hand_values():
    low, high = np.array([-1.0, -0.8, 0.0, -1e10, -np.inf]), np.array([1.1, 0.8, 4.0, 1e10, np.inf])
    # Bounded dims map [-1, 1] onto [low, high]; unbounded ones (lqr's +-1e10, inf) pass through.
    np.testing.assert_allclose(rescale_action([-1, -1, -1, -1, -1], low, high), [-1.0, -0.8, 0.0, -1.0, -1.0])
    np.testing.assert_allclose(rescale_action([1, 1, 1, 1, 1], low, high), [1.1, 0.8, 4.0, 1.0, 1.0])
    np.testing.assert_allclose(rescale_action([0, 0.5, 0, 0.25, 0.5], low, high), [0.05, 0.4, 2.0, 0.25, 0.5])


def test_action_rescaled_to_non_unit_spec_of_quadruped():
    env = robolearn.make("dmc/quadruped-walk")
    dm = env.unwrapped
    assert not np.allclose(dm.action_high, 1.0)  # the spec really is not [-1, 1]
    env.reset(seed=0)
    for value, expected in ((1.0, dm.action_high), (-1.0, dm.action_low)):
        env.step(np.full(12, value, np.float32))
        np.testing.assert_allclose(dm.physics.data.ctrl, expected, atol=1e-6)
    env.step(np.zeros(12, np.float32))
    np.testing.assert_allclose(dm.physics.data.ctrl, (dm.action_low + dm.action_high) / 2, atol=1e-6)
    env.close()


def test_truncates_exactly_at_suite_limit_and_action_repeat():
    env = robolearn.make("dmc/cartpole-swingup", action_repeat=4)
    env.reset(seed=0)
    zero = np.zeros(1, np.float32)
    flags = [env.step(zero)[2:4] for _ in range(250)]  # suite limit 1000 control steps / 4
    assert all(f == (False, False) for f in flags[:-1])
    assert flags[-1] == (False, True)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zero)
    env.close()


def test_max_episode_steps_override(cartpole):
    env = robolearn.make("dmc/cartpole-swingup", max_episode_steps=3)
    env.reset(seed=0)
    out = [env.step(np.zeros(1, np.float32))[3] for _ in range(3)]
    assert out == [False, False, True]
    env.reset(seed=0)
    assert env.step(np.zeros(1, np.float32))[3] is False
    env.close()


def test_discount_zero_is_termination_not_truncation():
    assert split_last_step(0.0) == (True, False)
    assert split_last_step(1.0) == (False, True)
    # lqr terminates (discount 0) once the state norm is ~0: put it at the origin.
    env = robolearn.make("dmc/lqr-lqr_2_1")
    env.reset(seed=0)
    physics = env.unwrapped.physics
    with physics.reset_context():  # recomputes derived quantities after the state edit
        physics.data.qpos[:] = 0.0
        physics.data.qvel[:] = 0.0
    _, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape, np.float32))
    assert terminated is True and truncated is False
    env.close()


def test_ball_in_cup_success_when_ball_in_cup():
    env = robolearn.make("dmc/ball_in_cup-catch")
    env.reset(seed=0)
    physics = env.unwrapped.physics
    _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert info["success"] is False  # the ball starts hanging below the cup
    with physics.reset_context():
        physics.named.data.qpos[["ball_x", "ball_z"]] += physics.ball_to_target()
        physics.named.data.qvel[:] = 0.0
    _, reward, terminated, _, info = env.step(np.zeros(2, np.float32))
    assert reward == 1.0 and info["success"] is True and terminated is False
    env.close()


def test_rendering_uint8_frames_per_camera():
    env = robolearn.make("dmc/cartpole-swingup", cameras=["front", 1], image_size=48, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert set(obs["images"]) == {"front", "1"}
    for frame in obs["images"].values():
        assert frame.dtype == np.uint8 and frame.shape == (48, 48, 3)
        assert frame.std() > 1.0  # a real picture, not a blank buffer
    assert not np.array_equal(obs["images"]["front"], obs["images"]["1"])
    assert env.observation_space.contains(obs)
    assert env.unwrapped.physics.model.vis.quality.shadowsize == 0
    # The cached cameras draw the current state: same pixels as a fresh physics.render().
    physics = env.unwrapped.physics
    for _ in range(20):
        obs = env.step(np.ones(1, np.float32))[0]
    np.testing.assert_array_equal(obs["images"]["1"], physics.render(48, 48, camera_id=1))
    np.testing.assert_array_equal(obs["images"]["front"], physics.render(48, 48, camera_id=0))
    frame = env.render()
    assert frame.shape == (48, 48, 3) and frame.dtype == np.uint8
    env.close()


def test_bad_names_and_config():
    with pytest.raises(KeyError, match="Did you mean dmc/cartpole-swingup") as exc:
        robolearn.make("dmc/cartpole-swingupp")
    assert "walker-walk" in str(exc.value)  # lists valid suite tasks
    with pytest.raises(KeyError, match="expected dmc/<domain>-<task>"):
        robolearn.make("dmc/cartpole")
    with pytest.raises(ValueError, match="action_repeat"):
        robolearn.make("dmc/cartpole-swingup", action_repeat=0)
    with pytest.raises(ValueError, match="'frame_skip'"):
        robolearn.make("dmc/cartpole-swingup", frame_skip=2)
    with pytest.raises(ValueError, match="unknown camera 'nope'"):
        robolearn.make("dmc/cartpole-swingup", cameras=["nope"])


def test_bad_actions_rejected(cartpole):
    cartpole.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        cartpole.step(np.zeros(2, np.float32))
    with pytest.raises(InvalidActionError, match="non-finite"):
        cartpole.step(np.array([np.nan], np.float32))


def test_benchmark_tasks_are_registered():
    names = robolearn.registered_envs()
    for task in ("cartpole-swingup", "reacher-easy", "walker-walk", "cheetah-run", "finger-spin", "ball_in_cup-catch"):
        assert f"dmc/{task}" in names
