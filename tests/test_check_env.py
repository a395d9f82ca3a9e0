"""Gymnasium's env checker passes for every registered env (new families are picked up automatically)."""
from __future__ import annotations

import warnings

import pytest
from gymnasium.utils.env_checker import check_env

import robolearn
from robolearn.envs.registry import registered

# Box(-inf, inf) state bounds are deliberate (unbounded proprioception); every other checker
# warning (obs outside its space, wrong dtype, non-deterministic seeding...) fails the test.
_ALLOWED = ("minimum value is -infinity", "maximum value is infinity")


def _checked(env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    problems = [str(w.message) for w in caught if not any(a in str(w.message) for a in _ALLOWED)]
    assert not problems, problems


@pytest.mark.parametrize("name", registered())
def test_check_env_state_only(name):
    env = robolearn.make(name)
    try:
        _checked(env)
    finally:
        env.close()


def _camera_cases() -> list[str]:
    # One dm_control task and every sim task, with a camera, to cover the image part of the obs.
    return ["dmc/cartpole-swingup"] + [n for n in registered() if n.startswith("sim/")]


@pytest.mark.parametrize("name", _camera_cases())
def test_check_env_with_camera(name):
    env = robolearn.make(name, cameras=["front"], image_size=32)
    try:
        _checked(env)
    finally:
        env.close()


def test_every_registered_env_obeys_the_contract():
    """Spaces as the contract states: Dict obs with float32 "state", float32 Box [-1, 1] actions."""
    import numpy as np
    from gymnasium import spaces

    for name in registered():
        env = robolearn.make(name)
        try:
            assert isinstance(env.observation_space, spaces.Dict), name
            assert env.observation_space["state"].dtype == np.float32, name
            act = env.action_space
            assert isinstance(act, spaces.Box) and act.dtype == np.float32, name
            assert np.all(act.low == -1.0) and np.all(act.high == 1.0), name
            obs, info = env.reset(seed=0)
            assert "success" in info and env.observation_space.contains(obs), name
        finally:
            env.close()
