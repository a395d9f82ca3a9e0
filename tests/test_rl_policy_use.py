"""An RL run is a policy like a BC run: `eval`, `collect --source policy` and `serve` (over DDS, against
`sim-robot`) load its run directory; a checkpoint records its env and refuses another one."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from procs import stop

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "robolearn.cli"]


@pytest.fixture(scope="module")
def rl_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("rl") / "run"
    out = subprocess.run(CLI + ["train", "rl", "--algo", "sac", "--env", "sim/peg_insert", "--steps", "60",
                                "--out", str(run), "--no-progress", "--threads", "1",
                                "--set", "train.warmup_steps=30", "--set", "agent.hidden=[16,16]",
                                "--set", "train.batch_size=16", "--set", "train.eval_episodes=0",
                                "--env-set", "max_episode_steps=30"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return run


def test_rl_run_is_a_policy_checkpoint(rl_run):
    from robolearn.train.checkpoint import load_policy, read_config

    name, cfg, meta = read_config(rl_run)
    assert name == "gaussian" and cfg.state_dim == 15 and cfg.action_dim == 7
    assert meta["env"] == "sim/peg_insert" and meta["trainer"] == "rl" and meta["algo"] == "sac"
    assert meta["env_kwargs"] == {"max_episode_steps": 30} and meta["env_step"] == 60
    pol = load_policy(rl_run)
    a = pol.select_action({"state": np.zeros(15, np.float32)})
    assert a.shape == (7,) and np.all(np.abs(a) <= 1.0)


def test_eval_loads_an_rl_run_and_refuses_another_env(rl_run, tmp_path):
    out = subprocess.run(CLI + ["eval", "--checkpoint", str(rl_run), "--env", "sim/peg_insert", "--episodes", "2",
                                "--out", str(tmp_path), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert result["policy_type"] == "gaussian" and result["episodes"] == 2
    assert result["mean_length"] == 30  # the run's env overrides (max_episode_steps) came with the checkpoint
    bad = subprocess.run(CLI + ["eval", "--checkpoint", str(rl_run), "--env", "sim/pick_cube", "--episodes", "1",
                                "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert "trained on 'sim/peg_insert', not 'sim/pick_cube'" in bad.stderr and "Traceback" not in bad.stderr


def test_collect_with_an_rl_policy(rl_run, tmp_path):
    from robolearn.data.episode_store import EpisodeStore

    out = subprocess.run(CLI + ["collect", "--env", "sim/peg_insert", "--source", "policy", "--checkpoint",
                                str(rl_run), "--episodes", "2", "--max-steps", "20", "--out", str(tmp_path / "s"),
                                "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    store = EpisodeStore(tmp_path / "s")
    assert len(store) == 2
    ep = next(iter(store))
    assert ep.length == 20 and np.all(np.abs(ep.action) <= 1.0)


def test_serve_an_rl_run_over_dds(rl_run, tmp_path):
    pytest.importorskip("cyclonedds", reason="the DDS transport needs cyclonedds (extra 'ros')")
    from robolearn.deploy.dds import free_domain_id, loopback_config

    domain = free_domain_id(os.getpid() + 97)
    env = dict(os.environ, CYCLONEDDS_URI=loopback_config())
    robot_status, serve_status = tmp_path / "robot.json", tmp_path / "serve.json"
    sim = subprocess.Popen(CLI + ["sim-robot", "--domain", str(domain), "--seconds", "60", "--status-file",
                                  str(robot_status)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    serve = subprocess.Popen(CLI + ["serve", "--checkpoint", str(rl_run), "--domain", str(domain), "--seconds", "60",
                                    "--enable", "--print-every", "0", "--status-file", str(serve_status)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, s, r = time.time() + 50, {}, {}
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                s, r = json.loads(serve_status.read_text()), json.loads(robot_status.read_text())
            except (OSError, ValueError):
                continue
            if s["inference_ms"]["count"] >= 10 and r["commands"]["trajectory"] >= 50:
                break
        assert s.get("inference_ms", {}).get("count", 0) >= 10, f"serve status: {s}"
        assert s["bad_chunks"] == 0 and s["safety"]["rejected"] == 0, s["last_error"]
        assert r["commands"]["trajectory"] >= 50
    finally:
        stop(serve, sim)


def test_collect_refuses_a_policy_from_another_env_and_records_state_names(rl_run, tmp_path):
    bad = subprocess.run(CLI + ["collect", "--env", "sim/pick_cube", "--source", "policy", "--checkpoint", str(rl_run),
                                "--episodes", "1", "--out", str(tmp_path / "s"), "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "trained on 'sim/peg_insert', not 'sim/pick_cube'" in bad.stderr
    ok = subprocess.run(CLI + ["collect", "--env", "sim/pick_cube", "--source", "policy", "--checkpoint", str(rl_run),
                               "--episodes", "1", "--max-steps", "5", "--allow-env-mismatch", "--out",
                               str(tmp_path / "t"), "--no-progress"], cwd=ROOT, capture_output=True, text=True,
                        timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    from robolearn.data.episode_store import EpisodeStore

    ep = next(iter(EpisodeStore(tmp_path / "t")))
    names = ep.meta["state_names"]  # the env's state layout, for exports
    assert len(names) == 15 and names[:3] == ["ee_pos.0", "ee_pos.1", "ee_pos.2"] and "gripper" in names
