"""Bad numeric flags fail before any work, with one line naming the flag (exit 1, nothing written).

``train bc --steps -5`` used to print "step 0: final loss nan; checkpoint in ..." and exit 0 with no
checkpoint written: a success that did not happen.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from robolearn.cli import main


def test_train_bc_negative_steps_in_a_real_subprocess(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, MUJOCO_GL="egl")
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "train", "bc", "--policy", "policies/diffusion.yaml",
         "--data", str(tmp_path / "data"), "--out", str(out), "--steps", "-5"],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "robolearn: error: --steps must be >= 1, got -5"
    assert "checkpoint" not in proc.stdout
    assert not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["train", "bc", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["train", "bc", "--threads", "-1"], "--threads must be >= 0 (0: torch default), got -1"),
    (["distill", "--teacher", "TEACHER", "--steps", "-5"], "--steps must be >= 1, got -5"),
    (["distill", "--teacher", "TEACHER", "--threads", "-2"], "--threads must be >= 0 (0: torch default), got -2"),
    (["bench", "env", "--steps", "0"], "--steps must be >= 1, got 0"),
    (["bench", "env", "--reps", "-1"], "--reps must be >= 1, got -1"),
    (["bench", "env", "--sizes", "84,0"], "--sizes must be >= 1, got '84,0'"),
    (["bench", "env", "--sizes", "84,big"], "--sizes must be comma-separated integers, got '84,big'"),
    (["bench", "loop", "--seconds", "0"], "--seconds must be > 0, got 0.0"),
    (["bench", "loop", "--seconds", "nan"], "--seconds must be > 0, got nan"),
    (["bench", "loop", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["bench", "loop", "--domain", "300"], "--domain must be a DDS domain id in 0..232, got 300"),
    (["bench", "loop", "--rt-priority", "100"], "--rt-priority must be in 0..99"),
    (["bench", "loop", "--inference-nice", "20"], "--inference-nice must be in -20..19, got 20"),
])
def test_bad_flag_fails_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    if argv[0] in ("train", "distill"):
        argv = [*argv, "--out", str(out)]
        if argv[0] == "train":
            argv += ["--policy", "policies/diffusion.yaml", "--data", str(tmp_path / "data")]
    else:
        argv = [*argv, "--out", str(out / "bench.json")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"robolearn: error: {message}") and err.count("\n") == 1
    assert not out.exists()
