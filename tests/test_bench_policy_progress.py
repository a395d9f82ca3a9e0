"""`bench policy` shows what it measures while it measures (issue 12).

Why: with the default 200 calls per sampler, DDPM-100 alone takes minutes on a CPU and the command
printed nothing until it was done, so it looked hung.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

TINY_DIFFUSION = """\
type: diffusion
policy: {n_obs_steps: 1, horizon: 8, n_action_steps: 4, down_dims: [8, 16], kernel_size: 3, n_groups: 4,
         step_embed_dim: 16, state_hidden: [16], state_feature_dim: 16, num_train_timesteps: 100}
"""


def _bench(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_DIFFUSION)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # stderr merged into stdout: the order in which lines reach the user is the order asserted
    return subprocess.run([sys.executable, "-m", "robolearn.cli", "bench", "policy", "--recipe", str(recipe),
                           "--calls", "3", "--warmup", "1", "--out", str(tmp_path / "p.json"), *extra],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=180)


def test_bench_policy_announces_and_shows_progress_per_sampler(tmp_path):
    r = _bench(tmp_path)
    assert r.returncode == 0, r.stdout
    out = r.stdout
    header = out.index("bench policy: 4 samplers")
    assert "3 timed calls (+1 warm-up) on cpu" in out and str(tmp_path / "p.json") in out.splitlines()[0]
    names = ["dp_ddpm_100", "dp_ddim_10", "cp_1_step", "cp_3_step"]
    last = header
    for k, name in enumerate(names, 1):
        bar = out.index(f"[{k}/4] {name}")  # the progress bar of this sampler (counts calls) ...
        result = out.index(f"{name} ", bar)  # ... comes before its result line
        assert last < bar < result, out
        assert "median" in out[result:].splitlines()[0]
        last = result
    assert "/4 [" in out and "call" in out  # tqdm's n/total counter over warm-up + timed calls
    doc = json.loads((tmp_path / "p.json").read_text())
    assert set(doc["results"]) == set(names) and all(v["calls"] == 3 for v in doc["results"].values())


def test_no_progress_keeps_only_the_result_lines(tmp_path):
    r = _bench(tmp_path, "--no-progress")
    assert r.returncode == 0, r.stdout
    assert "[1/4]" not in r.stdout and "\r" not in r.stdout
    assert len([line for line in r.stdout.splitlines() if "median" in line]) == 4


def test_bad_counts_fail_before_any_work(tmp_path):
    r = _bench(tmp_path, "--warmup", "-1")
    assert r.returncode == 1 and "--warmup must be >= 0, got -1" in r.stdout, r.stdout
    assert "bench policy:" not in r.stdout and not (tmp_path / "p.json").exists()
