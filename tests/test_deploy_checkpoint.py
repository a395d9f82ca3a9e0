"""`robolearn serve --checkpoint DIR`: a real (tiny, untrained) consistency-policy checkpoint folder loaded
in the inference child process, serving the sim robot over DDS loopback."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from procs import stop

pytest.importorskip("cyclonedds")
torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def _tiny_checkpoint(path: Path) -> Path:
    from robolearn.policies.registry import config_class, policy_class
    from robolearn.train.checkpoint import save_policy

    torch.manual_seed(0)
    cfg = config_class("consistency")(state_dim=15, action_dim=7, down_dims=(16, 32), horizon=8, n_action_steps=4,
                                      step_embed_dim=16, state_hidden=(32,), state_feature_dim=16)
    policy = policy_class("consistency")(cfg)
    # small actions: a tenth of the full range on each axis
    policy.set_normalization(-np.ones(15), np.ones(15), -0.1 * np.ones(7), 0.1 * np.ones(7))
    return save_policy(policy, path)


@pytest.mark.slow
def test_serve_a_checkpoint_folder(tmp_path):
    from robolearn.deploy.dds import free_domain_id, loopback_config

    torch.set_num_threads(1)
    ckpt = _tiny_checkpoint(tmp_path / "ckpt")
    domain = free_domain_id(os.getpid() + 71)
    env = dict(os.environ, CYCLONEDDS_URI=loopback_config())
    cli = [sys.executable, "-m", "robolearn.cli"]
    robot_status, serve_status = tmp_path / "robot.json", tmp_path / "serve.json"
    sim = subprocess.Popen(cli + ["sim-robot", "--domain", str(domain), "--seconds", "60", "--status-file",
                                  str(robot_status)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT)
    serve = subprocess.Popen(cli + ["serve", "--checkpoint", str(ckpt), "--domain", str(domain), "--seconds", "60",
                                    "--enable", "--print-every", "0", "--status-file", str(serve_status)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 50
        s = {}
        while time.time() < deadline:
            time.sleep(0.2)
            try:
                s = json.loads(serve_status.read_text())
                r = json.loads(robot_status.read_text())
            except (OSError, ValueError):
                continue
            if s["inference_ms"]["count"] >= 10 and r["commands"]["trajectory"] >= 100:
                break
        assert s.get("inference_ms", {}).get("count", 0) >= 10, f"serve status: {s}"
        assert s["bad_chunks"] == 0 and s["safety"]["rejected"] == 0, s["last_error"]
        r = json.loads(robot_status.read_text())
        assert r["commands"]["trajectory"] >= 100 and r["moved"] > 1e-3
    finally:
        stop(serve, sim)


def test_serve_missing_checkpoint_is_one_clear_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "robolearn.cli", "serve", "--checkpoint", str(tmp_path / "nope"),
                          "--seconds", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "robolearn: error: inference process failed to start: FileNotFoundError: checkpoint not found" in out.stderr
    assert "Traceback" not in out.stderr
