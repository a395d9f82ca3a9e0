"""LeRobotDataset v3.0 import: store -> export -> import -> store round trips (state/action exact, frames
close), datasets without robolearn's extras, version errors, and damaged or missing files named."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="pyarrow is the optional 'lerobot' extra")
pytest.importorskip("pandas", reason="pandas is the optional 'lerobot' extra")
pytest.importorskip("av", reason="PyAV is the optional 'lerobot' extra")
import pyarrow.parquet as pq  # noqa: E402

from robolearn.data.episode_store import EpisodeStore  # noqa: E402
from robolearn.data.lerobot_export import export_lerobot  # noqa: E402
from robolearn.data.lerobot_import import LeRobotImportError, import_lerobot  # noqa: E402
from test_lerobot_export import _store, _write_episode  # noqa: E402

# mean |decoded - original| per pixel (0..255); the test frames come back at ~2 (yuv420p + H.264),
# a frame off by one step at ~7
MAX_PIXEL_ERROR = 3.0


def _export(tmp_path, lengths=(5, 7, 4, 6), cameras=("front", "wrist"), **kwargs):
    _store(tmp_path / "src", lengths=lengths, cameras=cameras, **kwargs)
    # small files: the 4 episodes spread over several data files and several mp4s per camera
    export_lerobot(tmp_path / "src", tmp_path / "ds", progress=False, log=None,
                   data_files_size_in_mb=1.2e-3, video_files_size_in_mb=1.5e-3)
    return list(EpisodeStore(tmp_path / "src")), tmp_path / "ds"


def _check_same_steps(a, b, *, final_exact=True):
    T = a.length
    assert b.length == T
    np.testing.assert_array_equal(b.action, a.action)
    np.testing.assert_array_equal(b.state[:T], a.state[:T])
    if final_exact:
        np.testing.assert_array_equal(b.state[T], a.state[T])
    for key in ("reward", "terminated", "truncated", "success", "intervened"):
        np.testing.assert_array_equal(getattr(b, key), getattr(a, key), err_msg=key)


def test_round_trip_with_cameras_over_several_files(tmp_path):
    src, ds = _export(tmp_path)
    assert len(list((ds / "data").rglob("*.parquet"))) >= 2
    assert len(list((ds / "videos" / "observation.images.front").rglob("*.mp4"))) >= 2
    summary = import_lerobot(ds, tmp_path / "back", progress=False, log=None)
    assert summary["episodes"] == 4 and summary["frames"] == 22 and summary["ignored_features"] == []
    assert summary["cameras"] == {"observation.images.front": "front", "observation.images.wrist": "wrist"}
    back = list(EpisodeStore(tmp_path / "back", create=False))
    assert len(back) == 4
    for a, b in zip(src, back):
        _check_same_steps(a, b)
        assert sorted(b.images) == ["front", "wrist"]
        for cam in ("front", "wrist"):
            assert b.images[cam].shape == a.images[cam].shape
            err = np.abs(b.images[cam][:-1].astype(int) - a.images[cam][:-1].astype(int)).mean()
            assert err < MAX_PIXEL_ERROR, (a.name, cam, err)
            np.testing.assert_array_equal(b.images[cam][-1], a.images[cam][-1])  # the final frame is a PNG
        assert b.meta["env"] == "sim/peg_insert" and b.meta["source"] == "test"
        assert b.meta["imported_from"]["episode_index"] == back.index(b)
    assert back[0].intervened[1] and back[1].truncated[-1] and not back[1].terminated[-1]
    assert not list(tmp_path.glob(".back*"))  # no temp dir left


def test_round_trip_without_cameras_and_odd_image_sizes(tmp_path):
    src, ds = _export(tmp_path, lengths=(3, 4), cameras=())
    import_lerobot(ds, tmp_path / "back", progress=False, log=None)
    back = list(EpisodeStore(tmp_path / "back", create=False))
    for a, b in zip(src, back, strict=True):
        _check_same_steps(a, b)
        assert b.images == {}

    rng = np.random.default_rng(2)
    store = EpisodeStore(tmp_path / "odd")
    _write_episode(store, rng, 4, size=(15, 21), meta={"env": "sim/peg_insert", "task": "odd"})
    export_lerobot(tmp_path / "odd", tmp_path / "odd_ds", progress=False, log=None)
    info = json.loads((tmp_path / "odd_ds" / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["shape"] == [16, 22, 3]  # padded in the mp4
    import_lerobot(tmp_path / "odd_ds", tmp_path / "odd_back", progress=False, log=None)
    a, b = store.load(0), EpisodeStore(tmp_path / "odd_back").load(0)
    assert b.images["front"].shape == (5, 15, 21, 3)  # cropped back
    assert np.abs(b.images["front"].astype(int) - a.images["front"].astype(int)).mean() < MAX_PIXEL_ERROR
    assert b.meta["task"] == "odd"


def test_a_dataset_made_elsewhere_repeats_the_last_frame(tmp_path):
    """Without meta/robolearn_episodes.parquet (any dataset LeRobot wrote) there is no final observation."""
    src, ds = _export(tmp_path, lengths=(4, 3), cameras=("front",))
    (ds / "meta" / "robolearn_episodes.parquet").unlink()
    summary = import_lerobot(ds, tmp_path / "back", progress=False, log=None)
    assert summary["final_observation"] == "repeated last frame"
    back = list(EpisodeStore(tmp_path / "back", create=False))
    for a, b in zip(src, back, strict=True):
        _check_same_steps(a, b, final_exact=False)
        np.testing.assert_array_equal(b.state[-1], a.state[a.length - 1])
        np.testing.assert_array_equal(b.images["front"][-1], b.images["front"][-2])
        assert b.meta["task"] == "sim/peg_insert" and b.meta["fps"] == 20
        assert b.meta["state_names"] == [f"state_{i}" for i in range(5)]
        assert "last frame" in b.meta["final_observation"]


def test_other_codebase_versions_are_refused_by_name(tmp_path):
    _src, ds = _export(tmp_path, lengths=(3,), cameras=())
    info_path = ds / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    for version, hint in (("v2.1", "convert_dataset_v21_to_v30"), ("v3.1", "v3.0 only"), ("v2.0", "v3.0")):
        info_path.write_text(json.dumps({**info, "codebase_version": version}))
        with pytest.raises(LeRobotImportError, match=rf"codebase_version is '{version}'.*{hint}"):
            import_lerobot(ds, tmp_path / "back", progress=False, log=None)
    assert not (tmp_path / "back").exists()


def _expect_error(ds, tmp_path, exc_type, *needles):
    with pytest.raises(exc_type) as info:
        import_lerobot(ds, tmp_path / "back", progress=False, log=None)
    for needle in needles:
        assert str(needle) in str(info.value), (needle, str(info.value))
    assert not (tmp_path / "back").exists() and not list(tmp_path.glob(".back*"))


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_data_parquet_is_named(tmp_path, damage):
    _src, ds = _export(tmp_path)
    path = sorted((ds / "data").rglob("*.parquet"))[1]
    if damage == "missing":
        path.unlink()
        _expect_error(ds, tmp_path, FileNotFoundError, path, "not found")
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        _expect_error(ds, tmp_path, LeRobotImportError, path, "truncated")


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_damaged_mp4_is_named(tmp_path, damage):
    _src, ds = _export(tmp_path)
    path = sorted((ds / "videos" / "observation.images.wrist").rglob("*.mp4"))[0]
    if damage == "missing":
        path.unlink()
        _expect_error(ds, tmp_path, FileNotFoundError, path, "not found")
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        _expect_error(ds, tmp_path, LeRobotImportError, path, "observation.images.wrist")


def test_missing_or_damaged_metadata_is_named(tmp_path):
    _src, ds = _export(tmp_path, lengths=(3, 2), cameras=())
    keep = tmp_path / "keep"
    shutil.copytree(ds, keep)

    def fresh():
        shutil.rmtree(ds)
        shutil.copytree(keep, ds)

    (ds / "meta" / "info.json").unlink()
    _expect_error(ds, tmp_path, FileNotFoundError, ds / "meta" / "info.json")
    fresh()
    (ds / "meta" / "info.json").write_text("{ not json")
    _expect_error(ds, tmp_path, LeRobotImportError, ds / "meta" / "info.json", "not valid JSON")
    fresh()
    (ds / "meta" / "tasks.parquet").unlink()
    _expect_error(ds, tmp_path, FileNotFoundError, ds / "meta" / "tasks.parquet")
    fresh()
    episodes = ds / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    episodes.write_bytes(episodes.read_bytes()[:100])
    _expect_error(ds, tmp_path, LeRobotImportError, episodes)
    fresh()
    shutil.rmtree(ds / "meta" / "episodes")
    _expect_error(ds, tmp_path, FileNotFoundError, ds / "meta" / "episodes")
    fresh()
    # the metadata says an episode is longer than its rows in the data file
    table = pq.read_table(episodes)
    lengths = table.column("length").to_pylist()
    table = table.set_column(table.schema.get_field_index("length"), "length", [[lengths[0] + 2] + lengths[1:]])
    pq.write_table(table, episodes)
    _expect_error(ds, tmp_path, LeRobotImportError, ds / "data" / "chunk-000" / "file-000.parquet",
                  "length 5")
    fresh()
    info = json.loads((ds / "meta" / "info.json").read_text())
    del info["features"]["action"]
    (ds / "meta" / "info.json").write_text(json.dumps(info))
    _expect_error(ds, tmp_path, LeRobotImportError, "no 'action' feature")
    fresh()
    import_lerobot(ds, tmp_path / "back", progress=False, log=None)  # the intact copy still imports


def test_cli_import(tmp_path, capsys):
    from robolearn.cli import main

    src, ds = _export(tmp_path, lengths=(3, 2), cameras=("front",))
    out = tmp_path / "imported"
    argv = ["data", "import", str(ds), "--format", "lerobot", "--out", str(out), "--json", "--no-progress"]
    assert main(argv) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert cap.err.startswith(f"data import: {ds} as lerobot (LeRobotDataset v3.0)")
    assert summary["episodes"] == 2 and summary["frames"] == 5 and summary["tasks"] == ["sim/peg_insert"]
    assert len(EpisodeStore(out, create=False)) == 2
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    capsys.readouterr()
    info = json.loads((ds / "meta" / "info.json").read_text())
    (ds / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    assert main(["data", "import", str(ds), "--out", str(tmp_path / "x"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "robolearn: error:" in err and "'v2.1'" in err and str(ds / "meta" / "info.json") in err
