"""The Python API (robolearn/api.py) and the quickstart example that uses it (issue 12).

Why: ``train_bc`` and ``OnlineTrainer`` existed but took parsed recipes and config objects, so a
researcher driving robolearn from a notebook had to read the source. The API takes names and paths
and returns dicts naming the files it wrote; these tests chain it end to end with tiny sizes.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import robolearn

ROOT = Path(__file__).resolve().parents[1]
TINY_BC = {"policy": {"horizon": 8, "n_action_steps": 4, "down_dims": [8, 16], "kernel_size": 3, "n_groups": 4,
                      "step_embed_dim": 16, "state_hidden": [16], "state_feature_dim": 16},
           "train": {"batch_size": 8, "warmup_steps": 0, "checkpoint_every": 5, "log_every": 5}}


def test_import_robolearn_stays_light_and_exports_the_api():
    code = ("import sys, robolearn; heavy = [m for m in ('torch', 'mujoco', 'robolearn.api') if m in sys.modules]; "
            "assert not heavy, heavy; f = robolearn.train_bc; import robolearn.api as a; "
            "assert f is a.train_bc and robolearn.api is a; "
            "assert {'collect', 'train_bc', 'train_rl', 'evaluate', 'load_policy'} <= set(dir(robolearn))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with pytest.raises(AttributeError, match="no attribute 'trian_bc'"):
        robolearn.trian_bc


def test_collect_train_evaluate_load_and_act(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # shipped recipe names work from any folder
    demos = robolearn.collect("sim/pick_cube", "demos", episodes=2, progress=False)
    assert demos["out"] == "demos" and demos["store_episodes"] == 2 and demos["success_rate"] == 1.0

    bc = robolearn.train_bc("demos", "bc", recipe="consistency", steps=5, overrides=TINY_BC, progress=False)
    assert bc["steps"] == 5 and bc["policy"] == "consistency" and bc["env"] == "sim/pick_cube"
    assert bc["recipe"].endswith("recipes/consistency.yaml") and bc["episodes"] == 2
    assert Path(bc["checkpoint"]).is_dir() and np.isfinite(bc["final_loss"])
    json.dumps(bc)  # JSON-ready: paths as strings, no tensors or modules
    again = robolearn.train_bc("demos", "bc", recipe="consistency", steps=5, overrides=TINY_BC, resume=True,
                               progress=False)
    assert again["steps"] == 5 and again["final_loss"] is None  # nothing left to train

    result = robolearn.evaluate(bc["checkpoint"], episodes=1, max_steps=4, save_to="eval/r.json", progress=False)
    assert result["env"] == "sim/pick_cube" and result["episodes"] == 1 and result["mean_length"] == 4
    assert json.loads(Path(result["result_file"]).read_text())["success_rate"] == result["success_rate"]

    policy = robolearn.load_policy("bc")  # the run folder works as well as its checkpoint folder
    env = robolearn.make("sim/pick_cube", **policy.meta.get("env_kwargs", {}))
    obs, _ = env.reset(seed=0)
    policy.reset()
    action = policy.select_action(obs)
    env.close()
    assert action.shape == env.action_space.shape and np.all(np.abs(action) <= 1.0 + 1e-6)


def test_train_rl_returns_the_policy_it_wrote(tmp_path, one_thread):
    rl = robolearn.train_rl("sim/pick_cube", tmp_path / "rl", algo="sac", steps=40, progress=False,
                            overrides={"agent": {"hidden": [16, 16], "backend": "eager"},
                                       "train": {"warmup_steps": 20, "batch_size": 16, "eval_episodes": 1,
                                                 "utd_ratio": 1, "actor_every": 1}},
                            env_overrides={"max_episode_steps": 20})
    assert rl["env_step"] == 40 and rl["algo"] == "sac" and rl["out"] == str(tmp_path / "rl")
    assert "eval/success_rate" in rl and Path(rl["policy"]).is_dir() and Path(rl["scalars"]).is_file()
    policy = robolearn.load_policy(rl["out"])
    assert policy.meta["env"] == "sim/pick_cube"
    ev = robolearn.evaluate(rl["out"], episodes=1, progress=False)
    assert ev["mean_length"] == 20  # the env overrides travel with the checkpoint


def test_bad_arguments_fail_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="episodes must be an integer >= 1, got 0"):
        robolearn.collect("sim/pick_cube", tmp_path / "d", episodes=0)
    assert not (tmp_path / "d").exists()
    with pytest.raises(FileNotFoundError, match="recipe 'consistensy' not found .*did you mean 'consistency'"):
        robolearn.train_bc(tmp_path / "d", tmp_path / "bc", recipe="consistensy")
    with pytest.raises(ValueError, match="steps must be an integer >= 1, got -5"):
        robolearn.train_bc(tmp_path / "d", tmp_path / "bc", steps=-5)
    with pytest.raises(ValueError, match="refines a base policy: pass base="):
        robolearn.train_rl("sim/pick_cube", tmp_path / "rl", algo="residual")
    with pytest.raises(ValueError, match="unknown algo 'rlpdd'"):
        robolearn.train_rl("sim/pick_cube", tmp_path / "rl", algo="rlpdd")
    assert not (tmp_path / "bc").exists() and not (tmp_path / "rl").exists()


@pytest.mark.slow
def test_the_quickstart_example_runs_from_any_folder(tmp_path):
    """examples/quickstart.py as a user runs it, from a folder that is not the checkout."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", "qs", "--steps", "100"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "quickstart: 5 demos ->" in r.stdout and "first action [" in r.stdout
    assert (tmp_path / "qs" / "bc" / "checkpoint").is_dir()
    assert json.loads((tmp_path / "qs" / "eval.json").read_text())["episodes"] == 3
    assert not (tmp_path / "policies").exists() and not (tmp_path / "runs").exists()  # nothing written elsewhere
