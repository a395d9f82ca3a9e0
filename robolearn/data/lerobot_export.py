"""Export an episode store to the LeRobotDataset v3.0 on-disk layout.

Why the layout and not LeRobot's code: LeRobot cannot be installed beside torch 2.13, so compatibility
is the files themselves, checked against LeRobot's source (``lerobot/datasets``: ``utils.py``,
``dataset_metadata.py``, ``dataset_writer.py``, ``compute_stats.py``, ``video_utils.py``). v3.0 is the
only layout LeRobot >= 0.4 reads: it refuses v2.1 with ``BackwardCompatibilityError``. What gets
written (``N`` episodes)::

    meta/info.json                       codebase_version "v3.0", fps, features, totals, size limits, path templates
    meta/episodes/chunk-000/file-000.parquet   one row per episode: tasks, length, where its rows and
                                         video segments are, and its statistics as stats/<feature>/<stat>
    meta/tasks.parquet                   task text as the pandas index "task", int64 column task_index
    meta/stats.json                      statistics over the whole dataset, with q01 q10 q50 q90 q99
    meta/robolearn_episodes.parquet      what LeRobot has no place for (final observation, source name,
                                         recorded meta), so ``data import`` gives the store back exactly
    data/chunk-{c:03d}/file-{f:03d}.parquet              whole episodes, several per file, one row per frame
    videos/<video_key>/chunk-{c:03d}/file-{f:03d}.mp4   episodes back to back; episode e's frames are at
                                         from_timestamp + frame_index / fps
    README.md                            a short dataset card naming the repo id

Files hold whole episodes in episode order: a data file is closed before the episode that would take
it past ``data_files_size_in_mb`` (counted as the rows' uncompressed Arrow bytes, so files on disk come
out smaller), a video file before the episode that would take it past ``video_files_size_in_mb``
(counted in encoded bytes, the next episode estimated at the file's bytes per frame so far). An episode
bigger than the limit gets a file of its own. ``chunks_size`` files make a chunk folder.

LeRobot stores frames, not transitions: frame ``t`` pairs ``state[t]`` (and the images at ``t``) with the
action taken there, ``action[t]``; ``next.*`` columns describe the outcome of that action. An episode of
``T`` steps gives ``T`` frames; its final observation goes to ``meta/robolearn_episodes.parquet`` only.

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
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robolearn.data.fsutil import fsync_path, pid_alive

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNKS_SIZE = 1000
DEFAULT_DATA_FILES_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
TASKS_PATH = "meta/tasks.parquet"
EXTRA_PATH = "meta/robolearn_episodes.parquet"
IMAGE_PREFIX = "observation.images."
# The quantiles LeRobot's quantile-normalising policies read (compute_stats.DEFAULT_QUANTILES), by name.
QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
VIDEO_CODEC = "h264"  # the stream's canonical codec name, as LeRobot's get_video_info records it
VIDEO_ENCODER = "libx264"
VIDEO_PIX_FMT = "yuv420p"
VIDEO_CRF = 18
# A keyframe every 2 frames (LeRobot's own default GOP): a training loader seeks to random frames, and
# a long GOP makes every seek decode up to a GOP of frames it then throws away.
VIDEO_GOP = 2
_MB = 1024 * 1024
_TMP_MARK = ".lerobot-export-"
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")

# Names of the action dimensions, by env-name prefix and action size (see robolearn/envs docs).
ACTION_NAMES: dict[tuple[str, int], list[str]] = {
    ("sim/", 7): ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"],
    ("real/", 7): ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"],   # real arms take the same EE-delta action
}


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    if not math.isfinite(float(value)) or value <= 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return int(value) if float(value).is_integer() else float(value)


@dataclasses.dataclass
class ExportConfig:
    source: str
    out: str
    repo_id: str | None = None  # default: local/<name of out>
    fps: int | None = None  # default: the fps collect recorded in the episode meta, else 20
    task: str | None = None  # default: episode meta "task", else its "env", else "default"
    chunks_size: int = DEFAULT_CHUNKS_SIZE
    data_files_size_in_mb: float = DEFAULT_DATA_FILES_SIZE_IN_MB
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILES_SIZE_IN_MB
    force: bool = False
    # unrecorded state names become state_0..state_{D-1} (False: left empty); the env is never built
    state_names_from_env: bool = True

    def __post_init__(self) -> None:
        self.source, self.out = str(self.source), str(self.out)
        if self.fps is not None:
            if isinstance(self.fps, bool) or not isinstance(self.fps, (int, np.integer)) or self.fps < 1:
                raise ValueError(f"fps must be an int >= 1 (LeRobot stores an integer frame rate), got {self.fps!r}")
            self.fps = int(self.fps)
        if isinstance(self.chunks_size, bool) or not isinstance(self.chunks_size, int) or self.chunks_size < 1:
            raise ValueError(f"chunks_size must be an int >= 1, got {self.chunks_size!r}")
        self.data_files_size_in_mb = _positive_number("data_files_size_in_mb", self.data_files_size_in_mb)
        self.video_files_size_in_mb = _positive_number("video_files_size_in_mb", self.video_files_size_in_mb)
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


def video_info(height: int, width: int, fps: int) -> dict[str, Any]:
    """The ``info`` block of a video feature, with the keys LeRobot's get_video_info reads off the stream.

    Both depth markers are written: ``video.is_depth_map`` is what LeRobot 0.4 reads, ``is_depth_map``
    what later releases write (they still accept the old one).
    """
    return {
        "video.height": height,
        "video.width": width,
        "video.codec": VIDEO_CODEC,
        "video.pix_fmt": VIDEO_PIX_FMT,
        "video.is_depth_map": False,
        "video.fps": int(fps),
        "video.channels": 3,
        "has_audio": False,
        "is_depth_map": False,
    }


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
            "info": video_info(h, w, fps),
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
    """min/max/mean/std/count and the quantiles over frames (axis 0); a 1-D column keeps a trailing dim
    of 1, as LeRobot does. Quantiles are exact (linear interpolation), not LeRobot's histogram estimate."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    xf = x.astype(np.float64)
    out = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": xf.mean(axis=0),
        "std": xf.std(axis=0),
        "count": np.array([x.shape[0]], dtype=np.int64),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(xf, q, axis=0)
    return out


def image_histogram(frames: np.ndarray) -> np.ndarray:
    """Per-channel 256-bin histogram of (T, H, W, C) uint8 frames, shape (C, 256): statistics of any
    set of frames follow exactly from the sum of their histograms."""
    return np.stack([np.bincount(frames[..., c].reshape(-1), minlength=256) for c in range(frames.shape[-1])]).astype(
        np.int64
    )


def histogram_stats(hist: np.ndarray, num_frames: int) -> dict[str, np.ndarray]:
    """Per-channel statistics on the 0..1 scale, shaped (C, 1, 1) like LeRobot's, from ``image_histogram``.

    Exact: integer sums for mean and variance, then one sqrt; a quantile is the smallest pixel value
    whose cumulative count reaches that fraction of the pixels.
    """
    values = np.arange(256, dtype=np.int64)
    rows: dict[str, list[float]] = {k: [] for k in ("min", "max", "mean", "std", *QUANTILES)}
    for h in hist:
        n = int(h.sum())
        s1, s2 = int(h @ values), int(h @ (values * values))
        present = np.flatnonzero(h)
        rows["min"].append(present[0])
        rows["max"].append(present[-1])
        rows["mean"].append(s1 / n)
        rows["std"].append(math.sqrt(max(s2 * n - s1 * s1, 0)) / n)
        cum = np.cumsum(h)
        for name, q in QUANTILES.items():
            rows[name].append(int(np.searchsorted(cum, q * n, side="left")))
    out = {k: (np.asarray(v, dtype=np.float64) / 255.0).reshape(-1, 1, 1) for k, v in rows.items()}
    out["count"] = np.array([num_frames], dtype=np.int64)
    return out


def image_stats(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Per-channel statistics of (T, H, W, 3) uint8 frames on the 0..1 scale, shaped (3, 1, 1)."""
    return histogram_stats(image_histogram(frames), frames.shape[0])


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def frames_table(columns: dict[str, np.ndarray], features: dict[str, dict[str, Any]]):
    """A pyarrow Table: vectors as fixed-size lists, scalars as plain columns, in ``features`` order.

    Fixed-size lists are what the ``datasets`` library makes of a ``Sequence(length=D)`` feature, the
    schema LeRobot passes when it loads these files.
    """
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


def next_file(chunk_index: int, file_index: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk, file) after this one: ``chunks_size`` files fill a chunk folder."""
    return (chunk_index + 1, 0) if file_index == chunks_size - 1 else (chunk_index, file_index + 1)


# ----------------------------------------------------------------------------------------------
# Writers for files that hold several episodes
# ----------------------------------------------------------------------------------------------
class DataFiles:
    """Parquet data files of whole episodes, one row group per episode, in episode order."""

    def __init__(self, root: Path, limit_mb: float, chunks_size: int):
        self.root, self.limit, self.chunks_size = root, limit_mb * _MB, chunks_size
        self.chunk, self.file = 0, 0
        self._writer = None
        self._bytes = 0
        self.paths: list[Path] = []

    def add(self, table) -> tuple[int, int]:
        """Append one episode's rows; returns the (chunk, file) they went to."""
        import pyarrow.parquet as pq

        if self._writer is not None and self._bytes + table.nbytes > self.limit:
            self.close()
            self.chunk, self.file = next_file(self.chunk, self.file, self.chunks_size)
        if self._writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = pq.ParquetWriter(str(path), table.schema, compression="snappy")
            self._bytes = 0
            self.paths.append(path)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class VideoFiles:
    """The mp4 files of one camera: episodes encoded back to back into one H.264 stream per file.

    Frame ``n`` of a file has pts ``n`` in a 1/fps time base, so an episode that starts at frame ``F``
    of its file has ``from_timestamp = F / fps``, exactly what LeRobot's reader adds to a frame's
    ``timestamp`` to find it. ``tune=zerolatency`` (no B-frames, no lookahead) makes each frame's packet
    come out as it is encoded, so the encoded size is known when the next episode is placed.
    """

    def __init__(self, root: Path, video_key: str, fps: int, height: int, width: int, limit_mb: float,
                 chunks_size: int):
        self.root, self.key, self.fps = root, video_key, fps
        self.height, self.width = height, width
        self.limit, self.chunks_size = limit_mb * _MB, chunks_size
        self.chunk, self.file = 0, 0
        self._container = self._stream = None
        self._frames = 0
        self._bytes = 0
        self.paths: list[Path] = []

    def _open(self) -> None:
        import av

        path = self.root / VIDEO_PATH.format(video_key=self.key, chunk_index=self.chunk, file_index=self.file)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(path), mode="w", options={"movflags": "faststart"})
        stream = self._container.add_stream(VIDEO_ENCODER, rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, VIDEO_PIX_FMT
        stream.time_base = Fraction(1, self.fps)
        stream.codec_context.gop_size = VIDEO_GOP
        stream.options = {"crf": str(VIDEO_CRF), "tune": "zerolatency"}
        self._stream = stream
        self._frames = self._bytes = 0
        self.paths.append(path)

    def add(self, frames: np.ndarray) -> dict[str, Any]:
        """Encode one episode's frames (T, H, W, 3) uint8 (already padded to the stream size)."""
        import av

        T = frames.shape[0]
        if self._container is not None and self._frames and self._bytes + self._bytes / self._frames * T > self.limit:
            self.close()
            self.chunk, self.file = next_file(self.chunk, self.file, self.chunks_size)
        if self._container is None:
            self._open()
        start = self._frames
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self._frames
            packets = self._stream.encode(vf)
            self._bytes += sum(p.size for p in packets)
            self._container.mux(packets)
            self._frames += 1
        return {
            f"videos/{self.key}/chunk_index": self.chunk,
            f"videos/{self.key}/file_index": self.file,
            f"videos/{self.key}/from_timestamp": start / self.fps,
            f"videos/{self.key}/to_timestamp": (start + T) / self.fps,
        }

    def close(self) -> None:
        if self._container is not None:
            self._container.mux(self._stream.encode())
            self._container.close()
            self._container = self._stream = None


def pad_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: odd ones get one black row/column instead of being rescaled."""
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    return frames


# ----------------------------------------------------------------------------------------------
# Output directory handling (shared with the import)
# ----------------------------------------------------------------------------------------------
def clean_stale_tmp(out: Path, mark: str = _TMP_MARK) -> None:
    """Remove temp dirs for ``out`` left by runs that died (their pid is gone)."""
    prefix = f".{out.name}{mark}"
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


def check_paths(source: Path, out: Path, force: bool, what: str = "source store") -> None:
    src, dst = source.resolve(), out.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise ValueError(f"--out {out} must not be, contain, or lie inside the {what} {source}")
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


def publish(tmp: Path, out: Path, force: bool) -> None:
    """Move the finished tree into place; with --force the old one is swapped out first, then removed."""
    _fsync_tree(tmp)
    old = None
    if out.exists():
        if not force:  # appeared while we were working
            raise FileExistsError(f"{out} appeared while it was being written; pass --force to replace it")
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.rename(out, old)
    os.rename(tmp, out)
    fsync_path(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


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


def _robot_type(meta: dict) -> str | None:
    """LeRobot's ``robot_type``: the recorded one, else the robot of a ``real/<robot>`` env, else None."""
    value = meta.get("robot_type")
    if isinstance(value, str) and value.strip():
        return value
    env = meta.get("env")
    if isinstance(env, str) and env.startswith("real/") and len(env) > 5:
        return env[5:]
    return None


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


def _episodes_table(rows: list[dict[str, Any]]):
    """meta/episodes as LeRobot's metadata writer makes it: one column per key, types inferred by
    Arrow (int64, double, list<string>, list<double> for the statistics)."""
    import pyarrow as pa

    columns = {key: [row[key] for row in rows] for key in rows[0]}
    return pa.Table.from_pydict(columns)


def _tasks_frame(tasks: dict[str, int]):
    import pandas as pd

    ordered = sorted(tasks, key=tasks.get)
    return pd.DataFrame(
        {"task_index": np.asarray([tasks[t] for t in ordered], dtype=np.int64)},
        index=pd.Index(ordered, name="task"),
    )


def require_lerobot_deps() -> None:
    missing = []
    for module in ("pyarrow", "pandas", "av"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ValueError(
            f"the LeRobot export/import needs {', '.join(missing)}: pip install 'robolearn[lerobot]'"
        )


def export_lerobot(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    repo_id: str | None = None,
    fps: int | None = None,
    task: str | None = None,
    chunks_size: int = DEFAULT_CHUNKS_SIZE,
    data_files_size_in_mb: float = DEFAULT_DATA_FILES_SIZE_IN_MB,
    video_files_size_in_mb: float = DEFAULT_VIDEO_FILES_SIZE_IN_MB,
    force: bool = False,
    state_names_from_env: bool = True,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Write the LeRobotDataset v3.0 layout of the store at ``source`` into ``out``; returns a summary."""
    cfg = ExportConfig(
        source=str(source), out=str(out), repo_id=repo_id, fps=fps, task=task, chunks_size=chunks_size,
        data_files_size_in_mb=data_files_size_in_mb, video_files_size_in_mb=video_files_size_in_mb,
        force=force, state_names_from_env=state_names_from_env,
    )
    require_lerobot_deps()
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    from robolearn.data.episode_store import CorruptEpisodeError, EpisodeStore, encode_png

    say = log or (lambda _msg: None)
    src, dst = Path(cfg.source), Path(cfg.out)
    if not src.is_dir():
        raise FileNotFoundError(f"no episode store at {src}")
    check_paths(src, dst, cfg.force)
    store = EpisodeStore(src, create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # corrupt files are collected and reported below
        summary = store.summary()
        names = store.names()
    skipped: dict[str, str] = dict(summary.get("corrupt_reasons", {}))
    if not names:
        raise ValueError(f"no valid episodes to export in {src}" + (f" ({len(skipped)} corrupt)" if skipped else ""))

    dst.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(dst)
    tmp = dst.with_name(f".{dst.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    episode_rows: list[dict[str, Any]] = []
    extra_rows: list[dict[str, Any]] = []
    tasks: dict[str, int] = {}
    ref: dict[str, Any] | None = None
    ref_name = ""
    video_shapes: dict[str, tuple[int, int]] = {}
    features: dict[str, dict[str, Any]] = {}
    columns_seen: dict[str, list[np.ndarray]] = {}  # every frame's numeric columns, for exact dataset stats
    histograms: dict[str, np.ndarray] = {}
    data_files: DataFiles | None = None
    videos: dict[str, VideoFiles] = {}
    robot_type = None
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
                if cfg.fps is None:
                    recorded = ep.meta.get("fps")
                    ok = isinstance(recorded, int) and not isinstance(recorded, bool) and recorded >= 1
                    cfg.fps = int(recorded) if ok else 20
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
                robot_type = _robot_type(ep.meta)
                data_files = DataFiles(tmp, cfg.data_files_size_in_mb, cfg.chunks_size)
                videos = {
                    cam: VideoFiles(tmp, IMAGE_PREFIX + cam, cfg.fps, h, w, cfg.video_files_size_in_mb, cfg.chunks_size)
                    for cam, (h, w) in video_shapes.items()
                }
            elif sig != ref:
                raise ValueError(
                    f"{name} has shapes {sig} but {ref_name} has {ref}; a LeRobot dataset needs one shape per feature"
                )
            ep_task = _task_of(ep, cfg)
            task_index = tasks.setdefault(ep_task, len(tasks))
            ep_index = len(episode_rows)
            T = ep.length
            cols = episode_columns(ep, episode_index=ep_index, start_index=total_frames, task_index=task_index, fps=cfg.fps)
            chunk, file = data_files.add(frames_table(cols, features))
            row: dict[str, Any] = {
                "episode_index": ep_index,
                "tasks": [ep_task],
                "length": T,
                "data/chunk_index": chunk,
                "data/file_index": file,
                "dataset_from_index": total_frames,
                "dataset_to_index": total_frames + T,
            }
            stats = {key: feature_stats(cols[key]) for key, ft in features.items() if ft["dtype"] != "video"}
            for key in stats:
                columns_seen.setdefault(key, []).append(cols[key])
            extra: dict[str, Any] = {
                "episode_index": ep_index,
                "source_episode": name,
                "meta": json.dumps(ep.meta, sort_keys=True),
                "final_state": ep.state[T].astype(np.float32).tolist(),
            }
            for cam in sorted(ep.images):
                frames = ep.images[cam]
                key = IMAGE_PREFIX + cam
                row.update(videos[cam].add(pad_even(frames[:T])))
                hist = image_histogram(frames[:T])
                stats[key] = histogram_stats(hist, T)
                histograms[key] = histograms[key] + hist if key in histograms else hist
                extra[f"final_image/{cam}"] = encode_png(frames[T]).tobytes()
                extra[f"image_shape/{cam}"] = list(frames.shape[1:])
            for key, st in stats.items():
                for stat, value in st.items():
                    row[f"stats/{key}/{stat}"] = np.asarray(value).tolist()
            row["meta/episodes/chunk_index"] = 0
            row["meta/episodes/file_index"] = 0
            episode_rows.append(row)
            extra_rows.append(extra)
            total_frames += T
            bar.set_postfix(frames=total_frames, skipped=len(skipped))
        if data_files is not None:
            data_files.close()
        for writer in videos.values():
            writer.close()
        if not episode_rows:
            raise ValueError(f"no valid episodes to export in {src}: all {len(skipped)} are corrupt")

        n = len(episode_rows)
        info = {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": robot_type,
            "total_episodes": n,
            "total_frames": total_frames,
            "total_tasks": len(tasks),
            "chunks_size": cfg.chunks_size,
            "data_files_size_in_mb": cfg.data_files_size_in_mb,
            "video_files_size_in_mb": cfg.video_files_size_in_mb,
            "fps": cfg.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if video_shapes else None,
            "features": features,
        }
        _write_text(tmp / "meta" / "info.json", json.dumps(info, indent=4) + "\n")
        episodes_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_episodes_table(episode_rows), episodes_path)
        _tasks_frame(tasks).to_parquet(tmp / TASKS_PATH)
        pq.write_table(pa.Table.from_pylist(extra_rows), tmp / EXTRA_PATH)
        total_stats = {key: feature_stats(np.concatenate(parts)) for key, parts in columns_seen.items()}
        for key, hist in histograms.items():
            total_stats[key] = histogram_stats(hist, total_frames)
        _write_text(tmp / "meta" / "stats.json", json.dumps(stats_to_json(total_stats), indent=1) + "\n")
        _write_text(tmp / "README.md", _dataset_card(cfg, info, src, skipped))
        publish(tmp, dst, cfg.force)
    finally:
        if data_files is not None:
            data_files.close()
        for writer in videos.values():
            try:
                writer.close()
            except Exception:  # already failing: the temp dir goes anyway
                pass
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "source": str(src),
        "out": str(dst),
        "repo_id": cfg.repo_id,
        "format": f"lerobot {CODEBASE_VERSION}",
        "episodes": len(episode_rows),
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
        "task_categories:",
        "- robotics",
        "configs:",
        "- config_name: default",
        "  data_files: data/*/*.parquet",
        "---",
        "",
        f"# {cfg.repo_id}",
        "",
        f"Exported by `robolearn data export` from the episode store `{src.name}` in the LeRobotDataset "
        f"{CODEBASE_VERSION} layout: {info['total_episodes']} episodes, {info['total_frames']} frames at "
        f"{info['fps']} fps. Read it with LeRobot 0.4 or later:",
        "",
        "```python",
        "from lerobot.datasets.lerobot_dataset import LeRobotDataset",
        f'ds = LeRobotDataset("{cfg.repo_id}", root="<path to this folder>")',
        "```",
        "",
        "or back into an episode store with `robolearn data import <this folder> --format lerobot --out <store>`.",
        f"`{EXTRA_PATH}` (ignored by LeRobot) keeps each episode's final observation and recorded metadata",
        "for that import.",
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
