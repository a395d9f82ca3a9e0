"""A short end-to-end run of the main job (`robolearn demo --quick`) as a user runs it, and checks of what it made."""
import json
import math
import subprocess
import sys

import cv2
import imageio.v3 as iio
import numpy as np
import torch

from robolearn.data.episode_store import EpisodeStore
from robolearn.train import checkpoint as ckpt


def test_demo_quick_end_to_end(tmp_path, device):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "demo", "--quick", "--out", str(out), "--device", str(device)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "robolearn demo summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for task in ("sim/pick_cube", "sim/peg_insert"):
        short = task.split("/")[1]
        store = EpisodeStore(out / "data" / short)
        assert len(store) == summary["collect"][task]["episodes"] == 3
        frames = iio.imread(out / f"{short}_expert.mp4")
        assert frames.shape[0] == summary["videos"][task]["frames"] > 5
        sheet = cv2.imread(str(out / f"{short}_contact_sheet.png"))
        assert sheet is not None and sheet.shape[0] > 100
    assert summary["collect"]["sim/pick_cube"]["success_rate"] >= 2 / 3
    bc = summary["bc"]
    assert bc["train_steps"] == 40 and bc["episodes"] == 2 and bc["device"] == str(device)
    assert "BC peg_insert" in proc.stdout
    _check_bc_training(out / "peg_bc", bc)
    _check_bc_evaluation(json.loads((out / "peg_bc_eval.json").read_text()), bc)
    _check_bc_checkpoint_acts(out / "peg_bc", out / "data" / "peg_insert")


def _check_bc_training(run_dir, bc):
    """The run learned: its logged loss fell, and the summary reports the log it wrote."""
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [10, 20, 30, 40]  # --quick logs every 10 steps
    assert bc["loss_curve"] == [[row["step"], round(row["loss"], 5)] for row in log]
    losses = [row["loss"] for row in log]
    assert all(math.isfinite(v) and v > 0 for v in losses) and math.isfinite(bc["final_loss"])
    # a diffusion net starts near loss 1 (unit-variance noise); 40 steps must take a real bite out of it
    assert losses[-1] < 0.97 * losses[0], f"BC loss did not fall: {losses}"


def _check_bc_evaluation(result, bc):
    """The reported success rate is the one the rollouts produced."""
    episodes = result["per_episode"]
    assert result["episodes"] == len(episodes) == bc["episodes"] == 2
    assert result["successes"] == sum(bool(e["success"]) for e in episodes)
    assert result["success_rate"] == bc["success_rate"] == result["successes"] / result["episodes"]
    lo, hi = bc["ci95"]
    assert 0.0 <= lo <= bc["success_rate"] <= hi <= 1.0
    assert len({e["seed"] for e in episodes}) == 2 and all(e["length"] >= 1 for e in episodes)
    rollout = iio.imread(bc["videos"][0])
    assert rollout.shape[0] == episodes[0]["length"] + 1  # the first frame, then one per step


def _check_bc_checkpoint_acts(run_dir, data_dir):
    """The checkpoint is the 40-step policy of this data, and acts within the demonstrated range on a real state."""
    name, _cfg, meta = ckpt.read_config(run_dir)
    assert name == "diffusion" and meta["step"] == 40 and meta["data"] == str(data_dir)
    policy = ckpt.load_policy(run_dir)
    demos = [ep for ep in EpisodeStore(data_dir) if ep.succeeded]
    actions = np.concatenate([np.asarray(ep.action) for ep in demos])
    obs = {"state": np.asarray(demos[0].state[0], dtype=np.float32)}
    chunk = policy.act(obs, generator=torch.Generator().manual_seed(0))
    assert chunk.shape == (policy.config.n_action_steps, actions.shape[1]) and np.all(np.isfinite(chunk))
    # dimensions the demos hold constant (here the peg's unused rotations and the closed gripper) come out as
    # that constant, to within the normalizer's smallest range; the others stay inside the demonstrated range
    lo, hi = actions.min(0), actions.max(0)
    flat = hi - lo < 1e-4
    np.testing.assert_allclose(chunk[:, flat], np.broadcast_to(lo[flat], chunk[:, flat].shape), atol=1e-3)
    assert np.all(chunk[:, ~flat] >= lo[~flat] - 1e-5) and np.all(chunk[:, ~flat] <= hi[~flat] + 1e-5)
    assert np.all(np.abs(chunk) <= 1.0 + 1e-3)  # the env's action box
