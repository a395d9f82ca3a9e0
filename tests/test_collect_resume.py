"""Resuming ``collect`` into an existing store refuses episodes that would not match the ones there.

Before, a rerun without ``--cameras`` (or with another ``--image-size``) appended state-only or
differently sized episodes, and the mixed store only failed later in ``train bc`` or ``data export``.
Each test records a real tiny store (sim/pick_cube, 1 episode of 5 steps) and resumes it through the CLI.
"""
from __future__ import annotations

import pytest

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.cli import main
from robolearn.data.episode_store import EpisodeStore
from robolearn.train.collect_cmd import collect

ENV = "sim/pick_cube"


@pytest.fixture(scope="module")
def store_with_front_16(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "store"
    collect(ENV, "random", 1, out, max_steps=5, cameras="front", image_size=16, progress=False, log=None)
    return out


def _resume(out, *extra):
    return main(["collect", "--env", ENV, "--source", "random", "--episodes", "2", "--out", str(out),
                 "--max-steps", "5", "--no-progress", *extra])


def _files(out):
    return sorted(p.name for p in out.glob("episode_*.npz"))


def test_resume_without_cameras_is_refused_naming_both(store_with_front_16, capsys):
    before = _files(store_with_front_16)
    assert _resume(store_with_front_16) == 1
    err = capsys.readouterr().err
    assert "cameras front, not none" in err and "--cameras front" in err
    assert _files(store_with_front_16) == before


def test_resume_with_other_cameras_is_refused(store_with_front_16, capsys):
    assert _resume(store_with_front_16, "--cameras", "front,wrist", "--image-size", "16") == 1
    assert "cameras front, not front,wrist" in capsys.readouterr().err


def test_resume_with_other_image_size_is_refused_naming_both(store_with_front_16, capsys):
    before = _files(store_with_front_16)
    assert _resume(store_with_front_16, "--cameras", "front", "--image-size", "24") == 1
    err = capsys.readouterr().err
    assert "16x16 px, not 24x24 px" in err and "--image-size 24" in err
    assert _files(store_with_front_16) == before


def test_resume_with_other_env_is_refused(store_with_front_16, capsys):
    assert main(["collect", "--env", "sim/peg_insert", "--source", "random", "--episodes", "2",
                 "--out", str(store_with_front_16), "--max-steps", "5", "--cameras", "front",
                 "--image-size", "16", "--no-progress"]) == 1
    assert f"env={ENV!r}, not 'sim/peg_insert'" in capsys.readouterr().err


def test_state_only_store_refuses_cameras_and_matching_resume_appends(tmp_path, capsys):
    out = tmp_path / "state"
    collect(ENV, "random", 1, out, max_steps=5, progress=False, log=None)
    assert _resume(out, "--cameras", "front", "--image-size", "16") == 1
    assert "cameras none, not front" in capsys.readouterr().err
    assert _resume(out) == 0  # the same settings resume as before
    assert len(EpisodeStore(out)) == 2


def test_complete_store_is_reported_whatever_the_image_flags(store_with_front_16, capsys):
    """Nothing is appended to a store that already holds the episodes asked for, so nothing can mismatch."""
    assert main(["collect", "--env", ENV, "--source", "random", "--episodes", "1",
                 "--out", str(store_with_front_16), "--no-progress"]) == 0
    assert "nothing to collect" in capsys.readouterr().out
