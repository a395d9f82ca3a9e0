"""Evaluation: Wilson interval against known values; real sim rollouts, JSON and mp4 output from the CLI."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robolearn.policies.diffusion.configuration import DiffusionConfig
from robolearn.policies.registry import policy_class
from robolearn.train import checkpoint as ckpt
from robolearn.train.evaluate import PolicySource, sampling_kwargs, wilson_interval

torch.set_num_threads(1)


@pytest.mark.parametrize("k,n,lo,hi", [
    (8, 10, 0.4902, 0.9433),   # textbook values (Wilson 1927; e.g. Newcombe 1998 table)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (25, 50, 0.3664, 0.6336),
    (1, 1, 0.2065, 1.0),
])
def test_wilson_known_values(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)


@pytest.mark.parametrize("n", [1, 3, 7, 20, 50])
def test_wilson_is_exact_at_the_ends(n):
    """0 of n has lower bound exactly 0 and n of n upper bound exactly 1 (no rounding residue above the estimate)."""
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0


def test_wilson_bad_input():
    with pytest.raises(ValueError, match="at least one trial"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def _tiny_policy(tmp_path, state_dim=15, action_dim=7):
    torch.manual_seed(0)
    cfg = DiffusionConfig(state_dim=state_dim, action_dim=action_dim, down_dims=(8, 16), n_groups=4, step_embed_dim=8,
                          state_hidden=(16,), state_feature_dim=8, horizon=8, n_action_steps=4, num_inference_steps=2)
    p = policy_class("diffusion")(cfg)
    p.set_normalization(-np.ones(state_dim), np.ones(state_dim), -0.2 * np.ones(action_dim), 0.2 * np.ones(action_dim))
    return ckpt.save_policy(p, tmp_path / "run" / "checkpoint").parent


def test_eval_cli_on_real_sim_writes_json_and_video(tmp_path):
    from robolearn.cli import main

    run = _tiny_policy(tmp_path)
    out = tmp_path / "eval"
    rc = main(["eval", "--checkpoint", str(run), "--env", "sim/pick_cube", "--episodes", "2", "--max-steps", "5",
               "--video-episodes", "1", "--out", str(out), "--no-progress"])
    assert rc == 0
    doc = json.loads((out / "sim-pick_cube_diffusion_ddim2.json").read_text())
    assert doc["episodes"] == 2 and doc["successes"] == 0
    assert [e["length"] for e in doc["per_episode"]] == [5, 5]  # an untrained policy cannot pick in 5 steps
    assert doc["ci95"] == pytest.approx(list(wilson_interval(0, 2)))
    assert doc["sampling"] == {"sampler": "ddim", "steps": 2}
    videos = list((out / "sim-pick_cube_diffusion_ddim2_videos").glob("*.mp4"))
    assert len(videos) == 1 and videos[0].stat().st_size > 1000


def test_eval_rejects_mismatched_env(tmp_path):
    from robolearn.cli import main

    run = _tiny_policy(tmp_path, state_dim=4)
    assert main(["eval", "--checkpoint", str(run), "--env", "sim/pick_cube", "--episodes", "1", "--no-progress"]) == 1
    with pytest.raises(ValueError, match="state dim"):
        from robolearn.train.evaluate import evaluate, load_policy

        evaluate(load_policy(run), "sim/pick_cube", 1, progress=False)


def test_sampling_kwargs_and_policy_source(tmp_path):
    run = _tiny_policy(tmp_path)
    p = ckpt.load_policy(run)
    assert sampling_kwargs(p) == {"sampler": "ddim", "steps": 2}
    assert sampling_kwargs(p, "ddpm") == {"sampler": "ddpm", "steps": 100}
    src = PolicySource(None, SimpleNamespace(checkpoint=str(run)))
    src.reset(3)
    a1 = src.act({"state": np.zeros(15, np.float32)})
    src.reset(3)
    a2 = src.act({"state": np.zeros(15, np.float32)})
    assert a1.shape == (7,) and np.array_equal(a1, a2)  # same seed, same action
    assert np.all(np.abs(a1) <= 0.2 + 1e-6)
    with pytest.raises(ValueError, match="--checkpoint"):
        PolicySource(None, SimpleNamespace(checkpoint=None))
