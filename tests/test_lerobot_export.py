"""LeRobotDataset v2.1 export: layout, parquet columns/dtypes/values, meta files, videos, corrupt input, overwrite."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is the optional 'lerobot' extra")
import pyarrow.parquet as pq  # noqa: E402

from robolearn.data.episode_store import EpisodeStore, read_episode  # noqa: E402
from robolearn.data.lerobot_export import aggregate_stats, export_lerobot, feature_stats, image_stats  # noqa: E402

H, W, D, A = 16, 24, 5, 7


def _frames(T, phase):
    """Smooth moving gradients (a video codec keeps these close to the input)."""
    y, x = np.mgrid[0:H, 0:W]
    out = np.empty((T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        out[t, ..., 0] = (x * 255 // (W - 1) + 6 * t + phase) % 256
        out[t, ..., 1] = y * 255 // (H - 1)
        out[t, ..., 2] = 40 + 10 * phase
    return out


def _write_episode(store, rng, T, *, phase=0, success_at=None, truncate=False, intervene_at=(), meta=None, dim=D):
    frames = _frames(T + 1, phase)
    w = store.writer(meta=meta or {"env": "sim/peg_insert", "source": "test"})
    w.reset({"state": rng.normal(size=dim).astype(np.float32), "images": {"front": frames[0]}})
    for t in range(T):
        info = {"success": success_at is not None and t >= success_at}
        if t in intervene_at:
            info["intervene_action"] = np.full(A, 0.25, dtype=np.float32)
        last = t == T - 1
        w.step(
            rng.uniform(-1, 1, size=A).astype(np.float32),
            {"state": rng.normal(size=dim).astype(np.float32), "images": {"front": frames[t + 1]}},
            float(rng.normal()),
            last and not truncate,
            last and truncate,
            info,
        )
    return w.close()


def _store(root, lengths=(5, 7, 4)):
    rng = np.random.default_rng(0)
    store = EpisodeStore(root)
    for i, T in enumerate(lengths):
        _write_episode(store, rng, T, phase=i, success_at=T - 1 if i != 1 else None, truncate=i == 1,
                       intervene_at=(1,) if i == 0 else ())
    return store


def _vec(table, key):
    col = table.column(key).combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), -1)


def _read_video(path):
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame[..., ::-1])
    finally:
        cap.release()
    return np.stack(frames) if frames else np.zeros((0, H, W, 3), np.uint8)


def test_export_layout_values_and_meta(tmp_path):
    store = _store(tmp_path / "src")
    episodes = list(store)
    out = tmp_path / "exports" / "peg"
    summary = export_lerobot(tmp_path / "src", out, repo_id="local/peg", fps=20, progress=False, log=None)
    assert summary["episodes"] == 3 and summary["frames"] == 16 and summary["skipped"] == []

    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v2.1"
    assert info["total_episodes"] == 3 and info["total_frames"] == 16 == sum(e.length for e in episodes)
    assert info["fps"] == 20 and info["chunks_size"] == 1000 and info["total_chunks"] == 1
    assert info["total_videos"] == 3 and info["total_tasks"] == 1 and info["splits"] == {"train": "0:3"}
    assert info["data_path"] == "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
    assert info["video_path"] == "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [D] and feats["observation.state"]["dtype"] == "float32"
    assert feats["action"]["shape"] == [A]
    assert feats["action"]["names"] == ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
    cam = feats["observation.images.front"]
    assert cam["dtype"] == "video" and cam["shape"] == [H, W, 3] and cam["info"]["video.fps"] == 20

    tasks = [json.loads(line) for line in (out / "meta" / "tasks.jsonl").read_text().splitlines()]
    assert tasks == [{"task_index": 0, "task": "sim/peg_insert"}]
    ep_meta = [json.loads(line) for line in (out / "meta" / "episodes.jsonl").read_text().splitlines()]
    assert [e["length"] for e in ep_meta] == [5, 7, 4]
    assert [e["episode_index"] for e in ep_meta] == [0, 1, 2]
    assert all(e["tasks"] == ["sim/peg_insert"] for e in ep_meta)

    start = 0
    for i, ep in enumerate(episodes):
        T = ep.length
        table = pq.read_table(out / info["data_path"].format(episode_chunk=0, episode_index=i))
        want_cols = {k for k, f in feats.items() if f["dtype"] != "video"}
        assert set(table.column_names) == want_cols
        assert table.num_rows == T
        schema = table.schema
        assert schema.field("observation.state").type == pa.list_(pa.float32(), D)
        assert schema.field("action").type == pa.list_(pa.float32(), A)
        assert schema.field("timestamp").type == pa.float32()
        for key in ("frame_index", "episode_index", "index", "task_index"):
            assert schema.field(key).type == pa.int64(), key
        assert schema.field("next.done").type == pa.bool_() and schema.field("next.reward").type == pa.float32()
        # frame t = (state[t], action[t]); the final observation is dropped
        np.testing.assert_array_equal(_vec(table, "observation.state"), ep.state[:T])
        np.testing.assert_array_equal(_vec(table, "action"), ep.action)
        np.testing.assert_array_equal(table.column("next.reward").to_numpy(), ep.reward)
        np.testing.assert_array_equal(table.column("next.done").to_numpy(), ep.terminated | ep.truncated)
        np.testing.assert_array_equal(table.column("next.truncated").to_numpy(), ep.truncated)
        np.testing.assert_array_equal(table.column("next.success").to_numpy(), ep.success)
        np.testing.assert_array_equal(table.column("complementary_info.is_intervention").to_numpy(), ep.intervened)
        np.testing.assert_array_equal(table.column("frame_index").to_numpy(), np.arange(T))
        np.testing.assert_array_equal(table.column("episode_index").to_numpy(), np.full(T, i))
        np.testing.assert_array_equal(table.column("index").to_numpy(), start + np.arange(T))
        np.testing.assert_array_equal(table.column("task_index").to_numpy(), np.zeros(T))
        ts = table.column("timestamp").to_numpy()
        assert np.abs(np.diff(ts) - 1 / 20).max() < 1e-4 and ts[0] == 0  # LeRobot's sync tolerance
        start += T

        video = _read_video(out / info["video_path"].format(
            episode_chunk=0, video_key="observation.images.front", episode_index=i))
        assert video.shape == (T, H, W, 3)
        assert np.abs(video.astype(int) - ep.images["front"][:T].astype(int)).mean() < 8

    # The intervention and the truncated episode made it through.
    assert episodes[0].intervened[1] and episodes[1].truncated[-1]

    stats_lines = [json.loads(line) for line in (out / "meta" / "episodes_stats.jsonl").read_text().splitlines()]
    assert [s["episode_index"] for s in stats_lines] == [0, 1, 2]
    for line in stats_lines:  # the shapes LeRobot's stats aggregation insists on
        assert set(line["stats"]) == {k for k in feats}
        for key, st in line["stats"].items():
            assert set(st) == {"min", "max", "mean", "std", "count"}
            for name, v in st.items():
                v = np.asarray(v)
                assert v.ndim >= 1 and (name != "count" or v.shape == (1,)), (key, name)
                assert "image" not in key or name == "count" or v.shape == (3, 1, 1), (key, name)
    s1 = stats_lines[1]["stats"]
    np.testing.assert_allclose(s1["observation.state"]["mean"], episodes[1].state[:7].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(s1["action"]["max"], episodes[1].action.max(axis=0))
    assert s1["action"]["count"] == [7] and s1["frame_index"]["max"] == [6]
    assert np.asarray(s1["observation.images.front"]["mean"]).shape == (3, 1, 1)
    total = json.loads((out / "meta" / "stats.json").read_text())
    all_actions = np.concatenate([e.action for e in episodes])
    np.testing.assert_allclose(total["action"]["mean"], all_actions.mean(axis=0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(total["action"]["std"], all_actions.std(axis=0), rtol=1e-5)
    assert total["index"]["max"] == [15]
    assert "local/peg" in (out / "README.md").read_text()
    assert [p.name for p in out.parent.iterdir()] == ["peg"]  # no temp dir left behind


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
    ep_meta = [json.loads(line) for line in (out / "meta" / "episodes.jsonl").read_text().splitlines()]
    assert [e["source_episode"] for e in ep_meta] == ["episode_000000", "episode_000002"]
    assert [e["episode_index"] for e in ep_meta] == [0, 1]  # renumbered without gaps
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 2 and info["total_frames"] == 3 + 5
    t1 = pq.read_table(out / "data" / "chunk-000" / "episode_000001.parquet")
    assert t1.num_rows == 5 and t1.column("index").to_numpy()[0] == 3
    assert ep.length == 6 and not (out / "data" / "chunk-000" / "episode_000002.parquet").exists()


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
            "--repo-id", "local/peg", "--fps", "10", "--task", "insert the peg", "--json", "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["frames"] == 5 and summary["repo_id"] == "local/peg"
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["fps"] == 10
    ts = pq.read_table(out / "data" / "chunk-000" / "episode_000000.parquet").column("timestamp").to_numpy()
    np.testing.assert_allclose(ts, [0.0, 0.1, 0.2], atol=1e-6)
    assert json.loads((out / "meta" / "tasks.jsonl").read_text()) == {"task_index": 0, "task": "insert the peg"}
    assert main(argv) == 1
    assert "already exists" in capsys.readouterr().err


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
    a, b = rng.normal(size=(5, 3)), rng.normal(3.0, 2.0, size=(9, 3))
    pooled = aggregate_stats([{"x": feature_stats(a)}, {"x": feature_stats(b)}])["x"]
    both = np.concatenate([a, b])
    np.testing.assert_allclose(pooled["mean"], both.mean(axis=0))
    np.testing.assert_allclose(pooled["std"], both.std(axis=0))
    np.testing.assert_array_equal(pooled["min"], both.min(axis=0))
    assert pooled["count"].tolist() == [14]
    assert feature_stats(np.arange(4))["max"].tolist() == [3]  # scalar columns keep a dim of 1
    frames = np.zeros((2, 2, 2, 3), np.uint8)
    frames[0, ..., 0] = 255  # red channel: half the pixels 1.0, half 0.0
    s = image_stats(frames)
    assert s["mean"].shape == (3, 1, 1)
    np.testing.assert_allclose(s["mean"][:, 0, 0], [0.5, 0, 0])
    np.testing.assert_allclose(s["std"][:, 0, 0], [0.5, 0, 0])
    assert s["count"].tolist() == [2]
    frames = rng.integers(0, 200, size=(4, 6, 5, 3), dtype=np.uint8)
    px = frames.reshape(-1, 3) / 255.0
    s = image_stats(frames)
    np.testing.assert_allclose(s["mean"].ravel(), px.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["std"].ravel(), px.std(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s["max"].ravel(), px.max(axis=0))
