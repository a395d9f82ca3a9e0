"""A short end-to-end run of the main job (`robolearn demo --quick`) as a user runs it, from a folder that is
not the checkout, and checks that what it reports is what its files hold."""
import json
import math
import re
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from robolearn.data.episode_store import EpisodeStore
from robolearn.train import checkpoint as ckpt
from robolearn.train import demo_cmd
from robolearn.train.logging import load_scalars


def test_demo_quick_end_to_end(tmp_path, device):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "demo", "--quick", "--out", str(out), "--device", str(device),
         "--no-progress"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("robolearn demo: 3 expert demos of sim/pick_cube"), proc.stdout[:300]
    assert "robolearn demo summary" in proc.stdout and "{" not in proc.stdout.split("demo summary")[1]
    summary = json.loads((out / "summary.json").read_text())
    store = EpisodeStore(out / "demos")
    assert len(store) == summary["train"]["demos"] == 3
    assert all(ep.succeeded for ep in store)  # the scripted expert at noise 0.4 still solves 3 of 3 here

    _check_base_learned(out / "seed0" / "base")
    evals = {name: json.loads((out / f"eval_{name}.json").read_text()) for name in ("base", "refined")}
    for name, doc in evals.items():
        _check_evaluation(doc, summary["evaluate"][name])
    # before and after are the same held-out episodes: the env's seeds match one by one
    assert [e["seed"] for e in evals["base"]["per_episode"]] == [e["seed"] for e in evals["refined"]["per_episode"]]
    _check_report((out / "report.md").read_text(), evals)
    _check_videos(summary["videos"])
    assert summary["train"]["method"] == demo_cmd.METHOD == "conrft" and summary["train"]["rl_steps"] == 60
    _check_refined_policy_acts(out / "seed0" / demo_cmd.METHOD, out / "demos")
    assert (out / "curve.png").read_bytes()[:4] == b"\x89PNG" and (out / "before_after.png").read_bytes()[:4] == b"\x89PNG"


def _check_base_learned(run_dir):
    """The base's logged BC loss fell (the same scalar log every trainer writes)."""
    steps, losses = load_scalars(run_dir)["train/loss"]
    assert steps == [10, 20, 30, 40]  # --quick logs every 10 of 40 steps
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert losses[-1] < 0.97 * losses[0], f"BC loss did not fall: {losses}"


def _check_evaluation(doc, reported):
    """The reported success rate is the one the rollouts produced."""
    episodes = doc["per_episode"]
    assert doc["episodes"] == len(episodes) == reported["episodes"] == 3
    assert doc["successes"] == sum(bool(e["success"]) for e in episodes) == reported["successes"]
    assert reported["success_rate"] == doc["successes"] / doc["episodes"]
    lo, hi = reported["ci95"]
    assert 0.0 <= lo <= reported["success_rate"] <= hi <= 1.0
    assert [e["seed"] for e in episodes] == [100_000, 100_001, 100_002]


def _check_report(md, evals):
    for name in ("base", "refined"):
        d = evals[name]
        row = next(ln for ln in md.splitlines() if ln.startswith("| BC base" if name == "base" else "| refined"))
        assert f"| {d['successes']}/{d['episodes']} = {100 * d['success_rate']:.0f}% |" in row, row
    assert re.search(r"mean Q -?\d+\.\d{3} vs discounted Monte-Carlo return", md)
    assert "![learning curve](curve.png)" in md and "videos/base/episode_000.mp4" in md
    pairs = list(zip(*(([bool(e["success"]) for e in evals[n]["per_episode"]]) for n in ("base", "refined"))))
    assert (f"both solved {pairs.count((True, True))}, only the refined policy {pairs.count((False, True))}, "
            f"only the base {pairs.count((True, False))}.") in md


def _check_videos(videos):
    """One filmed episode per policy: 256 px front camera, one frame per step plus the first."""
    for name in ("base", "refined"):
        (path,) = videos[name]["videos"]
        doc = json.loads((__import__("pathlib").Path(path).parent / "episodes.json").read_text())
        frames = iio.imread(path)
        assert frames.shape[0] == doc["per_episode"][0]["length"] + 1
        assert frames.shape[1:3] == (256, 256)
        assert videos[name]["success"] == [bool(doc["per_episode"][0]["success"])]


def _check_refined_policy_acts(run_dir, demos):
    """The RL run exports the fine-tuned consistency policy (ConRFT), which acts in the env's action box on a real
    demo state."""
    name, _cfg, meta = ckpt.read_config(ckpt.resolve(run_dir))
    assert name == "consistency"
    policy = ckpt.load_policy(run_dir)
    ep = EpisodeStore(demos).load(0)
    action = policy.act({"state": np.asarray(ep.state[0], dtype=np.float32)}, generator=torch.Generator().manual_seed(0))
    action = np.asarray(action)
    assert action.shape[-1] == 7 and np.all(np.isfinite(action)) and np.all(np.abs(action) <= 1.0 + 1e-6)


def test_demo_rl_steps_default_per_method():
    """--rl-steps defaults to what fits the demo's budget for the chosen method; an explicit value wins."""
    assert demo_cmd.DemoContext(out="x").rl_steps == demo_cmd.RL_STEPS[demo_cmd.METHOD] == 2000
    assert demo_cmd.DemoContext(out="x", method="residual").rl_steps == 4000
    assert demo_cmd.DemoContext(out="x", method="rlpd").rl_steps == demo_cmd.DEFAULT_RL_STEPS
    assert demo_cmd.DemoContext(out="x", method="residual", rl_steps=123).rl_steps == 123


def test_paired_outcomes_counts_episode_by_episode():
    base = [{"seed": s, "success": ok} for s, ok in zip(range(5), (True, True, False, False, True))]
    refined = [{"seed": s, "success": ok} for s, ok in zip(range(5), (True, False, True, False, True))]
    assert demo_cmd.paired_outcomes(base, refined) == {"both": 2, "refined_only": 1, "base_only": 1}

    with pytest.raises(ValueError, match="different episodes"):
        demo_cmd.paired_outcomes(base, refined[::-1])
