"""One scalar log for every trainer: BC writes the CSV RL writes, ``load_scalars`` reads any run.

BC used to write ``log.jsonl`` and RL ``scalars.csv``, so ``robolearn plot runs/peg_dp`` failed on a BC run.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robolearn.train.bc import recipe_from_dict, train_bc
from robolearn.train.logging import ScalarLogger, find_scalar_log, load_scalars, read_scalars

torch.set_num_threads(1)
POLICY = {"down_dims": [8, 16], "n_groups": 4, "step_embed_dim": 8, "state_hidden": [16], "state_feature_dim": 8,
          "horizon": 8, "n_action_steps": 4}


def _episodes(n=3, t_len=12):
    rng = np.random.default_rng(0)
    eps = []
    for i in range(n):
        s = rng.normal(size=(t_len + 1, 4)).astype(np.float32)
        eps.append(SimpleNamespace(name=f"ep{i}", state=s, action=np.tanh(s[:t_len, :2]).astype(np.float32), images={}))
    return eps


def _recipe(**train):
    return recipe_from_dict({"type": "diffusion", "policy": dict(POLICY),
                             "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2,
                                       "checkpoint_every": 3, **train}})


def test_bc_writes_the_rl_scalar_csv_and_tensorboard(tmp_path):
    out = tmp_path / "run"
    train_bc(_recipe(), _episodes(), out, progress=False)
    rows = read_scalars(out / "scalars.csv")
    assert {r["tag"] for r in rows} == {"train/loss", "train/lr", "train/samples_per_s", "train/ema_decay"}
    assert sorted({r["step"] for r in rows}) == [2, 4, 6]
    assert all(r["wall_time"] for r in rows)
    assert not (out / "log.jsonl").exists()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    lr_steps, lrs = load_scalars(out)["train/lr"]
    assert lr_steps == [2, 4, 6] and lrs[-1] < lrs[0]  # cosine decay to 0 at the end


def test_resume_after_a_kill_between_checkpoints_logs_each_step_once(tmp_path):
    """Rows the killed part logged after its last checkpoint are logged again by the resumed part: once."""
    out = tmp_path / "run"
    train_bc(_recipe(checkpoint_every=3, log_every=1), _episodes(), out, steps=3, progress=False)
    with ScalarLogger(out, tensorboard=False) as log:  # the killed part got to step 5 after checkpoint 3
        log.log(4, {"train/loss": 99.0})
        log.log(5, {"train/loss": 99.0})
    train_bc(_recipe(checkpoint_every=3, log_every=1), _episodes(), out, steps=6, resume=True, progress=False)
    steps = [r["step"] for r in read_scalars(out) if r["tag"] == "train/loss"]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert 99.0 not in load_scalars(out)["train/loss"][1]


def test_a_fresh_start_drops_an_attempt_killed_before_its_first_checkpoint(tmp_path):
    out = tmp_path / "run"
    with ScalarLogger(out, tensorboard=False) as log:
        log.log(2, {"train/loss": 99.0})
    train_bc(_recipe(), _episodes(), out, progress=False)
    assert 99.0 not in load_scalars(out)["train/loss"][1]


def test_a_run_from_before_the_csv_reads_and_resumes_into_one_log(tmp_path):
    out = tmp_path / "run"
    train_bc(_recipe(), _episodes(), out, steps=3, progress=False)
    (out / "scalars.csv").unlink()  # as BC wrote it before: log.jsonl only
    (out / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 0.5, "samples_per_s": 10.0}) + "\n"
                                           for s in (2, 3)) + '{"step": 4, "lo')  # and a torn last line
    assert load_scalars(out)["train/loss"] == ([2, 3], [0.5, 0.5])
    train_bc(_recipe(), _episodes(), out, steps=6, resume=True, progress=False)
    assert load_scalars(out)["train/loss"][0] == [2, 3, 4, 6]


def test_load_scalars_finds_the_log_from_a_checkpoint_inside_the_run(tmp_path):
    run = tmp_path / "rl"
    with ScalarLogger(run, tensorboard=False) as log:
        log.log(10, {"eval/success_rate": 0.5, "eval/return": 3.0})
        log.log(20, {"eval/success_rate": 1.0})
    deep = run / "checkpoints" / "step_000000020" / "policy"
    deep.mkdir(parents=True)
    assert find_scalar_log(deep) == run / "scalars.csv"
    assert load_scalars(deep) == {"eval/return": ([10], [3.0]), "eval/success_rate": ([10, 20], [0.5, 1.0])}


def test_a_folder_without_a_log_is_an_error_naming_what_it_holds(tmp_path):
    (tmp_path / "lonely").mkdir()
    (tmp_path / "lonely" / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no scalar log \(scalars.csv\) in .*lonely.*holds: notes.txt"):
        load_scalars(tmp_path / "lonely")
    with pytest.raises(FileNotFoundError, match="no run at"):
        load_scalars(tmp_path / "missing")
