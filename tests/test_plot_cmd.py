"""``robolearn plot`` on any run: BC or RL folder or a checkpoint inside one, metric suggestions, rate axes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robolearn.cli import main
from robolearn.train import plot_cmd
from robolearn.train.bc import recipe_from_dict, train_bc
from robolearn.train.logging import ScalarLogger

POLICY = {"down_dims": [8, 16], "n_groups": 4, "step_embed_dim": 8, "state_hidden": [16], "state_feature_dim": 8,
          "horizon": 8, "n_action_steps": 4}


@pytest.fixture(scope="module")
def bc_run(tmp_path_factory):
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    eps = []
    for i in range(3):
        s = rng.normal(size=(13, 4)).astype(np.float32)
        eps.append(SimpleNamespace(name=f"ep{i}", state=s, action=np.tanh(s[:12, :2]).astype(np.float32), images={}))
    recipe = recipe_from_dict({"type": "diffusion", "policy": dict(POLICY),
                               "train": {"steps": 6, "batch_size": 8, "warmup_steps": 2, "log_every": 2,
                                         "checkpoint_every": 3}})
    out = tmp_path_factory.mktemp("bc") / "peg_dp"
    train_bc(recipe, eps, out, progress=False)
    return out


@pytest.fixture
def rl_run(tmp_path):
    run = tmp_path / "peg_rl"
    with ScalarLogger(run, tensorboard=False) as log:
        for step, rate in ((100, 0.0), (200, 0.5), (300, 1.0)):
            log.log(step, {"eval/success_rate": rate, "eval/return": 10 * rate, "train/critic_loss": 1 - rate})
    (run / "checkpoints" / "step_000000300").mkdir(parents=True)
    return run


def test_plot_a_bc_run_with_no_flags(bc_run, capsys):
    """``robolearn plot runs/peg_dp`` failed: BC wrote no scalars.csv, and --out was required."""
    assert main(["plot", str(bc_run)]) == 0
    png = bc_run / "plots" / "train_loss.png"
    assert png.stat().st_size > 1000
    out = capsys.readouterr().out
    assert f"plotted train/loss (1 curve, 3 points) to {png}" in out
    assert "train/lr" in out  # the other metrics are named


def test_plot_from_a_checkpoint_inside_the_run(bc_run, rl_run, tmp_path):
    assert main(["plot", str(bc_run / "checkpoint"), "--metric", "train/lr", "--out", str(tmp_path / "lr.png")]) == 0
    assert (tmp_path / "lr.png").stat().st_size > 1000
    assert main(["plot", str(rl_run / "checkpoints" / "step_000000300"), "--out", str(tmp_path / "rl.png")]) == 0
    assert (tmp_path / "rl.png").stat().st_size > 1000


def test_a_missing_metric_lists_the_available_ones_with_a_suggestion(bc_run, tmp_path, capsys):
    assert main(["plot", str(bc_run), "--metric", "train/los", "--out", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert "has no values for metric 'train/los' (did you mean 'train/loss'?)" in err
    assert "available metrics: train/ema_decay, train/loss, train/lr, train/samples_per_s" in err
    assert not (tmp_path / "x.png").exists()
    assert main(["plot", str(bc_run), "--metric", "loss", "--out", str(tmp_path / "x.png")]) == 1
    assert "(did you mean 'train/loss'?)" in capsys.readouterr().err  # the tag without its group


def test_success_rates_are_drawn_on_a_0_1_axis_with_markers(rl_run):
    fig, data = plot_cmd.draw([[str(rl_run)]], "eval/success_rate")
    ax = fig.axes[0]
    assert ax.get_ylim() == (0.0, 1.0)
    (line,) = ax.get_lines()
    assert line.get_marker() == "o"
    assert list(line.get_xdata()) == [100, 200, 300] and ax.get_xlabel() == "env steps"
    fig, _ = plot_cmd.draw([[str(rl_run)]], "eval/return")  # other metrics keep an autoscaled line
    assert fig.axes[0].get_lines()[0].get_marker() in ("None", None, "")
    assert fig.axes[0].get_ylim() != (0.0, 1.0)


def test_bc_runs_are_labelled_in_training_steps(bc_run):
    fig, _ = plot_cmd.draw([[str(bc_run)]], "train/loss")
    assert fig.axes[0].get_xlabel() == "training steps"
