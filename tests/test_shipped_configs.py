"""Recipes and sim task configs ship inside the package and resolve by bare name from any folder (issue 12).

Why: ``bench policy --recipe``, ``train rl --config policies/rlpd.yaml`` and
``robolearn.make("sim/pick_cube", config="sim/pick_cube.yaml")`` named repository paths, so they failed
when run from any other folder, and an installed package had no recipes at all.
"""
import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import robolearn
from robolearn.shipped import (KINDS, RECIPES, TASK_CONFIGS, out_of_sync, resolve_recipe, resolve_task_config,
                               shipped_recipes, shipped_task_configs)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("kind", [RECIPES, TASK_CONFIGS], ids=lambda k: k.repo_dir)
def test_shipped_copies_are_byte_identical_to_the_editable_ones(kind):
    """policies/*.yaml and sim/*.yaml (the copies a user edits) must not drift from the package's copies:
    after editing one, run `make sync-configs` (python -m robolearn.shipped --sync)."""
    repo = sorted(p.name for p in (ROOT / kind.repo_dir).glob("*.yaml"))
    shipped = sorted(p.name for p in kind.folder.glob("*.yaml"))
    assert repo and repo == shipped
    differ = [n for n in repo if not filecmp.cmp(ROOT / kind.repo_dir / n, kind.folder / n, shallow=False)]
    assert not differ, f"{differ} differ from the shipped copies: run `make sync-configs`"


def test_out_of_sync_names_the_edited_file(tmp_path):
    """What `python -m robolearn.shipped --check` reports, on a checkout made from the shipped copies."""
    for kind in KINDS:
        shutil.copytree(kind.folder, tmp_path / kind.repo_dir)
    assert out_of_sync(tmp_path) == []
    (tmp_path / "policies" / "expo.yaml").write_text("type: x\n")
    (tmp_path / "sim" / "new_task.yaml").write_text("max_episode_steps: 5\n")
    (tmp_path / "hardware" / "ur5e.yaml").unlink()
    assert out_of_sync(tmp_path) == ["policies/expo.yaml", "sim/new_task.yaml", "hardware/ur5e.yaml"]


def test_recipes_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_recipe("rlpd") == RECIPES.folder / "rlpd.yaml"
    assert resolve_recipe("consistency.yaml") == RECIPES.folder / "consistency.yaml"
    assert resolve_recipe("policies/sac.yaml") == RECIPES.folder / "sac.yaml"  # the README's path
    assert {"rlpd", "sac", "diffusion", "consistency", "residual", "expo", "conrft"} <= set(shipped_recipes())
    own = tmp_path / "rlpd.yaml"  # a user's own file in the cwd wins over the shipped one
    own.write_text("algo: rlpd\n")
    assert resolve_recipe("rlpd.yaml") == Path("rlpd.yaml")
    with pytest.raises(FileNotFoundError, match=r"recipe 'difusion' not found .*did you mean 'diffusion'\?.*"
                                                r"shipped recipes: .*consistency.*rlpd"):
        resolve_recipe("difusion")
    with pytest.raises(FileNotFoundError, match="recipe '.*nowhere/rlpd.yaml' not found"):
        resolve_recipe(tmp_path / "nowhere" / "rlpd.yaml")  # a path that is no file never falls back
    with pytest.raises(ValueError, match="empty name"):
        resolve_recipe("")


def test_the_bc_recipe_loader_reads_a_resolved_name(tmp_path, monkeypatch):
    from robolearn.train.bc import load_recipe

    monkeypatch.chdir(tmp_path)
    assert load_recipe(resolve_recipe("consistency")).type == "consistency"


def test_sim_task_config_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert set(shipped_task_configs()) == {"pick_cube", "peg_insert"}
    for config in ("pick_cube", "sim/pick_cube.yaml"):
        env = robolearn.make("sim/pick_cube", config=config, max_episode_steps=7)
        try:
            assert env.unwrapped.task.config.lift_height == 0.06 and env.unwrapped.task.config.max_episode_steps == 7
        finally:
            env.close()
    env = robolearn.make("sim/peg_insert", config="peg_insert.yaml")
    env.close()
    assert resolve_task_config("peg_insert") == TASK_CONFIGS.folder / "peg_insert.yaml"
    with pytest.raises(FileNotFoundError, match="task config 'pick_cub' not found .*did you mean 'pick_cube'"):
        robolearn.make("sim/pick_cube", config="pick_cub")


def test_bench_policy_recipe_by_name_from_any_folder(tmp_path, monkeypatch):
    from robolearn.bench import policy_bench

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(checkpoint=None, recipe="diffusion", state_dim=15, action_dim=7)
    dp, cp = policy_bench.build_pair(args)
    assert dp.type == "diffusion" and cp.type == "consistency"
    args.recipe = "policies/diffusion.yaml"  # the old default, a repository path
    assert policy_bench.build_pair(args)[0].config.down_dims == dp.config.down_dims


def test_bench_policy_unknown_recipe_is_a_one_line_error(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "robolearn.cli", "bench", "policy", "--recipe", "difusion"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip().startswith("robolearn: error: recipe 'difusion' not found") and "'diffusion'" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_wheel_holds_every_shipped_config(tmp_path):
    """pyproject's package-data must put the recipes and configs into an install, not just the checkout."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "robolearn", src / "robolearn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q",
                        str(src), "-w", str(tmp_path / "wheel")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "wheel").glob("robolearn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for kind, folder in ((RECIPES, "robolearn/recipes"), (TASK_CONFIGS, "robolearn/sim/configs")):
        want = {f"{folder}/{n}.yaml" for n in kind.names()}
        assert want and want <= names, sorted(want - names)
    assert "robolearn/hardware/configs/sim_arm.yaml" in names
