"""BC training loop: dataset windows, recipes, checkpoints, and resuming after an interruption."""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robolearn.config_io import ConfigError
from robolearn.train import checkpoint as ckpt
from robolearn.train.bc import ChunkDataset, build_policy, load_recipe, recipe_from_dict, run_training, train_bc
from robolearn.train.logging import load_scalars

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
    # the scalar log every trainer writes (RL too): scalars.csv + TensorBoard, no log.jsonl
    scalars = load_scalars(out)
    assert {"train/loss", "train/lr", "train/samples_per_s", "train/ema_decay"} <= set(scalars)
    assert scalars["train/loss"][0] == [2, 4, 6] and all(np.isfinite(scalars["train/loss"][1]))
    assert (out / "scalars.csv").read_text().splitlines()[0] == "step,tag,value,wall_time"
    assert not (out / "log.jsonl").exists()
    assert any((out / "tb").iterdir())
    with pytest.raises(ValueError, match="--resume"):
        train_bc(_recipe(), _episodes(), out, progress=False)
    # the stored policy acts with the data's normalization
    policy = ckpt.load_policy(out)
    assert torch.allclose(policy.action_norm.max, torch.from_numpy(np.max([e.action for e in _episodes()], axis=(0, 1))))


@pytest.mark.parametrize("kind", ["diffusion", "consistency"])
def test_resume_continues_step_and_matches_uninterrupted_run(tmp_path, kind, device, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # GPU: the same convolution algorithm each run
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    eps = _episodes()
    full = tmp_path / "full"
    train_bc(_recipe(kind), eps, full, steps=6, progress=False, device=device)
    part = tmp_path / "part"
    train_bc(_recipe(kind), eps, part, steps=3, progress=False, device=device)  # "killed" after the step-3 checkpoint
    state = json.loads((part / "checkpoint" / "train" / "state.json").read_text())
    assert state["step"] == 3 and torch.device(state["device"]) == device
    res = train_bc(_recipe(kind), eps, part, steps=6, resume=True, progress=False, device=device)
    assert res["step"] == 6
    assert json.loads((part / "checkpoint" / "train" / "state.json").read_text())["step"] == 6
    for rel in ("model.safetensors", "train/model.safetensors", "train/optimizer.safetensors"):
        a = load_file(str(full / "checkpoint" / rel))
        b = load_file(str(part / "checkpoint" / rel))
        assert a.keys() == b.keys()
        for k in a:
            if device.type == "cpu":
                assert torch.equal(a[k], b[k]), f"{rel}:{k} differs after resume"
            else:  # GPU kernels outside cuDNN's deterministic switch may still sum in another order
                torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=f"{rel}:{k} differs after resume")
    steps_logged, _ = load_scalars(part)["train/loss"]
    assert steps_logged == [2, 3, 4, 6]  # the first run logs its last step 3; the resumed run continues at 4


def test_training_runs_on_the_device_and_checkpoints_on_cpu(tmp_path, device, monkeypatch):
    """Model, optimizer moments, sampled batches and the data generator all on ``device``; files from CPU copies."""
    optimizers, batches = [], []

    class RecordingAdamW(torch.optim.AdamW):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            optimizers.append(self)

    monkeypatch.setattr(torch.optim, "AdamW", RecordingAdamW)
    recipe = _recipe("diffusion")
    dataset = ChunkDataset(_episodes(), recipe.policy.n_obs_steps, recipe.policy.horizon)
    torch.manual_seed(0)
    policy = build_policy(recipe, dataset)

    def loss_fn(p, batch):
        batches.append(batch)
        return p.compute_loss(batch)

    res = run_training(policy, loss_fn, dataset, recipe.train, tmp_path / "run", progress=False, device=device)
    assert res["step"] == 6 and len(batches) == 6 and np.isfinite(res["first_loss"]) and np.isfinite(res["loss"])
    assert dataset.device.type == device.type
    assert all(b["state"].device.type == b["action"].device.type == device.type for b in batches)
    assert {p.device.type for p in policy.parameters()} == {device.type}
    assert {p.device.type for p in res["policy"].parameters()} == {device.type}  # the EMA copy too
    moments = [v for st in optimizers[0].state.values() for k, v in st.items() if k in ("exp_avg", "exp_avg_sq")]
    assert moments and {m.device.type for m in moments} == {device.type}
    # the checkpoint loads on CPU with exactly the EMA weights that were trained on the device
    loaded = ckpt.load_policy(tmp_path / "run")
    trained = {k: v.cpu() for k, v in res["policy"].state_dict().items()}
    assert all(torch.equal(v, trained[k]) for k, v in loaded.state_dict().items())
    # and a sample on the device, from a generator there, is a finite chunk in the data's action range
    from robolearn.device import make_generator

    eval_policy = res["policy"].eval()
    obs = dataset.batch(torch.arange(3, device=device))
    chunk = eval_policy.sample_actions(obs, generator=make_generator(device, 0))
    again = eval_policy.sample_actions(obs, generator=make_generator(device, 0))
    assert chunk.device.type == device.type and chunk.shape == (3, 8, 2)
    assert torch.equal(chunk, again) and torch.isfinite(chunk).all()
    lo, hi = eval_policy.action_norm.min, eval_policy.action_norm.max
    assert torch.all(chunk >= lo - 1e-6) and torch.all(chunk <= hi + 1e-6)


def test_sampling_generator_must_live_with_the_data(device):
    dataset = ChunkDataset(_episodes(), 2, 8).to(device)
    other = "cuda:0" if device.type == "cpu" else "cpu"
    stand_in = SimpleNamespace(device=torch.device(other))  # a CPU-only machine cannot build a CUDA generator
    with pytest.raises(ValueError, match=f"generator is on {other} but the dataset is on {device}"):
        dataset.sample(4, stand_in)


def test_an_unavailable_device_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' is not available"):
        train_bc(_recipe(), _episodes(), tmp_path / "run", progress=False, device="cuda")
    assert not (tmp_path / "run").exists()


def test_resume_on_another_device_type_warns_and_continues(tmp_path, monkeypatch):
    out = tmp_path / "run"
    train_bc(_recipe(), _episodes(), out, steps=3, progress=False)
    state_file = out / "checkpoint" / "train" / "state.json"
    doc = json.loads(state_file.read_text())
    doc["device"] = "cuda:0"  # as if the first part had run on a GPU
    state_file.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match="trained on cuda:0 and resumes on cpu"):
        res = train_bc(_recipe(), _episodes(), out, steps=6, resume=True, progress=False)
    assert res["step"] == 6 and np.isfinite(res["loss"])
