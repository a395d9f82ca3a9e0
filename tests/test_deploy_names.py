"""Robot configs ship inside the package and resolve by bare name from any folder (issue 12).

Why: `sim-robot` and `serve` defaulted to `hardware/sim_arm.yaml`, a path relative to the repository,
so both failed when run from any other folder. Also here: `serve` with no robot on its domain warns.
"""
import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from procs import STILL_POLICY

from robolearn.hardware.robot_config import CONFIG_DIR, RobotConfig, resolve_robot, shipped_robots

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_match_the_editable_copies():
    """hardware/*.yaml (the copy a user edits) and the package's copies must not drift."""
    repo = sorted(p.name for p in (ROOT / "hardware").glob("*.yaml"))
    shipped = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))
    assert repo == shipped and {"sim_arm.yaml", "franka_fr3.yaml"} <= set(shipped)
    for name in repo:
        assert filecmp.cmp(ROOT / "hardware" / name, CONFIG_DIR / name, shallow=False), f"{name} differs"


def test_bare_names_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert RobotConfig.load("sim_arm").name == "sim_arm"
    assert RobotConfig.load("franka_fr3.yaml").joint_names[0].startswith("fr3")
    assert resolve_robot("hardware/sim_arm.yaml") == CONFIG_DIR / "sim_arm.yaml"  # the README's path
    own = tmp_path / "sim_arm.yaml"  # a user's own file in the cwd wins over the shipped one
    own.write_text((CONFIG_DIR / "sim_arm.yaml").read_text().replace("name: sim_arm", "name: mine"))
    assert RobotConfig.load("sim_arm.yaml").name == "mine"
    with pytest.raises(FileNotFoundError, match="shipped robots: .*franka_fr3.*sim_arm"):
        resolve_robot("sim_armm")
    with pytest.raises(FileNotFoundError, match="not found"):
        resolve_robot(tmp_path / "nowhere" / "x.yaml")
    assert "ur5e" in shipped_robots()


def _cli(args, cwd, timeout=60):
    from robolearn.deploy.dds import loopback_config

    env = dict(os.environ, CYCLONEDDS_URI=loopback_config(), MUJOCO_GL="egl", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "robolearn.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_unknown_robot_name_is_a_one_line_error(tmp_path):
    r = _cli(["robot", "enable", "--robot", "nope", "--wait", "0"], tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().startswith("robolearn: error: robot config 'nope' not found") and "sim_arm" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_from_another_folder_without_a_robot_warns_once(tmp_path):
    """Default --robot from a temporary cwd; no joint states -> one warning naming topic and domain."""
    pytest.importorskip("cyclonedds")
    from robolearn.deploy.dds import free_domain_id

    (tmp_path / "tiny.py").write_text(STILL_POLICY)
    domain = free_domain_id(os.getpid() + 41)
    r = _cli(["serve", "--policy", "tiny.py:Still", "--domain", str(domain), "--seconds", "4.5",
              "--inference", "thread", "--print-every", "0"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "serve: sim_arm over DDS domain" in r.stdout
    warnings = [line for line in r.stderr.splitlines() if "no joint states" in line]
    assert len(warnings) == 1, r.stderr
    assert "/joint_states" in warnings[0] and f"DDS domain {domain}" in warnings[0]
