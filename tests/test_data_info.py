"""``robolearn data info``: a folder that is not a store is an error (and is left untouched);
``--strict`` turns corrupt episode files into a non-zero exit."""
from __future__ import annotations

import json

import pytest

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.cli import main
from robolearn.data.episode_store import EpisodeStore
from robolearn.train.collect_cmd import collect


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("info") / "store"
    collect("sim/pick_cube", "random", 2, out, max_steps=5, progress=False, log=None)
    return out


def test_run_folder_is_not_a_store_and_gets_no_index(tmp_path, capsys):
    run = tmp_path / "peg_dp"
    (run / "checkpoint").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    before = sorted(p.name for p in run.iterdir())
    assert main(["data", "info", str(run)]) == 1
    err = capsys.readouterr().err
    assert "is not an episode store" in err and "config.json" in err and "checkpoint/" in err
    assert sorted(p.name for p in run.iterdir()) == before  # no index.json planted


def test_empty_folder_is_not_a_store(tmp_path, capsys):
    assert main(["data", "info", str(tmp_path)]) == 1
    assert "is not an episode store (no episode files; it is empty)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_store_reports_its_episodes(store, capsys):
    assert main(["data", "info", str(store), "--json", "--strict"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["steps"] == 10 and summary["corrupt"] == []


def test_strict_fails_on_a_truncated_episode_file(store, tmp_path, capsys):
    copy = tmp_path / "store"
    copy.mkdir()
    for p in sorted(store.glob("episode_*.npz")):
        (copy / p.name).write_bytes(p.read_bytes())
    first = sorted(copy.glob("episode_*.npz"))[0]
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])
    assert main(["data", "info", str(copy)]) == 0  # without --strict: listed, not fatal
    out = capsys.readouterr().out
    assert "corrupt files skipped (1)" in out and first.stem in out
    assert main(["data", "info", str(copy), "--strict"]) == 1
    captured = capsys.readouterr()
    assert "1 corrupt episode file(s)" in captured.err and first.stem in captured.out
    with pytest.warns(UserWarning, match="skipping corrupt episode file"):
        assert len(EpisodeStore(copy, create=False)) == 1
