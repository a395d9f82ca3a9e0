"""real/sim_arm against `robolearn sim-robot` in another process, over DDS on loopback: the sim arm driven
as a real robot (joint targets through the safety filter to its JointTrajectoryController, observations
rebuilt from /joint_states + /object_pose, camera frames from its image topic, success from its success
topic, scene resets seeded like the sim's)."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from procs import stop

pytest.importorskip("cyclonedds")
ROOT = Path(__file__).resolve().parents[1]


def _sim_robot(domain, *args):
    from robolearn.deploy.dds import loopback_config

    env = dict(os.environ, CYCLONEDDS_URI=loopback_config())
    env.setdefault("MUJOCO_GL", "egl")
    return subprocess.Popen([sys.executable, "-m", "robolearn.cli", "sim-robot", "--domain", str(domain),
                             "--seconds", "90", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), env


def _expert_episode(env, seed):
    from robolearn.sim.experts import make_expert

    obs, _ = env.reset(seed=seed)
    first = obs
    expert = make_expert(env, seed=seed)
    expert.reset()
    steps, success = 0, False
    while True:
        obs, _r, terminated, truncated, info = env.step(expert.act(obs))
        steps += 1
        success = success or info["success"]
        if terminated or truncated:
            return first, obs, steps, success


def test_scripted_expert_picks_the_cube_on_real_sim_arm_as_in_sim():
    import robolearn
    from robolearn.deploy.dds import free_domain_id, loopback_config

    os.environ.setdefault("CYCLONEDDS_URI", loopback_config())
    seeds = [0, 1, 2]
    sim_env = robolearn.make("sim/pick_cube")
    in_sim = [_expert_episode(sim_env, s) for s in seeds]
    sim_env.close()

    domain = free_domain_id(os.getpid() + 141)
    proc, _ = _sim_robot(domain, "--env", "sim/pick_cube", "--cameras", "front", "--image-size", "84")
    env = None
    try:
        env = robolearn.make("real/sim_arm", task="sim/pick_cube", cameras=["front"], domain=domain,
                             connect_timeout=30.0)
        assert env.observation_space["state"].shape == (15,) and env.success_source == "topic /robolearn/success"
        real = [_expert_episode(env, s) for s in seeds]
        report = env.report()
    finally:
        if env is not None:
            env.close()
        stop(proc)
    for (first_sim, *_), (first_real, last_real, steps, _ok), seed in zip(in_sim, real, seeds):
        # the reset request carried the seed: sim-robot placed the cube where the sim does
        np.testing.assert_allclose(first_real["state"][8:11], first_sim["state"][8:11], atol=2e-3,
                                   err_msg=f"seed {seed}")
        img = last_real["images"]["front"]
        assert img.shape == (84, 84, 3) and img.dtype == np.uint8 and img.std() > 5
        assert steps <= 80
    sim_rate = np.mean([ok for *_, ok in in_sim])
    real_rate = np.mean([ok for *_, ok in real])
    assert sim_rate == 1.0
    assert real_rate >= sim_rate - 1 / len(seeds), f"real {real_rate:.0%} vs sim {sim_rate:.0%}: {real}"
    assert report["safety"]["rejected"] == 0 and report["dropped"] == {}, report


def test_collect_expert_on_real_sim_arm_cli(tmp_path):
    """`robolearn collect --env real/sim_arm --source expert` records episodes from sim-robot (peg_insert,
    its default task; the domain comes from $ROS_DOMAIN_ID as for ROS 2 tools)."""
    import robolearn
    from robolearn.data.episode_store import EpisodeStore
    from robolearn.deploy.dds import free_domain_id

    domain = free_domain_id(os.getpid() + 149)
    proc, env = _sim_robot(domain)
    out = tmp_path / "real_demos"
    try:
        res = subprocess.run([sys.executable, "-m", "robolearn.cli", "collect", "--env", "real/sim_arm",
                              "--source", "expert", "--episodes", "2", "--max-steps", "6", "--out", str(out),
                              "--no-progress"], cwd=ROOT, env=dict(env, ROS_DOMAIN_ID=str(domain)),
                             capture_output=True, text=True, timeout=120)
    finally:
        stop(proc)
    assert res.returncode == 0, res.stdout + res.stderr
    store = EpisodeStore(out)
    assert len(store) == 2
    sim_env = robolearn.make("sim/peg_insert")
    for i, name in enumerate(store.names()):
        ep = store.load(name)
        assert ep.meta["env"] == "real/sim_arm" and ep.meta["fps"] == 20
        assert ep.action.shape == (6, 7) and ep.state.shape == (7, 15)
        sim_obs, _ = sim_env.reset(seed=i)  # collect's episode i runs with seed i: the same hole as in sim
        np.testing.assert_allclose(ep.state[0, 8:11], sim_obs["state"][8:11], atol=2e-3)
    sim_env.close()


def test_reset_drives_the_arm_home_without_a_reset_topic():
    """A real cell has no reset topic: reset drives the arm to the configured home joints through the
    controller loop (rate-limited by the safety filter), then the episode starts there."""
    import robolearn
    from robolearn.deploy.dds import free_domain_id, loopback_config

    os.environ.setdefault("CYCLONEDDS_URI", loopback_config())
    domain = free_domain_id(os.getpid() + 151)
    proc, _ = _sim_robot(domain, "--env", "sim/pick_cube")
    env = None
    try:
        env = robolearn.make("real/sim_arm", task="sim/pick_cube", domain=domain, reset_topic="",
                             connect_timeout=30.0, reset_timeout=15.0)
        env.reset()
        q0 = env.loop.latest_state().q.copy()
        home = q0 + np.array([0.15, -0.1, 0.0, 0.1, 0.0, -0.1, 0.2])
        env.settings.home = tuple(home)
        t0 = time.monotonic()
        obs, _ = env.reset()
        took = time.monotonic() - t0
        q = env.loop.latest_state().q
        assert np.max(np.abs(q - home)) <= env.settings.home_tolerance + 0.01
        # 0.2 rad at the config's 1.5 rad/s rate limit takes >= 0.13 s: the filter paced the move
        assert 0.13 <= took < 10, took
        pos, _ = env.robot.ee_pose()  # the twin follows the measured joints
        np.testing.assert_allclose(obs["state"][:3], pos, atol=1e-5)
    finally:
        if env is not None:
            env.close()
        stop(proc)
