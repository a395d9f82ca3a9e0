"""``robolearn collect``: summaries, reproducible seeds, resume, info flow, and a real SIGKILL mid-run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.data.episode_store import EpisodeStore
from robolearn.envs import api
from robolearn.envs.registry import register
from robolearn.train.collect_cmd import collect, make_source, SourceOptions

ENV = "dmc/cartpole-swingup"


def _quiet(**kw):
    return dict(progress=False, log=None, **kw)


def test_collect_summary_seeds_and_resume_are_reproducible(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    s1 = collect(ENV, "random", 3, a, seed=7, max_steps=15, cameras="front", image_size=16, **_quiet())
    assert s1["episodes"] == 3 and s1["resumed_from"] == 0
    assert s1["total_steps"] == 45 and s1["mean_steps"] == 15.0
    store = EpisodeStore(a)
    assert len(store) == 3
    eps = list(store)
    assert [e.meta["seed"] for e in eps] == [7, 8, 9]
    assert all(e.meta["env"] == ENV and e.meta["source"] == "random" for e in eps)
    assert all(e.truncated[-1] and not e.truncated[:-1].any() for e in eps)  # --max-steps truncates
    assert eps[0].images["front"].shape == (16, 16, 16, 3)
    assert np.all(np.abs(eps[0].action) <= 1.0)
    # Resume to 5: continues with episodes 3 and 4 (seeds 10, 11), and says so.
    said = []
    s2 = collect(ENV, "random", 5, a, seed=7, max_steps=15, cameras="front", image_size=16, progress=False, log=said.append)
    assert s2["resumed_from"] == 3 and s2["episodes"] == 2 and s2["store_episodes"] == 5
    assert any("resuming" in m and "3 episodes" in m for m in said)
    # A fresh run of 5 gives bit-identical episodes: episode i depends only on seed + i.
    collect(ENV, "random", 5, b, seed=7, max_steps=15, cameras="front", image_size=16, **_quiet())
    for ea, eb in zip(EpisodeStore(a), EpisodeStore(b)):
        np.testing.assert_array_equal(ea.state, eb.state)
        np.testing.assert_array_equal(ea.action, eb.action)
        np.testing.assert_array_equal(ea.images["front"], eb.images["front"])
        assert ea.meta == eb.meta
    # Already complete: nothing to do.
    s3 = collect(ENV, "random", 4, a, seed=7, max_steps=15, **_quiet())
    assert s3["episodes"] == 0 and s3["store_episodes"] == 5


class _ScriptedEnv(api.RobotEnv):
    """A tiny env whose info carries success (from step 3 on) and a human takeover at step 1."""

    def __init__(self):
        self.observation_space = api.observation_space(2)
        self.action_space = api.action_space(2)
        self.t = 0

    def _obs(self):
        return {"state": np.array([self.t, -self.t], dtype=np.float32)}

    def _reset(self, options):
        self.t = 0
        return self._obs(), {}

    def _step(self, action):
        self.t += 1
        info = {"success": self.t >= 3}
        if self.t == 2:
            info["intervene_action"] = np.array([0.25, -0.25], dtype=np.float32)
        return self._obs(), float(self.t >= 3), self.t >= 4, False, info


register("test/scripted", _ScriptedEnv)


def test_env_info_flows_into_the_store(tmp_path):
    s = collect("test/scripted", "random", 2, tmp_path, **_quiet())
    assert s["success_rate"] == 1.0 and s["total_steps"] == 8
    ep = EpisodeStore(tmp_path).load(0)
    np.testing.assert_array_equal(ep.success, [False, False, True, True])
    np.testing.assert_array_equal(ep.intervened, [False, True, False, False])
    np.testing.assert_array_equal(ep.action[1], [0.25, -0.25])
    np.testing.assert_array_equal(ep.terminated, [False, False, False, True])
    np.testing.assert_array_equal(ep.state[:, 0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ep.reward, [0, 0, 1, 1])


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown source 'nope'; known sources: .*random"):
        collect(ENV, "nope", 1, tmp_path / "x", **_quiet())
    with pytest.raises(ValueError, match="episodes must be an int >= 1"):
        collect(ENV, "random", 0, tmp_path / "x", **_quiet())
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        collect(ENV, "random", 1, tmp_path / "x", noise=-0.1, **_quiet())
    with pytest.raises(ValueError, match="max_steps must be None or an int >= 1"):
        collect(ENV, "random", 1, tmp_path / "x", max_steps=0, **_quiet())
    with pytest.raises(ValueError, match="--checkpoint is only used by --source policy"):
        collect(ENV, "random", 1, tmp_path / "x", checkpoint="ckpt", **_quiet())
    collect("test/scripted", "random", 1, tmp_path / "y", **_quiet())
    with pytest.raises(ValueError, match="already holds episodes with env='test/scripted'"):
        collect(ENV, "random", 2, tmp_path / "y", **_quiet())
    with pytest.raises(KeyError, match="unknown env 'dmc/nope-nope'|nope"):
        collect("dmc/nope-nope", "random", 1, tmp_path / "w", **_quiet())
    assert not (tmp_path / "w").exists()
    # CLI: one clear line, exit code 1.
    out = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "collect", "--env", ENV, "--source", "nope",
         "--episodes", "1", "--out", str(tmp_path / "z")],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 1 and "unknown source 'nope'" in out.stderr


def test_expert_source_is_reproducible(tmp_path):
    env = robolearn.make("sim/pick_cube")
    src = make_source("expert", env, SourceOptions(noise=0.1))
    runs = []
    for seed in (3, 3, 4):
        obs, _ = env.reset(seed=seed)
        src.reset(seed)
        acts = []
        for _ in range(5):
            a = src.act(obs)
            acts.append(a)
            obs, *_ = env.step(a)
        runs.append(np.stack(acts))
    env.close()
    assert runs[0].shape == (5, 7) and runs[0].dtype == np.float32 and np.all(np.isfinite(runs[0]))
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])  # the seed reaches the expert (its noise, the scene)
    assert np.ptp(runs[0], axis=0).max() > 0  # it acts, rather than repeating one action


def _episode_files(d: Path) -> list[Path]:
    return sorted(d.glob("episode_*.npz"))


def test_sigkill_mid_run_loses_at_most_the_episode_in_progress(tmp_path):
    out = tmp_path / "killed"
    cmd = [
        sys.executable, "-m", "robolearn.cli", "collect", "--env", ENV, "--source", "random",
        "--episodes", "500", "--max-steps", "40", "--cameras", "front", "--image-size", "24",
        "--seed", "100", "--out", str(out), "--no-progress",
    ]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 90
        while len(_episode_files(out) if out.exists() else []) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "collect wrote no 2 episodes in 90 s"
            time.sleep(0.02)
        time.sleep(0.13)  # somewhere inside the next episode (each takes a few hundred ms)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    files = _episode_files(out)
    assert len(files) >= 2
    store = EpisodeStore(out)
    summary = store.summary()
    assert summary["corrupt"] == []
    # Every visible episode is complete: it loads with its images, and all 40 steps are there.
    assert store.names() == [f.stem for f in files]
    for i, ep in enumerate(store):
        assert ep.length == 40 and ep.images["front"].shape == (41, 24, 24, 3)
        assert ep.meta["seed"] == 100 + i
    # Whatever the kill left behind is not an episode (only hidden temp files may remain).
    leftovers = [p.name for p in out.iterdir() if p.name not in {f.name for f in files} and p.name != "index.json"]
    assert all(name.startswith(".tmp-") for name in leftovers), leftovers
    # A resumed run reaches the requested total and continues the seed sequence.
    k = len(store)
    s = collect(ENV, "random", k + 2, out, seed=100, max_steps=40, cameras="front", image_size=24, **_quiet())
    assert s["resumed_from"] == k and s["store_episodes"] == k + 2
    resumed = EpisodeStore(out)
    assert [e.meta["seed"] for e in resumed.iter(images=False)] == list(range(100, 100 + k + 2))
    assert not any(p.name.startswith(".tmp-") for p in out.iterdir())  # stray temps cleaned
