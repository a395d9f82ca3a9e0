"""Episode store: round trips, corruption handling, index rebuild, statistics, input validation."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from robolearn.data.episode_store import CorruptEpisodeError, Episode, EpisodeStore, read_episode


def _random_episode(rng, T, D=5, A=3, cams=("front", "wrist"), hw=(12, 16), success_at=None, intervene_at=()):
    """Arrays for one episode: obs list (T+1), actions, rewards, infos."""
    obs = []
    for _ in range(T + 1):
        o = {"state": rng.normal(size=D).astype(np.float32)}
        if cams:
            o["images"] = {c: rng.integers(0, 256, size=(*hw, 3), dtype=np.uint8) for c in cams}
        obs.append(o)
    actions = rng.uniform(-1, 1, size=(T, A)).astype(np.float32)
    rewards = rng.normal(size=T).astype(np.float32)
    infos = []
    for t in range(T):
        info = {"success": success_at is not None and t >= success_at}
        if t in intervene_at:
            info["intervene_action"] = np.full(A, 0.5, dtype=np.float32)
        infos.append(info)
    return obs, actions, rewards, infos


def _write(store, obs, actions, rewards, infos, meta=None):
    w = store.writer(meta=meta or {"env": "test"})
    w.reset(obs[0])
    T = len(actions)
    for t in range(T):
        w.step(actions[t], obs[t + 1], rewards[t], t == T - 1, False, infos[t])
    return w.close()


def test_round_trip_bit_identical(tmp_path):
    rng = np.random.default_rng(0)
    store = EpisodeStore(tmp_path / "ds")
    obs, actions, rewards, infos = _random_episode(rng, T=7, success_at=5, intervene_at=(2,))
    path = _write(store, obs, actions, rewards, infos, meta={"env": "x", "seed": 3})
    assert path.name == "episode_000000.npz"
    assert len(store) == 1 and store.names() == ["episode_000000"]
    ep = store.load(0)
    assert isinstance(ep, Episode)
    assert ep.length == 7 and ep.succeeded
    np.testing.assert_array_equal(ep.state, np.stack([o["state"] for o in obs]))
    assert ep.state.dtype == np.float32
    expected_actions = actions.copy()
    expected_actions[2] = 0.5  # the executed (intervention) action is what gets stored
    np.testing.assert_array_equal(ep.action, expected_actions)
    np.testing.assert_array_equal(ep.intervened, np.arange(7) == 2)
    np.testing.assert_array_equal(ep.reward, rewards)
    np.testing.assert_array_equal(ep.success, np.arange(7) >= 5)
    np.testing.assert_array_equal(ep.terminated, np.arange(7) == 6)
    assert not ep.truncated.any()
    for cam in ("front", "wrist"):
        frames = np.stack([o["images"][cam] for o in obs])
        assert ep.images[cam].dtype == np.uint8
        assert np.array_equal(ep.images[cam], frames)  # lossless
    assert ep.meta == {"env": "x", "seed": 3}
    # Loading by name gives the same; the file loads without pickle and holds no object arrays.
    assert np.array_equal(store.load("episode_000000").images["front"], ep.images["front"])
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_writer_reuse_discard_and_empty(tmp_path):
    rng = np.random.default_rng(1)
    store = EpisodeStore(tmp_path)
    w = store.writer()
    obs, actions, rewards, infos = _random_episode(rng, T=3, cams=())
    w.reset(obs[0])
    assert w.close() is None  # no steps -> nothing written
    w.reset(obs[0])
    w.step(actions[0], obs[1], rewards[0], False, False, infos[0])
    w.discard()
    assert len(store) == 0 and not list(tmp_path.glob("episode_*"))
    for _ in range(3):
        w.reset(obs[0], meta={"i": _})
        for t in range(3):
            w.step(actions[t], obs[t + 1], rewards[t], False, t == 2, infos[t])
        w.close()
    assert store.names() == [f"episode_{i:06d}" for i in range(3)]
    assert [store.load(i).meta["i"] for i in range(3)] == [0, 1, 2]
    assert store.load(-1).truncated[-1]
    with pytest.raises(RuntimeError, match="unsaved steps"):
        w.reset(obs[0])
        w.step(actions[0], obs[1], rewards[0], False, False, infos[0])
        w.reset(obs[0])


def _corrupt_store(tmp_path):
    rng = np.random.default_rng(2)
    store = EpisodeStore(tmp_path)
    for i in range(5):
        _write(store, *_random_episode(rng, T=4 + i, cams=("front",)))
    files = sorted(tmp_path.glob("episode_*.npz"))
    # 1: truncated mid-file (as if the disk filled up), 3: garbage bytes, 4: arrays of inconsistent length
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])
    files[3].write_bytes(b"this is not a zip file at all")
    ep = read_episode(files[4])
    arrays = {
        "format": np.array(1),
        "meta": np.array("{}"),
        "state": ep.state,
        "action": ep.action[:-1],  # one short
        "reward": ep.reward,
        "terminated": ep.terminated,
        "truncated": ep.truncated,
        "success": ep.success,
        "intervened": ep.intervened,
    }
    np.savez(files[4], **arrays)
    return files


def test_corrupt_and_truncated_files_are_named_and_skipped(tmp_path):
    files = _corrupt_store(tmp_path)
    store = EpisodeStore(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = store.names()
        loaded = list(store)
    assert names == ["episode_000000", "episode_000002"]
    assert [e.name for e in loaded] == names
    assert [e.length for e in loaded] == [4, 6]
    text = " ".join(str(w.message) for w in caught)
    for bad in ("episode_000001.npz", "episode_000003.npz", "episode_000004.npz"):
        assert bad in text
    assert "action has shape (7, 3)" in text
    summary = store.summary()
    assert summary["corrupt"] == ["episode_000001", "episode_000003", "episode_000004"]
    assert summary["episodes"] == 2 and summary["steps"] == 10
    with pytest.raises(CorruptEpisodeError, match="episode_000003.npz"):
        store.load("episode_000003")
    # A missing key is reported as such.
    with np.load(files[0], allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files if k != "reward"}
    np.savez(files[0], **arrays)
    with pytest.raises(CorruptEpisodeError, match="missing key.*reward"):
        read_episode(files[0])


def test_image_bytes_corruption_detected(tmp_path):
    rng = np.random.default_rng(3)
    store = EpisodeStore(tmp_path)
    path = _write(store, *_random_episode(rng, T=3, cams=("front",)))
    raw = bytearray(path.read_bytes())
    # Flip bytes inside the stored PNG data: the zip CRC (or PNG decoder) must catch it.
    pos = raw.find(b"IDAT")
    assert pos > 0
    for k in range(pos + 8, pos + 40):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptEpisodeError, match="episode_000000.npz"):
        read_episode(path)


def test_index_rebuilds_after_deletion_and_tracks_changes(tmp_path):
    rng = np.random.default_rng(4)
    store = EpisodeStore(tmp_path)
    for i in range(3):
        _write(store, *_random_episode(rng, T=2 + i, cams=(), success_at=0 if i == 1 else None))
    index_path = tmp_path / "index.json"
    store.summary()
    first = json.loads(index_path.read_text())
    assert sorted(first["files"]) == [f"episode_{i:06d}.npz" for i in range(3)]
    index_path.unlink()
    fresh = EpisodeStore(tmp_path)
    s = fresh.summary()
    assert index_path.exists()
    assert s["episodes"] == 3 and s["steps"] == 2 + 3 + 4
    assert s["success_rate"] == pytest.approx(1 / 3)
    assert s["keys"] == {"state": [5], "action": [3]}
    # A stale index (claims an episode that is gone, misses a new one) follows the files.
    (tmp_path / "episode_000000.npz").unlink()
    _write(store, *_random_episode(rng, T=9, cams=()))
    s2 = EpisodeStore(tmp_path).summary()
    assert s2["episodes"] == 3 and s2["steps"] == 3 + 4 + 9
    assert EpisodeStore(tmp_path).names() == ["episode_000001", "episode_000002", "episode_000003"]
    # Garbage index -> rebuilt, not an error.
    index_path.write_text("{not json")
    assert len(EpisodeStore(tmp_path)) == 3


def test_stats_match_numpy_and_invalidate(tmp_path):
    rng = np.random.default_rng(5)
    store = EpisodeStore(tmp_path)
    eps = [_random_episode(rng, T=3 + i, cams=("front",), hw=(4, 4)) for i in range(4)]
    for e in eps:
        _write(store, *e)
    stats = store.stats()
    states = np.concatenate([np.stack([o["state"] for o in e[0]]) for e in eps]).astype(np.float64)
    actions = np.concatenate([e[1] for e in eps]).astype(np.float64)
    rewards = np.concatenate([e[2] for e in eps]).astype(np.float64)
    for key, arr in (("state", states), ("action", actions), ("reward", rewards)):
        np.testing.assert_allclose(stats[key]["mean"], arr.mean(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(stats[key]["std"], arr.std(0), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(stats[key]["min"], arr.min(0))
        np.testing.assert_array_equal(stats[key]["max"], arr.max(0))
    # Cached in the index, and the cached copy is the same.
    assert json.loads((tmp_path / "index.json").read_text())["stats"]["no_images"]
    again = EpisodeStore(tmp_path).stats()
    np.testing.assert_array_equal(again["state"]["std"], stats["state"]["std"])
    # Image channel stats.
    frames = np.concatenate([np.stack([o["images"]["front"] for o in e[0]]) for e in eps]).reshape(-1, 3)
    img = store.stats(images=True)["images/front"]
    np.testing.assert_allclose(img["mean"], frames.mean(0), rtol=1e-10)
    np.testing.assert_allclose(img["std"], frames.std(0), rtol=1e-10)
    # Adding an episode invalidates the cache.
    extra = _random_episode(rng, T=5, cams=("front",), hw=(4, 4))
    _write(store, *extra)
    new = EpisodeStore(tmp_path).stats()
    all_rewards = np.concatenate([rewards, extra[2]])
    np.testing.assert_allclose(new["reward"]["mean"], all_rewards.mean(), rtol=1e-10)


def test_stats_empty_store_errors(tmp_path):
    with pytest.raises(ValueError, match="no valid episodes"):
        EpisodeStore(tmp_path).stats()


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda o, a, i: (o, a, i) if False else ([1, 2], a, i), "must be a dict with a 'state' key"),
        (lambda o, a, i: ({"pos": o["state"]}, a, i), "must be a dict with a 'state' key"),
        (lambda o, a, i: ({"state": o["state"][:3]}, a, i), r"state at step 1 has shape \(3,\), expected \(5,\)"),
        (lambda o, a, i: ({"state": np.full(5, np.nan)}, a, i), r"state at step 1 has non-finite"),
        (lambda o, a, i: (o, np.array([0.1, np.nan, 0.0]), i), r"action at step 1 has non-finite values .* \[1\]"),
        (lambda o, a, i: (o, np.zeros(4), i), r"action at step 1 has shape \(4,\), expected \(3,\)"),
        (lambda o, a, i: (o, a, {"intervene_action": [np.inf, 0, 0]}), r"intervene_action at step 1 has non-finite"),
        (lambda o, a, i: (o, np.zeros((3, 1)), i), r"action at step 1 must be a 1-D vector"),
    ],
)
def test_bad_step_inputs_raise_and_never_write(tmp_path, mutate, match):
    rng = np.random.default_rng(6)
    store = EpisodeStore(tmp_path)
    obs, actions, rewards, infos = _random_episode(rng, T=3, cams=())
    w = store.writer()
    w.reset(obs[0])
    w.step(actions[0], obs[1], rewards[0], False, False, infos[0])
    o, a, i = mutate(obs[2], actions[1], infos[1])
    with pytest.raises(ValueError, match=match):
        w.step(a, o, rewards[1], False, False, i)
    # The bad step was not recorded; the episode so far is still intact.
    assert w.num_steps == 1
    w.close()
    ep = store.load(0)
    assert ep.length == 1 and np.isfinite(ep.state).all()


def test_bad_images_and_reset_inputs(tmp_path):
    store = EpisodeStore(tmp_path)
    w = store.writer()
    state = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=r"images\['front'\] at reset must be \(H, W, 3\) uint8"):
        w.reset({"state": state, "images": {"front": np.zeros((4, 4, 3), np.float32)}})
    with pytest.raises(ValueError, match="state at reset has non-finite"):
        w.reset({"state": np.array([np.nan, 0.0])})
    w.reset({"state": state, "images": {"front": np.zeros((4, 4, 3), np.uint8)}})
    with pytest.raises(ValueError, match=r"images\['front'\] at step 0 has shape \(5, 4, 3\), expected \(4, 4, 3\)"):
        w.step(np.zeros(1), {"state": state, "images": {"front": np.zeros((5, 4, 3), np.uint8)}}, 0.0, False, False, {})
    with pytest.raises(ValueError, match=r"at step 0 have cameras \['wrist'\], expected \['front'\]"):
        w.step(np.zeros(1), {"state": state, "images": {"wrist": np.zeros((4, 4, 3), np.uint8)}}, 0.0, False, False, {})
    with pytest.raises(ValueError, match="reward at step 0 is not finite"):
        w.step(np.zeros(1), {"state": state, "images": {"front": np.zeros((4, 4, 3), np.uint8)}}, np.nan, False, False, {})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        store.writer(meta={"bad": object()})
    with pytest.raises(RuntimeError, match="before reset"):
        store.writer().step(np.zeros(1), {"state": state}, 0.0, False, False, {})
    with pytest.raises(FileNotFoundError, match="no episode 'episode_000042'"):
        store.load("episode_000042")
    with pytest.raises(IndexError, match="holds 0 episodes"):
        store.load(0)
    with pytest.raises(FileNotFoundError, match="episode store not found"):
        EpisodeStore(tmp_path / "nope", create=False)


def test_next_index_skips_taken_names_and_cleans_stale_temps(tmp_path):
    rng = np.random.default_rng(7)
    store = EpisodeStore(tmp_path)
    e = _random_episode(rng, T=2, cams=())
    _write(store, *e)
    # A stray temp file from a killed writer (dead pid) is invisible and removed by a new writer;
    # a temp file of a live writer (our own pid) is left alone.
    dead = tmp_path / ".tmp-episode-999999999-deadbeef.npz"
    dead.write_bytes(b"partial")
    live = tmp_path / f".tmp-episode-{os.getpid()}-cafe.npz"
    live.write_bytes(b"partial")
    assert store.names() == ["episode_000000"]
    w = store.writer()
    assert not dead.exists() and live.exists()
    live.unlink()
    # Another process already claimed the next name (even a corrupt one): never overwrite it.
    (tmp_path / "episode_000001.npz").write_bytes(b"someone else's")
    w.reset(e[0][0])
    w.step(e[1][0], e[0][1], e[2][0], True, False, e[3][0])
    path = w.close()
    assert path.name == "episode_000002.npz"
    assert (tmp_path / "episode_000001.npz").read_bytes() == b"someone else's"
    assert not list(tmp_path.glob(".tmp-*"))


def test_concurrent_writers_get_distinct_files(tmp_path):
    """Two processes writing into one store at once never clobber each other."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import numpy as np, sys
        from robolearn.data.episode_store import EpisodeStore
        store = EpisodeStore({str(tmp_path)!r})
        w = store.writer(meta={{"proc": int(sys.argv[1])}})
        for i in range(15):
            w.reset({{"state": np.zeros(2, np.float32)}})
            w.step(np.zeros(1), {{"state": np.ones(2, np.float32)}}, 0.0, True, False, {{}})
            w.close()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)]) for k in range(2)]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    store = EpisodeStore(tmp_path)
    assert len(store) == 30
    metas = [ep.meta["proc"] for ep in store]
    assert sorted(metas) == [0] * 15 + [1] * 15


def test_data_info_cli(tmp_path):
    """``robolearn data info`` as a real subprocess: text and --json, corrupt files listed, missing path."""
    import subprocess
    import sys

    _corrupt_store(tmp_path)
    cmd = [sys.executable, "-m", "robolearn.cli", "data", "info", str(tmp_path)]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["episodes"] == 2 and data["steps"] == 10
    assert data["keys"] == {"state": [5], "action": [3], "images/front": [12, 16, 3]}
    assert data["corrupt"] == ["episode_000001", "episode_000003", "episode_000004"]
    text = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "episodes:     2" in text.stdout and "images/front" in text.stdout
    assert "episode_000003.npz" in text.stdout
    missing = subprocess.run([*cmd[:-1], str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert "no episode store at" in missing.stderr and "nope" in missing.stderr
