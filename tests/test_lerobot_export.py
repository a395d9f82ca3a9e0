"""LeRobotDataset v3.0 export: the written layout checked the way LeRobot reads it (pyarrow/pandas/PyAV
only, no robolearn code), statistics, corrupt input, overwrite, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional 'lerobot' extra")
pd = pytest.importorskip("pandas", reason="pandas is the optional 'lerobot' extra")
av = pytest.importorskip("av", reason="PyAV is the optional 'lerobot' extra")
import pyarrow.parquet as pq  # noqa: E402

from robolearn.data.episode_store import EpisodeStore, read_episode  # noqa: E402
from robolearn.data.lerobot_export import export_lerobot, feature_stats, image_stats  # noqa: E402

H, W, D, A = 16, 24, 5, 7
QS = ("q01", "q10", "q50", "q90", "q99")
STATS = ("min", "max", "mean", "std", "count", *QS)


def _frames(T, phase, h=H, w=W):
    """Smooth moving gradients without hard edges (yuv420p halves the colour resolution, so an edge
    between two colours is lossy in any H.264 mp4, even at crf 0)."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.empty((T, h, w, 3), dtype=np.uint8)
    for t in range(T):
        out[t, ..., 0] = 20 + x * 100 // (w - 1) + 8 * t
        out[t, ..., 1] = 40 + y * 60 // (h - 1)
        out[t, ..., 2] = 30 + 12 * t + 5 * phase  # frames differ by far more than the codec's error
    return out


def _write_episode(store, rng, T, *, phase=0, success_at=None, truncate=False, intervene_at=(), meta=None, dim=D,
                   cameras=("front",), size=(H, W)):
    frames = {cam: _frames(T + 1, phase + 3 * k, *size) for k, cam in enumerate(cameras)}
    w = store.writer(meta=meta or {"env": "sim/peg_insert", "source": "test"})
    w.reset({"state": rng.normal(size=dim).astype(np.float32), "images": {c: f[0] for c, f in frames.items()}})
    for t in range(T):
        info = {"success": success_at is not None and t >= success_at}
        if t in intervene_at:
            info["intervene_action"] = np.full(A, 0.25, dtype=np.float32)
        last = t == T - 1
        w.step(
            rng.uniform(-1, 1, size=A).astype(np.float32),
            {"state": rng.normal(size=dim).astype(np.float32), "images": {c: f[t + 1] for c, f in frames.items()}},
            float(rng.normal()),
            last and not truncate,
            last and truncate,
            info,
        )
    return w.close()


def _store(root, lengths=(5, 7, 4), **kwargs):
    rng = np.random.default_rng(0)
    store = EpisodeStore(root)
    for i, T in enumerate(lengths):
        _write_episode(store, rng, T, phase=i, success_at=T - 1 if i != 1 else None, truncate=i == 1,
                       intervene_at=(1,) if i == 0 else (), **kwargs)
    return store


# ----------------------------------------------------------------------------------------------
# An independent reader: what LeRobot's LeRobotDatasetMetadata / LeRobotDataset do with the files
# ----------------------------------------------------------------------------------------------
def lerobot_like_load(root):
    """Metadata, all frames and an episode -> frames lookup, read as LeRobot v3.0 reads them."""
    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")  # load_tasks
    ep_paths = sorted((root / "meta" / "episodes").glob("*/*.parquet"))  # load_nested_dataset
    episodes = pd.concat([pd.read_parquet(p) for p in ep_paths], ignore_index=True)
    data_paths = sorted((root / "data").glob("*/*.parquet"))
    frames = pa.concat_tables([pq.read_table(p) for p in data_paths])  # rows in global index order
    return info, tasks, episodes, frames, data_paths


def lerobot_like_video_frames(path, timestamps, tolerance_s=1e-4):
    """LeRobot's pyav decoding: seek to the keyframe before the first timestamp, decode forward, take the
    closest frame to each query and insist it is within tolerance_s."""
    loaded, loaded_ts = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        container.seek(max(round(min(timestamps) / stream.time_base) - 1, 0), backward=True, any_frame=False,
                       stream=stream)
        for frame in container.decode(stream):
            ts = float(frame.pts * stream.time_base)
            loaded.append(frame.to_ndarray(format="rgb24"))
            loaded_ts.append(ts)
            if ts >= max(timestamps):
                break
    dist = np.abs(np.asarray(timestamps)[:, None] - np.asarray(loaded_ts)[None, :])
    assert dist.min(axis=1).max() <= tolerance_s, (timestamps, loaded_ts)
    return np.stack([loaded[i] for i in dist.argmin(axis=1)])


def _vec(table, key):
    col = table.column(key).combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def test_v30_layout_read_the_way_lerobot_reads_it(tmp_path):
    """Several episodes split over several data files and video files, two cameras, two tasks."""
    store = _store(tmp_path / "src", lengths=(5, 7, 4, 6), cameras=("front", "wrist"))
    rng = np.random.default_rng(3)
    _write_episode(store, rng, 3, phase=9, meta={"env": "sim/peg_insert", "task": "insert the peg"},
                   cameras=("front", "wrist"))
    episodes_src = list(store)
    out = tmp_path / "exports" / "peg"
    # ~92 bytes of rows per frame: a 1.2e-3 MB (1258 bytes) limit gives files of episodes [0, 1] and [2, 3, 4]
    summary = export_lerobot(tmp_path / "src", out, repo_id="local/peg", fps=20, progress=False, log=None,
                             data_files_size_in_mb=1.2e-3, video_files_size_in_mb=1.5e-3)
    assert summary["episodes"] == 5 and summary["frames"] == 25 and summary["skipped"] == []
    info, tasks, episodes, frames, data_paths = lerobot_like_load(out)

    # meta/info.json: v3.0 keys and nothing of v2.1's
    assert info["codebase_version"] == "v3.0"
    assert {"total_chunks", "total_videos"}.isdisjoint(info)
    assert set(info) == {"codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
                         "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits",
                         "data_path", "video_path", "features"}
    assert info["total_episodes"] == 5 and info["total_frames"] == 25 and info["total_tasks"] == 2
    assert info["chunks_size"] == 1000 and info["fps"] == 20 and info["splits"] == {"train": "0:5"}
    assert info["data_files_size_in_mb"] == 1.2e-3 and info["video_files_size_in_mb"] == 1.5e-3
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["observation.state"] == {"dtype": "float32", "shape": [D], "names": [f"state_{i}" for i in range(D)]}
    assert feats["action"]["names"] == ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
    cam = feats["observation.images.front"]
    assert cam["dtype"] == "video" and cam["shape"] == [H, W, 3] and cam["names"] == ["height", "width", "channels"]
    assert cam["info"]["video.fps"] == 20 and cam["info"]["video.codec"] == "h264"
    assert cam["info"]["video.pix_fmt"] == "yuv420p" and cam["info"]["video.is_depth_map"] is False
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert feats[key]["shape"] == [1]

    # meta/tasks.parquet: the text is the index named "task", task_index int64, rows in task_index order
    assert tasks.index.name == "task" and list(tasks.columns) == ["task_index"]
    assert tasks["task_index"].dtype == np.int64
    assert list(tasks.index) == ["sim/peg_insert", "insert the peg"] and tasks["task_index"].tolist() == [0, 1]
    assert tasks.loc["insert the peg", "task_index"] == 1  # how LeRobot maps a task text to its index

    # meta/episodes: one file, one row per episode in order, every column
    assert [p.relative_to(out).as_posix() for p in sorted((out / "meta" / "episodes").rglob("*.parquet"))] == [
        "meta/episodes/chunk-000/file-000.parquet"]
    schema = pq.read_schema(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    assert schema.field("tasks").type == pa.list_(pa.string())
    for key in ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
        assert schema.field(key).type == pa.int64(), key
    for vk in ("observation.images.front", "observation.images.wrist"):
        for key in ("chunk_index", "file_index"):
            assert schema.field(f"videos/{vk}/{key}").type == pa.int64()
        for key in ("from_timestamp", "to_timestamp"):
            assert schema.field(f"videos/{vk}/{key}").type == pa.float64()
    for feature, ft in feats.items():
        for stat in STATS:
            assert f"stats/{feature}/{stat}" in episodes.columns, (feature, stat)
    assert episodes["episode_index"].tolist() == [0, 1, 2, 3, 4]
    assert episodes["length"].tolist() == [5, 7, 4, 6, 3]
    assert [list(t) for t in episodes["tasks"]] == [["sim/peg_insert"]] * 4 + [["insert the peg"]]
    assert episodes["dataset_from_index"].tolist() == [0, 5, 12, 16, 22]
    assert episodes["dataset_to_index"].tolist() == [5, 12, 16, 22, 25]
    assert (episodes["meta/episodes/chunk_index"] == 0).all() and (episodes["meta/episodes/file_index"] == 0).all()

    # data: whole episodes, several per file, more than one file; global rows line up with the indices
    assert len(data_paths) >= 2 and frames.num_rows == 25
    per_file = {p.relative_to(out).as_posix(): set(pq.read_table(p).column("episode_index").to_pylist())
                for p in data_paths}
    assert max(len(s) for s in per_file.values()) >= 2
    for i, ep in enumerate(episodes_src):
        row = episodes.iloc[i]
        path = info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
        assert i in per_file[path] and sum(i in s for s in per_file.values()) == 1  # never split
        rows = frames.slice(row["dataset_from_index"], row["length"])
        T = ep.length
        np.testing.assert_array_equal(rows.column("episode_index").to_numpy(), np.full(T, i))
        np.testing.assert_array_equal(_vec(rows, "observation.state"), ep.state[:T])
        np.testing.assert_array_equal(_vec(rows, "action"), ep.action)
        np.testing.assert_array_equal(rows.column("next.reward").to_numpy(), ep.reward)
        np.testing.assert_array_equal(rows.column("next.done").to_numpy(), ep.terminated | ep.truncated)
        np.testing.assert_array_equal(rows.column("next.truncated").to_numpy(), ep.truncated)
        np.testing.assert_array_equal(rows.column("next.success").to_numpy(), ep.success)
        np.testing.assert_array_equal(rows.column("complementary_info.is_intervention").to_numpy(), ep.intervened)
        np.testing.assert_array_equal(rows.column("frame_index").to_numpy(), np.arange(T))
        np.testing.assert_array_equal(rows.column("index").to_numpy(), row["dataset_from_index"] + np.arange(T))
        task = tasks.index[rows.column("task_index").to_numpy()[0]]
        assert task == row["tasks"][0]
        ts = rows.column("timestamp").to_numpy()
        assert ts.dtype == np.float32 and ts[0] == 0 and np.abs(np.diff(ts) - 1 / 20).max() < 1e-6
        # videos: the frame at from_timestamp + timestamp, within LeRobot's 1e-4 s
        for cam_name in ("front", "wrist"):
            vk = f"observation.images.{cam_name}"
            vpath = out / info["video_path"].format(video_key=vk, chunk_index=row[f"videos/{vk}/chunk_index"],
                                                     file_index=row[f"videos/{vk}/file_index"])
            start = row[f"videos/{vk}/from_timestamp"]
            assert row[f"videos/{vk}/to_timestamp"] == pytest.approx(start + T / 20)
            got = lerobot_like_video_frames(vpath, [start + float(t) for t in ts])
            err = np.abs(got.astype(int) - ep.images[cam_name][:T].astype(int)).mean()
            assert err < 3, (i, cam_name, err)
    schema = pq.read_schema(data_paths[0])
    assert schema.field("observation.state").type == pa.list_(pa.float32(), D)
    assert schema.field("action").type == pa.list_(pa.float32(), A)
    for key in ("frame_index", "episode_index", "index", "task_index"):
        assert schema.field(key).type == pa.int64(), key
    assert schema.field("timestamp").type == pa.float32() and schema.field("next.done").type == pa.bool_()
    # more than one video file per camera, and files hold several episodes back to back
    video_files = sorted((out / "videos" / "observation.images.front").rglob("*.mp4"))
    assert len(video_files) >= 2
    assert episodes["videos/observation.images.front/file_index"].value_counts().max() >= 2
    assert (episodes["videos/observation.images.front/from_timestamp"] > 0).any()

    # statistics: per episode in meta/episodes, whole dataset in stats.json, both with quantiles
    all_actions = np.concatenate([e.action for e in episodes_src])
    total = json.loads((out / "meta" / "stats.json").read_text())
    assert set(total) == set(feats)
    for key, st in total.items():
        assert set(st) == set(STATS), key
        if "image" in key:
            assert all(np.asarray(v).shape == (3, 1, 1) for s, v in st.items() if s != "count")
    np.testing.assert_allclose(total["action"]["mean"], all_actions.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(total["action"]["std"], all_actions.std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(total["action"]["q90"], np.quantile(all_actions, 0.9, axis=0), rtol=1e-5)
    assert total["index"]["max"] == [24] and total["action"]["count"] == [25]
    row = episodes.iloc[1]
    np.testing.assert_allclose(np.stack(row["stats/observation.state/mean"]), episodes_src[1].state[:7].mean(axis=0),
                               rtol=1e-5)
    np.testing.assert_allclose(np.stack(row["stats/action/q10"]), np.quantile(episodes_src[1].action, 0.1, axis=0),
                               rtol=1e-5)
    assert list(row["stats/action/count"]) == [7] and list(row["stats/frame_index/max"]) == [6]
    img_mean = np.asarray([np.stack(c) for c in row["stats/observation.images.front/mean"]])
    assert img_mean.shape == (3, 1, 1)

    card = (out / "README.md").read_text()
    assert "local/peg" in card and "from lerobot.datasets.lerobot_dataset import LeRobotDataset" in card
    assert "lerobot.common" not in card
    assert [p.name for p in out.parent.iterdir()] == ["peg"]  # no temp dir left behind


def test_export_without_cameras_has_no_video_path(tmp_path):
    _store(tmp_path / "src", lengths=(3, 4), cameras=())
    out = tmp_path / "out"
    export_lerobot(tmp_path / "src", out, progress=False, log=None)
    info, tasks, episodes, frames, data_paths = lerobot_like_load(out)
    assert info["video_path"] is None and not (out / "videos").exists()
    assert not any(c.startswith("videos/") for c in episodes.columns)
    assert len(data_paths) == 1 and frames.num_rows == 7  # default 100 MB: one file
    assert episodes["data/file_index"].tolist() == [0, 0]


def test_corrupt_source_episodes_are_skipped_and_named(tmp_path):
    store = _store(tmp_path / "src", lengths=(3, 4, 5, 6))
    files = sorted((tmp_path / "src").glob("episode_*.npz"))
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])  # truncated: caught by the store's index
    # PNG bytes replaced by garbage of the same length: a valid zip, caught only when frames are decoded.
    ep = read_episode(files[3])
    with np.load(files[3], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["img__front__data"] = np.random.default_rng(1).integers(0, 256, arrays["img__front__data"].shape, np.uint8)
    np.savez(files[3], **arrays)
    # A readable file whose state holds NaN (the writer refuses these; a hand-edited file may not).
    with np.load(files[0], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["state"] = arrays["state"].copy()
    arrays["state"][1, 2] = np.nan
    np.savez(tmp_path / "src" / "episode_000004.npz", **arrays)
    out = tmp_path / "out"
    logged = []
    summary = export_lerobot(tmp_path / "src", out, progress=False, log=logged.append)
    assert summary["skipped"] == ["episode_000001", "episode_000003", "episode_000004"]
    for name in summary["skipped"]:
        assert name in logged[0]
    assert "non-finite" in summary["skipped_reasons"]["episode_000004"]
    extra = pq.read_table(out / "meta" / "robolearn_episodes.parquet")
    assert extra.column("source_episode").to_pylist() == ["episode_000000", "episode_000002"]
    info, tasks, episodes, frames, _ = lerobot_like_load(out)
    assert episodes["episode_index"].tolist() == [0, 1]  # renumbered without gaps
    assert info["total_episodes"] == 2 and info["total_frames"] == 3 + 5
    assert frames.column("index").to_pylist() == list(range(8)) and ep.length == 6


def test_refuses_to_overwrite_unless_forced(tmp_path):
    _store(tmp_path / "src", lengths=(3,))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="--force"):
        export_lerobot(tmp_path / "src", out, progress=False, log=None)
    assert (out / "keep.txt").read_text() == "precious" and not (out / "meta").exists()
    export_lerobot(tmp_path / "src", out, force=True, progress=False, log=None)
    assert not (out / "keep.txt").exists() and (out / "meta" / "info.json").exists()
    # Even --force never writes into (and so deletes) the source store.
    with pytest.raises(ValueError, match="source store"):
        export_lerobot(tmp_path / "src", tmp_path / "src" / "nested", force=True, progress=False, log=None)
    with pytest.raises(ValueError, match="source store"):
        export_lerobot(tmp_path / "src", tmp_path, force=True, progress=False, log=None)
    assert len(EpisodeStore(tmp_path / "src")) == 1
    with pytest.raises(FileNotFoundError, match="no episode store"):
        export_lerobot(tmp_path / "missing", tmp_path / "o2", progress=False, log=None)
    with pytest.raises(ValueError, match="fps"):
        export_lerobot(tmp_path / "src", tmp_path / "o3", fps=0, progress=False, log=None)
    with pytest.raises(ValueError, match="data_files_size_in_mb"):
        export_lerobot(tmp_path / "src", tmp_path / "o4", data_files_size_in_mb=0, progress=False, log=None)
    with pytest.raises(ValueError, match="video_files_size_in_mb"):
        export_lerobot(tmp_path / "src", tmp_path / "o5", video_files_size_in_mb=-1, progress=False, log=None)


def test_mixed_shapes_fail_cleanly_without_partial_output(tmp_path):
    rng = np.random.default_rng(5)
    store = EpisodeStore(tmp_path / "src")
    _write_episode(store, rng, 3)
    _write_episode(store, rng, 3, dim=D + 2)
    with pytest.raises(ValueError, match=r"episode_000001 has shapes"):
        export_lerobot(tmp_path / "src", tmp_path / "out", progress=False, log=None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # neither out nor a temp dir


def test_cli_export(tmp_path, capsys):
    from robolearn.cli import main

    _store(tmp_path / "src", lengths=(3, 2))
    out = tmp_path / "exp"
    argv = ["data", "export", str(tmp_path / "src"), "--format", "lerobot", "--out", str(out),
            "--repo-id", "local/peg", "--fps", "10", "--task", "insert the peg", "--json", "--no-progress",
            "--data-file-size-mb", "0.0003"]  # 314 bytes: one episode (~93 bytes/frame) per file
    assert main(argv) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert "LeRobotDataset v3.0" in cap.err
    assert summary["episodes"] == 2 and summary["frames"] == 5 and summary["repo_id"] == "local/peg"
    assert len(summary["files"]["data"]) == 2 and len(summary["files"]["videos"]) == 1
    assert str(out / "meta" / "episodes" / "chunk-000" / "file-000.parquet") in summary["files"]["meta"]
    info, tasks, episodes, frames, _ = lerobot_like_load(out)
    assert info["fps"] == 10 and info["data_files_size_in_mb"] == 0.0003
    np.testing.assert_allclose(frames.column("timestamp").to_numpy()[:3], [0.0, 0.1, 0.2], atol=1e-6)
    assert list(tasks.index) == ["insert the peg"]
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err


def test_fps_defaults_to_the_recorded_one(tmp_path):
    _write_episode(EpisodeStore(tmp_path / "src"), np.random.default_rng(9), 3,
                   meta={"env": "sim/peg_insert", "fps": 12})
    export_lerobot(tmp_path / "src", tmp_path / "out", progress=False, log=None)
    info, _tasks, episodes, frames, _ = lerobot_like_load(tmp_path / "out")
    assert info["fps"] == 12 and info["features"]["observation.images.front"]["info"]["video.fps"] == 12
    assert frames.column("timestamp").to_numpy()[1] == pytest.approx(1 / 12)
    assert episodes["videos/observation.images.front/to_timestamp"].iloc[0] == pytest.approx(3 / 12)


def _state_names_of(out):
    return json.loads((out / "meta" / "info.json").read_text())["features"]["observation.state"]["names"]


def test_state_names_come_from_the_recorded_meta(tmp_path):
    names = ["ee_pos.0", "ee_pos.1", "ee_pos.2", "gripper", "t"]
    _write_episode(EpisodeStore(tmp_path / "src"), np.random.default_rng(9), 2,
                   meta={"env": "sim/peg_insert", "state_names": names})
    export_lerobot(tmp_path / "src", tmp_path / "out", progress=False, log=None)
    assert _state_names_of(tmp_path / "out") == names


def test_unrecorded_state_names_are_generic_or_empty(tmp_path):
    _write_episode(EpisodeStore(tmp_path / "src"), np.random.default_rng(9), 2,
                   meta={"env": "sim/peg_insert", "state_names": ["too", "short"]})  # wrong length: ignored
    export_lerobot(tmp_path / "src", tmp_path / "a", progress=False, log=None)
    assert _state_names_of(tmp_path / "a") == [f"state_{i}" for i in range(D)]
    export_lerobot(tmp_path / "src", tmp_path / "b", progress=False, log=None, state_names_from_env=False)
    assert _state_names_of(tmp_path / "b") is None


def test_export_never_builds_the_recorded_env(tmp_path):
    """Exporting a sim/ store must not import MuJoCo or the sim package (it used to build the env)."""
    import subprocess
    import sys

    _store(tmp_path / "src", lengths=(3,))
    code = (
        "import sys\n"
        "from robolearn.data.lerobot_export import export_lerobot\n"
        f"export_lerobot({str(tmp_path / 'src')!r}, {str(tmp_path / 'out')!r}, progress=False, log=None)\n"
        "loaded = sorted(m for m in ('mujoco', 'robolearn.sim', 'robolearn.envs.dmc') if m in sys.modules)\n"
        "assert not loaded, f'the export imported {loaded}'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "meta" / "info.json").is_file()


def test_stats_helpers_match_direct_computation():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(50, 3))
    s = feature_stats(x)
    np.testing.assert_allclose(s["mean"], x.mean(axis=0))
    np.testing.assert_allclose(s["std"], x.std(axis=0))
    for name, q in zip(QS, (0.01, 0.1, 0.5, 0.9, 0.99)):
        np.testing.assert_allclose(s[name], np.quantile(x, q, axis=0))
    assert s["count"].tolist() == [50]
    assert feature_stats(np.arange(4))["max"].tolist() == [3]  # scalar columns keep a dim of 1
    assert feature_stats(np.arange(4))["q50"].shape == (1,)
    frames = np.zeros((2, 2, 2, 3), np.uint8)
    frames[0, ..., 0] = 255  # red channel: half the pixels 1.0, half 0.0
    s = image_stats(frames)
    assert s["mean"].shape == (3, 1, 1) and s["q99"].shape == (3, 1, 1)
    np.testing.assert_allclose(s["mean"][:, 0, 0], [0.5, 0, 0])
    np.testing.assert_allclose(s["std"][:, 0, 0], [0.5, 0, 0])
    np.testing.assert_allclose(s["q10"][:, 0, 0], [0, 0, 0])
    np.testing.assert_allclose(s["q90"][:, 0, 0], [1, 0, 0])
    assert s["count"].tolist() == [2]
    frames = rng.integers(0, 200, size=(4, 6, 5, 3), dtype=np.uint8)
    px = frames.reshape(-1, 3).astype(np.int64)
    s = image_stats(frames)
    np.testing.assert_allclose(s["mean"].ravel(), px.mean(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), px.std(axis=0) / 255, rtol=1e-12)
    np.testing.assert_allclose(s["max"].ravel(), px.max(axis=0) / 255)
    np.testing.assert_allclose(s["q50"].ravel(), np.quantile(px, 0.5, axis=0, method="inverted_cdf") / 255)
    np.testing.assert_allclose(s["q01"].ravel(), np.quantile(px, 0.01, axis=0, method="inverted_cdf") / 255)
