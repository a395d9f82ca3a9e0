"""BC training loop: dataset windows, recipes, checkpoints, and resuming after an interruption."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robolearn.config_io import ConfigError
from robolearn.train import checkpoint as ckpt
from robolearn.train.bc import ChunkDataset, load_recipe, recipe_from_dict, train_bc

torch.set_num_threads(1)
POLICY = {"down_dims": [8, 16], "n_groups": 4, "step_embed_dim": 8, "state_hidden": [16], "state_feature_dim": 8,
          "horizon": 8, "n_action_steps": 4}


def _episodes(n=3, t_len=12, seed=0):
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(n):
        s = rng.normal(size=(t_len + 1, 4)).astype(np.float32)
        eps.append(SimpleNamespace(name=f"ep{i}", state=s, action=np.tanh(s[:t_len, :2]).astype(np.float32), images={}))
    return eps


def _recipe(kind="diffusion", **train):
    return recipe_from_dict({"type": kind, "policy": dict(POLICY),
                             "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2,
                                       "checkpoint_every": 3, **train}})


def test_dataset_windows_pad_at_episode_edges():
    ep = SimpleNamespace(name="e", state=np.arange(6, dtype=np.float32)[:, None], images={},
                         action=np.arange(5, dtype=np.float32)[:, None] * 10)
    ds = ChunkDataset([ep], n_obs_steps=2, horizon=4)
    assert len(ds) == 5
    b = ds.batch(torch.tensor([0, 2, 4]))
    # step 0: history repeats the first frame; chunk starts one step before the current step
    assert b["state"][:, :, 0].tolist() == [[0, 0], [1, 2], [3, 4]]
    assert b["action"][:, :, 0].tolist() == [[0, 0, 10, 20], [10, 20, 30, 40], [30, 40, 40, 40]]
    with pytest.raises(ValueError, match="NaN"):
        bad = SimpleNamespace(name="b", state=np.full((3, 1), np.nan, np.float32), action=np.zeros((2, 1), np.float32), images={})
        ChunkDataset([bad], 2, 4)


def test_recipes_load_and_unknown_keys_are_named(tmp_path):
    for name in ("diffusion", "consistency", "diffusion_image", "consistency_image"):
        r = load_recipe(f"policies/{name}.yaml")
        assert r.type in ("diffusion", "consistency")
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: diffusion\npolicy:\n  horizn: 16\n")
    with pytest.raises(ConfigError, match="horizn"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="tran"):
        recipe_from_dict({"type": "diffusion", "tran": {}})
    with pytest.raises(FileNotFoundError):
        load_recipe(tmp_path / "missing.yaml")


def test_train_writes_checkpoint_logs_and_refuses_overwrite(tmp_path):
    out = tmp_path / "run"
    res = train_bc(_recipe(), _episodes(), out, progress=False)
    assert res["step"] == 6 and np.isfinite(res["loss"])
    name, cfg, meta = ckpt.read_config(out)
    assert name == "diffusion" and cfg.state_dim == 4 and cfg.action_dim == 2 and meta["step"] == 6
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]
    assert any((out / "tb").iterdir())
    with pytest.raises(ValueError, match="--resume"):
        train_bc(_recipe(), _episodes(), out, progress=False)
    # the stored policy acts with the data's normalization
    policy = ckpt.load_policy(out)
    assert torch.allclose(policy.action_norm.max, torch.from_numpy(np.max([e.action for e in _episodes()], axis=(0, 1))))


@pytest.mark.parametrize("kind", ["diffusion", "consistency"])
def test_resume_continues_step_and_matches_uninterrupted_run(tmp_path, kind):
    eps = _episodes()
    full = tmp_path / "full"
    train_bc(_recipe(kind), eps, full, steps=6, progress=False)
    part = tmp_path / "part"
    train_bc(_recipe(kind), eps, part, steps=3, progress=False)  # "killed" after the step-3 checkpoint
    assert json.loads((part / "checkpoint" / "train" / "state.json").read_text())["step"] == 3
    res = train_bc(_recipe(kind), eps, part, steps=6, resume=True, progress=False)
    assert res["step"] == 6
    assert json.loads((part / "checkpoint" / "train" / "state.json").read_text())["step"] == 6
    for rel in ("model.safetensors", "train/model.safetensors", "train/optimizer.safetensors"):
        a = load_file(str(full / "checkpoint" / rel))
        b = load_file(str(part / "checkpoint" / rel))
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), f"{rel}:{k} differs after resume"
    steps_logged = [json.loads(x)["step"] for x in (part / "log.jsonl").read_text().splitlines()]
    assert steps_logged == [2, 3, 4, 6]  # the first run logs its last step 3; the resumed run continues at 4
