"""Export an episode store to the LeRobotDataset v2.1 on-disk layout.

Why the layout and not LeRobot's code: LeRobot cannot be installed beside torch 2.13, so compatibility
is the files themselves. What gets written (``N`` episodes, ``C`` = ``chunks_size`` episodes per chunk)::

    meta/info.json                 codebase_version "v2.1", fps, totals, path templates, features
    meta/episodes.jsonl            {"episode_index", "tasks": [str], "length", "source_episode"} per episode
    meta/tasks.jsonl               {"task_index", "task"} per distinct task
    meta/episodes_stats.jsonl      {"episode_index", "stats": {feature: {min,max,mean,std,count}}}
    meta/stats.json                the same statistics over the whole dataset (for v2.0-style readers)
    data/chunk-{i//C:03d}/episode_{i:06d}.parquet            one row per frame
    videos/chunk-{i//C:03d}/observation.images.<cam>/episode_{i:06d}.mp4
    README.md                      a short dataset card naming the repo id

LeRobot stores frames, not transitions: frame ``t`` pairs ``state[t]`` (and the images at ``t``) with the
action taken there, ``action[t]``; ``next.*`` columns describe the outcome of that action. An episode of
``T`` steps gives ``T`` frames and its final observation is dropped.

The export is built in a temp directory next to ``out`` and renamed into place, so ``out`` is either
absent or complete. Corrupt source episodes are skipped and reported by name.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robolearn.data.fsutil import fsync_path, pid_alive

CODEBASE_VERSION = "v2.1"
DEFAULT_CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
IMAGE_PREFIX = "observation.images."
VIDEO_CODEC = "h264"  # what robolearn.data.video.write_mp4 produces (libx264, yuv420p)
VIDEO_PIX_FMT = "yuv420p"
_TMP_MARK = ".lerobot-export-"
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")

# Names of the action dimensions, by env-name prefix and action size (see robolearn/envs docs).
ACTION_NAMES: dict[tuple[str, int], list[str]] = {
    ("sim/", 7): ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"],
}


@dataclasses.dataclass
class ExportConfig:
    source: str
    out: str
    repo_id: str | None = None  # default: local/<name of out>
    fps: int = 20
    task: str | None = None  # default: episode meta "task", else its "env", else "default"
    chunks_size: int = DEFAULT_CHUNKS_SIZE
    force: bool = False
    # unrecorded state names become state_0..state_{D-1} (False: left empty); the env is never built
    state_names_from_env: bool = True

    def __post_init__(self) -> None:
        self.source, self.out = str(self.source), str(self.out)
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, np.integer)) or self.fps < 1:
            raise ValueError(f"fps must be an int >= 1 (LeRobot stores an integer frame rate), got {self.fps!r}")
        self.fps = int(self.fps)
        if not isinstance(self.chunks_size, int) or self.chunks_size < 1:
            raise ValueError(f"chunks_size must be an int >= 1, got {self.chunks_size!r}")
        if self.repo_id is None:
            self.repo_id = f"local/{Path(self.out).name or 'dataset'}"
        if not _REPO_ID_RE.match(self.repo_id):
            raise ValueError(f"repo_id must look like 'owner/name' ([A-Za-z0-9_.-]), got {self.repo_id!r}")
        if self.task is not None and not str(self.task).strip():
            raise ValueError("task must be a non-empty string")


# ----------------------------------------------------------------------------------------------
# Pure pieces: frames, features, statistics
# ----------------------------------------------------------------------------------------------
def episode_columns(ep, *, episode_index: int, start_index: int, task_index: int, fps: int) -> dict[str, np.ndarray]:
    """The per-frame columns of one episode (T rows): frame t = (state[t], action[t], outcome of action[t])."""
    T = ep.length
    frame_index = np.arange(T, dtype=np.int64)
    return {
        "observation.state": np.ascontiguousarray(ep.state[:T], dtype=np.float32),
        "action": np.ascontiguousarray(ep.action, dtype=np.float32),
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(T, episode_index, dtype=np.int64),
        "index": start_index + frame_index,
        "task_index": np.full(T, task_index, dtype=np.int64),
        "next.reward": ep.reward.astype(np.float32),
        "next.done": ep.terminated | ep.truncated,
        "next.truncated": ep.truncated.astype(bool),
        "next.success": ep.success.astype(bool),
        "complementary_info.is_intervention": ep.intervened.astype(np.float32),
    }


def _scalar(dtype: str) -> dict[str, Any]:
    return {"dtype": dtype, "shape": [1], "names": None}


def build_features(
    state_dim: int,
    action_dim: int,
    video_shapes: dict[str, tuple[int, int]],
    fps: int,
    *,
    state_names: list[str] | None = None,
    action_names: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The ``features`` dict of info.json; ``video_shapes`` maps camera -> (height, width) of its mp4."""
    features: dict[str, dict[str, Any]] = {
        "observation.state": {"dtype": "float32", "shape": [state_dim], "names": state_names},
        "action": {"dtype": "float32", "shape": [action_dim], "names": action_names},
    }
    for cam, (h, w) in sorted(video_shapes.items()):
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.fps": float(fps),
                "video.height": h,
                "video.width": w,
                "video.channels": 3,
                "video.codec": VIDEO_CODEC,
                "video.pix_fmt": VIDEO_PIX_FMT,
                "video.is_depth_map": False,
                "has_audio": False,
            },
        }
    features.update(
        {
            "timestamp": _scalar("float32"),
            "frame_index": _scalar("int64"),
            "episode_index": _scalar("int64"),
            "index": _scalar("int64"),
            "task_index": _scalar("int64"),
            "next.reward": _scalar("float32"),
            "next.done": _scalar("bool"),
            "next.truncated": _scalar("bool"),
            "next.success": _scalar("bool"),
            "complementary_info.is_intervention": _scalar("float32"),
        }
    )
    return features


def feature_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """min/max/mean/std/count over frames (axis 0); a 1-D column keeps a trailing dim of 1, as LeRobot does."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    xf = x.astype(np.float64)
    mn, mx = x.min(axis=0), x.max(axis=0)
    return {
        "min": mn,
        "max": mx,
        "mean": xf.mean(axis=0),
        "std": xf.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames on the 0..1 scale, shaped (3, 1, 1) like LeRobot's.

    Computed exactly from a 256-bin histogram per channel (fast, no float copy of the frames).
    """
    values = np.arange(256, dtype=np.int64)
    rows = {"min": [], "max": [], "mean": [], "std": []}
    for c in range(frames.shape[-1]):
        hist = np.bincount(frames[..., c].reshape(-1), minlength=256).astype(np.int64)
        n = int(hist.sum())
        s1, s2 = int(hist @ values), int(hist @ (values * values))
        present = np.flatnonzero(hist)
        rows["min"].append(present[0])
        rows["max"].append(present[-1])
        rows["mean"].append(s1 / n)
        rows["std"].append(math.sqrt(max(s2 * n - s1 * s1, 0)) / n)  # exact integer variance, then one sqrt
    out = {k: (np.asarray(v, dtype=np.float64) / 255.0).reshape(-1, 1, 1) for k, v in rows.items()}
    out["count"] = np.array([frames.shape[0]], dtype=np.int64)
    return out


def aggregate_stats(per_episode: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Dataset statistics from per-episode ones: exact pooled mean/std weighted by frame count."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        parts = [s[key] for s in per_episode]
        counts = np.array([float(p["count"][0]) for p in parts])
        w = counts / counts.sum()
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        variances = np.stack([np.asarray(p["std"], dtype=np.float64) ** 2 for p in parts])
        wshape = (-1,) + (1,) * (means.ndim - 1)
        mean = (means * w.reshape(wshape)).sum(axis=0)
        var = ((variances + (means - mean) ** 2) * w.reshape(wshape)).sum(axis=0)
        out[key] = {
            "min": np.min(np.stack([p["min"] for p in parts]), axis=0),
            "max": np.max(np.stack([p["max"] for p in parts]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(counts.sum())], dtype=np.int64),
        }
    return out


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def frames_table(columns: dict[str, np.ndarray], features: dict[str, dict[str, Any]]):
    """A pyarrow Table: vectors as fixed-size float32 lists, scalars as plain columns, in ``features`` order."""
    import pyarrow as pa

    arrays, names = [], []
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        col = np.ascontiguousarray(columns[key])
        kind = pa.from_numpy_dtype(col.dtype)
        if list(ft["shape"]) == [1]:  # LeRobot keeps shape-(1,) features as plain scalar columns
            arrays.append(pa.array(col.reshape(-1), type=kind))
        else:
            flat = pa.array(col.reshape(-1), type=kind)
            arrays.append(pa.FixedSizeListArray.from_arrays(flat, int(np.prod(ft["shape"]))))
        names.append(key)
    return pa.Table.from_arrays(arrays, names=names)


# ----------------------------------------------------------------------------------------------
# Output directory handling
# ----------------------------------------------------------------------------------------------
def _clean_stale_tmp(out: Path) -> None:
    """Remove temp export dirs for ``out`` left by exports that died (their pid is gone)."""
    prefix = f".{out.name}{_TMP_MARK}"
    if not out.parent.is_dir():
        return
    for entry in out.parent.iterdir():
        if not entry.name.startswith(prefix) or not entry.is_dir():
            continue
        try:
            pid = int(entry.name[len(prefix) :].split("-", 1)[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)


def _check_paths(source: Path, out: Path, force: bool) -> None:
    src, dst = source.resolve(), out.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise ValueError(f"--out {out} must not be, contain, or lie inside the source store {source}")
    if out.exists() or out.is_symlink():
        if not force:
            raise FileExistsError(f"{out} already exists; pass --force to replace it")
        if not out.is_dir() or out.is_symlink():
            raise ValueError(f"{out} exists and is not a directory; refusing to replace it even with --force")


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory under ``root`` so the rename publishes data that is on disk."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in [*files, "."]:
            fsync_path(os.path.join(dirpath, name))


def _publish(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished export into place; with --force the old one is swapped out first, then removed."""
    _fsync_tree(tmp)
    old = None
    if out.exists():
        if not force:  # appeared while we were exporting
            raise FileExistsError(f"{out} appeared during the export; pass --force to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    os.rename(tmp, out)
    fsync_path(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


# ----------------------------------------------------------------------------------------------
# The export
# ----------------------------------------------------------------------------------------------
def _state_names(meta: dict, dim: int, generic: bool) -> list[str] | None:
    """Names of the ``dim`` state dimensions: the episode's recorded ``state_names``, else ``state_0..``.

    The exporter never builds the env to find names: an exporter that constructs a MuJoCo scene
    (and needs its assets and a GL-free build) to label columns is slow, fragile and runs
    simulation code from the data layer. A recorder that knows the layout stores it in the
    episode meta as ``state_names``; ``generic=False`` leaves unrecorded names empty (None).
    """
    value = meta.get("state_names")
    if isinstance(value, list) and len(value) == dim and all(isinstance(v, str) for v in value):
        return list(value)
    return [f"state_{i}" for i in range(dim)] if generic else None


def _task_of(ep, cfg: ExportConfig) -> str:
    if cfg.task is not None:
        return str(cfg.task)
    for key in ("task", "env"):
        value = ep.meta.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return "default"


def _signature(ep) -> dict[str, Any]:
    return {
        "state": tuple(ep.state.shape[1:]),
        "action": tuple(ep.action.shape[1:]),
        "images": {cam: tuple(f.shape[1:]) for cam, f in ep.images.items()},
    }


def _closing(bar):
    """Iterate a tqdm bar and close it however the loop ends."""
    try:
        yield from bar
    finally:
        bar.close()


def _nonfinite(ep) -> str | None:
    for key in ("state", "action", "reward"):
        arr = getattr(ep, key)
        if not np.all(np.isfinite(arr)):
            return f"{key} has non-finite values (NaN/inf)"
    return None


def export_lerobot(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    fps: int = 20,
    task: str | None = None,
    chunks_size: int = DEFAULT_CHUNKS_SIZE,
    force: bool = False,
    state_names_from_env: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Write the LeRobotDataset v2.1 layout of the store at ``source`` into ``out``; returns a summary."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("the LeRobot export needs pyarrow: pip install 'robolearn[lerobot]'") from None
    from tqdm import tqdm

    from robolearn.data.episode_store import CorruptEpisodeError, EpisodeStore
    from robolearn.data.video import write_mp4

    cfg = ExportConfig(
        source=str(source), out=str(out), repo_id=repo_id, fps=fps, task=task, chunks_size=chunks_size, force=force,
        state_names_from_env=state_names_from_env,
    )
    say = log or (lambda _msg: None)
    src, dst = Path(cfg.source), Path(cfg.out)
    if not src.is_dir():
        raise FileNotFoundError(f"no episode store at {src}")
    _check_paths(src, dst, cfg.force)
    store = EpisodeStore(src, create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt files are collected and reported below
        summary = store.summary()
        names = store.names()
    skipped: dict[str, str] = dict(summary.get("corrupt_reasons", {}))
    if not names:
        raise ValueError(f"no valid episodes to export in {src}" + (f" ({len(skipped)} corrupt)" if skipped else ""))

    dst.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(dst)
    tmp = dst.with_name(f".{dst.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    episodes_meta: list[dict] = []
    episodes_stats: list[dict] = []
    tasks: dict[str, int] = {}
    ref: dict[str, Any] | None = None
    ref_name = ""
    video_shapes: dict[str, tuple[int, int]] = {}
    action_names = state_names = None
    total_frames = 0
    try:
        bar = tqdm(names, unit="ep", desc=f"export {src.name} -> lerobot", disable=not progress)
        for name in _closing(bar):
            try:
                ep = store.load(name)
            except CorruptEpisodeError as exc:
                skipped[name] = str(exc)
                continue
            except FileNotFoundError:
                skipped[name] = f"{name} disappeared during the export"
                continue
            bad = _nonfinite(ep)
            if bad:
                skipped[name] = f"corrupt episode {name}: {bad}"
                continue
            sig = _signature(ep)
            if ref is None:
                ref, ref_name = sig, name
                video_shapes = {cam: (h + h % 2, w + w % 2) for cam, (h, w, _c) in sig["images"].items()}
                env = str(ep.meta.get("env", ""))
                action_names = next(
                    (v for (prefix, size), v in ACTION_NAMES.items() if env.startswith(prefix) and size == sig["action"][0]),
                    None,
                )
                state_names = _state_names(ep.meta, sig["state"][0], cfg.state_names_from_env)
                value = ep.meta.get("action_names")
                if isinstance(value, list) and len(value) == sig["action"][0] and all(isinstance(v, str) for v in value):
                    action_names = value
                features = build_features(
                    sig["state"][0], sig["action"][0], video_shapes, cfg.fps,
                    state_names=state_names, action_names=action_names,
                )
            elif sig != ref:
                raise ValueError(
                    f"{name} has shapes {sig} but {ref_name} has {ref}; a LeRobot dataset needs one shape per feature"
                )
            ep_task = _task_of(ep, cfg)
            task_index = tasks.setdefault(ep_task, len(tasks))
            ep_index = len(episodes_meta)
            chunk = ep_index // cfg.chunks_size
            cols = episode_columns(ep, episode_index=ep_index, start_index=total_frames, task_index=task_index, fps=cfg.fps)
            data_path = tmp / DATA_PATH.format(episode_chunk=chunk, episode_index=ep_index)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(frames_table(cols, features), data_path)
            stats = {key: feature_stats(cols[key]) for key, ft in features.items() if ft["dtype"] != "video"}
            for cam, frames in sorted(ep.images.items()):
                key = IMAGE_PREFIX + cam
                path = tmp / VIDEO_PATH.format(episode_chunk=chunk, video_key=key, episode_index=ep_index)
                write_mp4(frames[: ep.length], path, fps=cfg.fps)
                stats[key] = image_stats(frames[: ep.length])
            episodes_meta.append(
                {"episode_index": ep_index, "tasks": [ep_task], "length": ep.length, "source_episode": name}
            )
            episodes_stats.append({"episode_index": ep_index, "stats": stats})
            total_frames += ep.length
            bar.set_postfix(frames=total_frames, skipped=len(skipped))
        if not episodes_meta:
            raise ValueError(f"no valid episodes to export in {src}: all {len(skipped)} are corrupt")

        n = len(episodes_meta)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": None,
            "total_episodes": n,
            "total_frames": total_frames,
            "total_tasks": len(tasks),
            "total_videos": n * len(video_shapes),
            "total_chunks": math.ceil(n / cfg.chunks_size),
            "chunks_size": cfg.chunks_size,
            "fps": cfg.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_shapes else None,
            "features": features,
        }
        _write_text(tmp / "meta" / "info.json", json.dumps(info, indent=4) + "\n")
        _write_text(tmp / "meta" / "episodes.jsonl", _jsonl(episodes_meta))
        _write_text(tmp / "meta" / "tasks.jsonl", _jsonl([{"task_index": i, "task": t} for t, i in tasks.items()]))
        _write_text(
            tmp / "meta" / "episodes_stats.jsonl",
            _jsonl([{"episode_index": e["episode_index"], "stats": stats_to_json(e["stats"])} for e in episodes_stats]),
        )
        total_stats = aggregate_stats([e["stats"] for e in episodes_stats])
        _write_text(tmp / "meta" / "stats.json", json.dumps(stats_to_json(total_stats), indent=1) + "\n")
        _write_text(tmp / "README.md", _dataset_card(cfg, info, src, skipped))
        _publish(tmp, dst, cfg.force)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "source": str(src),
        "out": str(dst),
        "repo_id": cfg.repo_id,
        "format": f"lerobot {CODEBASE_VERSION}",
        "episodes": len(episodes_meta),
        "frames": total_frames,
        "fps": cfg.fps,
        "tasks": list(tasks),
        "cameras": sorted(video_shapes),
        "skipped": sorted(skipped),
        "skipped_reasons": {k: skipped[k] for k in sorted(skipped)},
    }
    say(format_summary(result))
    return result


def _dataset_card(cfg: ExportConfig, info: dict, src: Path, skipped: dict[str, str]) -> str:
    lines = [
        "---",
        "tags:",
        "- LeRobot",
        "- robolearn",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
        f"# {cfg.repo_id}",
        "",
        f"Exported by `robolearn data export` from the episode store `{src.name}` in the LeRobotDataset "
        f"{CODEBASE_VERSION} layout: {info['total_episodes']} episodes, {info['total_frames']} frames at "
        f"{info['fps']} fps.",
        "",
        "```python",
        "from lerobot.common.datasets.lerobot_dataset import LeRobotDataset",
        f'ds = LeRobotDataset("{cfg.repo_id}", root="<path to this folder>")',
        "```",
    ]
    if skipped:
        lines += ["", f"Skipped corrupt source episodes: {', '.join(sorted(skipped))}."]
    return "\n".join(lines) + "\n"


def format_summary(s: dict[str, Any]) -> str:
    cams = ", ".join(s["cameras"]) or "none"
    lines = [
        f"exported {s['episodes']} episodes ({s['frames']} frames, {s['fps']} fps) from {s['source']} "
        f"to {s['out']} as {s['format']} (repo id {s['repo_id']})",
        f"  cameras: {cams}; tasks: {', '.join(s['tasks'])}",
    ]
    if s["skipped"]:
        lines.append(f"  skipped {len(s['skipped'])} corrupt episode(s):")
        lines += [f"    {s['skipped_reasons'][n]}" for n in s["skipped"]]
    return "\n".join(lines)
