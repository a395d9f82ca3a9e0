"""Read a LeRobotDataset v3.0 folder into an episode store.

Why: LeRobot datasets (the Hub's, or one exported here and edited elsewhere) are the common currency of
demonstrations; importing one lets ``train bc`` and ``train rl`` use it like recorded demos. LeRobot
itself cannot be installed beside torch 2.13, so this reads the files the way LeRobot's loader does:

- ``meta/info.json`` gives ``codebase_version`` (only "v3.0" is read), ``fps``, ``features`` and the
  ``data_path`` / ``video_path`` templates;
- ``meta/episodes/*/*.parquet`` gives, per episode, its data file (``data/chunk_index``,
  ``data/file_index``), its rows (``dataset_from_index`` .. ``dataset_to_index``) and per camera its
  video file and ``from_timestamp``; frame ``t`` of a camera is the video frame at
  ``from_timestamp + timestamp[t]`` (within ``tolerance_s``, LeRobot's 1e-4 s by default);
- ``meta/tasks.parquet`` maps ``task_index`` to the task text (the pandas index).

State and action are copied exactly (float32); frames are decoded from the mp4s. A frame becomes one
step: ``action[t]`` taken at ``state[t]``, with ``next.reward`` / ``next.done`` / ``next.truncated`` /
``next.success`` / ``complementary_info.is_intervention`` as its outcome when the dataset has them
(else reward 0, not successful, and the last step truncated: a recording that stops is not a
terminal state). A LeRobot episode has no final observation; a dataset written by ``data export``
keeps it in ``meta/robolearn_episodes.parquet`` with the recorded episode meta, so that round trip
gives the store back exactly (up to video compression). Without it the last frame is repeated as the
final observation and the meta says so.

The store is built in a temp directory next to ``out`` and renamed into place: ``out`` is either
absent or complete. Anything missing or damaged is an error naming the file.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from robolearn.data.lerobot_export import (
    CODEBASE_VERSION,
    EXTRA_PATH,
    IMAGE_PREFIX,
    TASKS_PATH,
    check_paths,
    clean_stale_tmp,
    publish,
    require_lerobot_deps,
)

INFO_PATH = "meta/info.json"
EPISODES_DIR = "meta/episodes"
DEFAULT_TOLERANCE_S = 1e-4  # LeRobotDataset's default tolerance_s
_TMP_MARK = ".lerobot-import-"
_CAM_BAD = re.compile(r"[^A-Za-z0-9_\-]")
_OUTCOME_COLUMNS = ("next.reward", "next.done", "next.truncated", "next.success",
                    "complementary_info.is_intervention")


class LeRobotImportError(ValueError):
    """The dataset cannot be imported: wrong version, a missing or damaged file, inconsistent metadata."""


# ----------------------------------------------------------------------------------------------
# Metadata
# ----------------------------------------------------------------------------------------------
def read_info(root: Path) -> dict[str, Any]:
    path = root / INFO_PATH
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {root} is not a LeRobot dataset (no meta/info.json)")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeRobotImportError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise LeRobotImportError(f"{path} does not hold a JSON object")
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        if isinstance(version, str) and version.startswith(("v1.", "v2.")):
            raise LeRobotImportError(
                f"{path}: codebase_version is {version!r}; only LeRobotDataset {CODEBASE_VERSION} is imported. "
                f"Convert it first with LeRobot's `python -m lerobot.scripts.convert_dataset_v21_to_v30 "
                f"--repo-id=<id>` (v2.1 only)"
            )
        raise LeRobotImportError(
            f"{path}: codebase_version is {version!r}; this importer reads LeRobotDataset {CODEBASE_VERSION} only"
        )
    missing = [k for k in ("fps", "features", "data_path", "total_episodes") if k not in info]
    if missing:
        raise LeRobotImportError(f"{path} lacks {', '.join(missing)}")
    fps = info["fps"]
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise LeRobotImportError(f"{path}: fps must be a number > 0, got {fps!r}")
    if not isinstance(info["features"], dict):
        raise LeRobotImportError(f"{path}: features must be an object")
    return info


def _read_parquet(path: Path, what: str, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise LeRobotImportError(f"cannot read {what} {path} (truncated or not parquet?): {exc}") from None


def read_tasks(root: Path) -> dict[int, str]:
    """task_index -> task text, from the pandas index LeRobot writes (or a ``task`` column)."""
    import pyarrow as pa

    path = root / TASKS_PATH
    table = _read_parquet(path, "tasks file")
    try:
        df = table.to_pandas()
    except (pa.ArrowException, ValueError) as exc:
        raise LeRobotImportError(f"cannot read tasks file {path}: {exc}") from None
    if "task_index" not in df.columns:
        raise LeRobotImportError(f"tasks file {path} has no task_index column (columns: {list(df.columns)})")
    texts = df["task"] if "task" in df.columns else df.index
    out: dict[int, str] = {}
    for text, idx in zip(texts, df["task_index"]):
        if not isinstance(text, str):
            raise LeRobotImportError(
                f"tasks file {path}: the task text must be the index named 'task' (LeRobot's layout), got {text!r}"
            )
        out[int(idx)] = text
    return out


def read_episodes(root: Path) -> list[dict[str, Any]]:
    """The episode rows of meta/episodes (statistics left out), sorted by episode_index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = root / EPISODES_DIR
    paths = sorted(folder.glob("*/*.parquet"))
    if not paths:
        raise FileNotFoundError(f"no episode metadata: {folder}/chunk-*/file-*.parquet not found")
    rows: list[dict[str, Any]] = []
    for path in paths:
        try:  # the statistics are not needed: read only the other columns, as LeRobot's load_episodes does
            names = [n for n in pq.read_schema(path).names if not n.startswith("stats/")]
        except (pa.ArrowException, OSError) as exc:
            raise LeRobotImportError(f"cannot read episode metadata file {path} (truncated or not parquet?): {exc}") from None
        table = _read_parquet(path, "episode metadata file", columns=names)
        for row in table.to_pylist():
            row["_file"] = path
            rows.append(row)
    required = ("episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                "dataset_to_index")
    for row in rows:
        missing = [k for k in required if row.get(k) is None]
        if missing:
            raise LeRobotImportError(f"episode metadata file {row['_file']} lacks {', '.join(missing)}")
    rows.sort(key=lambda r: int(r["episode_index"]))
    indices = [int(r["episode_index"]) for r in rows]
    if indices != list(range(len(rows))):
        raise LeRobotImportError(f"episode metadata in {folder}: episode_index is not 0..{len(rows) - 1}: {indices[:20]}")
    return rows


def read_extras(root: Path) -> dict[int, dict[str, Any]]:
    """What ``data export`` adds for an exact round trip (absent in datasets made elsewhere)."""
    path = root / EXTRA_PATH
    if not path.exists():
        return {}
    return {int(r["episode_index"]): r for r in _read_parquet(path, "robolearn episode file").to_pylist()}


def camera_name(video_key: str) -> str:
    """``observation.images.front`` -> ``front``; other characters the store refuses become ``_``."""
    name = video_key[len(IMAGE_PREFIX):] if video_key.startswith(IMAGE_PREFIX) else video_key
    return _CAM_BAD.sub("_", name) or "camera"


def _is_depth(ft: dict) -> bool:
    info = ft.get("info") or {}
    return bool(info.get("is_depth_map") or info.get("video.is_depth_map"))


def plan_features(info: dict) -> tuple[dict[str, str], list[str]]:
    """Cameras to import (video key -> store camera name) and the features that are not imported."""
    features = info["features"]
    for key in ("observation.state", "action"):
        ft = features.get(key)
        if ft is None:
            raise LeRobotImportError(
                f"{INFO_PATH}: the dataset has no {key!r} feature (features: {', '.join(features)}); "
                f"an episode store needs observation.state and action"
            )
        if ft.get("dtype") not in ("float32", "float64") or len(ft.get("shape", ())) != 1:
            raise LeRobotImportError(
                f"{INFO_PATH}: {key} must be a float32/float64 vector, got dtype {ft.get('dtype')} shape {ft.get('shape')}"
            )
    cameras: dict[str, str] = {}
    ignored: list[str] = []
    known = {"observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index",
             *_OUTCOME_COLUMNS}
    for key, ft in features.items():
        if ft.get("dtype") == "video" and not _is_depth(ft) and list(ft.get("shape", []))[-1:] == [3]:
            cam = camera_name(key)
            if cam in cameras.values():
                raise LeRobotImportError(f"{INFO_PATH}: two video features map to the store camera name {cam!r}")
            cameras[key] = cam
        elif key not in known:
            ignored.append(key)
    if cameras and not info.get("video_path"):
        raise LeRobotImportError(f"{INFO_PATH} has video features but no video_path")
    return cameras, ignored


# ----------------------------------------------------------------------------------------------
# Video
# ----------------------------------------------------------------------------------------------
class VideoCursor:
    """Frames of one mp4 by timestamp, decoding forward; seeks back (to the keyframe before) only when
    asked for an earlier time. Episodes of a file are read in order, so each file is decoded once."""

    def __init__(self, path: Path, tolerance_s: float):
        self.path, self.tol = path, tolerance_s
        self._container = self._stream = self._frames = None
        self._pending: tuple[float, Any] | None = None
        self._last_ts = -math.inf

    def _open(self, seek_ts: float) -> None:
        import av

        self.close()
        if not self.path.is_file():
            raise FileNotFoundError(f"video file {self.path} not found")
        try:
            self._container = av.open(str(self.path))
            streams = self._container.streams.video
            if not streams:
                raise LeRobotImportError(f"video file {self.path} has no video stream")
            self._stream = streams[0]
            if seek_ts > 0:
                self._container.seek(int(seek_ts / self._stream.time_base), stream=self._stream, backward=True,
                                     any_frame=False)
        except av.FFmpegError as exc:
            self.close()
            raise LeRobotImportError(f"cannot read video file {self.path} (truncated or not an mp4?): {exc}") from None
        self._frames = self._container.decode(self._stream)
        self._pending = None
        self._last_ts = -math.inf

    def _next(self) -> tuple[float, Any] | None:
        import av

        if self._pending is not None:
            item, self._pending = self._pending, None
            return item
        try:
            for frame in self._frames:
                if frame.pts is not None:
                    return float(frame.pts * self._stream.time_base), frame
        except av.FFmpegError as exc:
            raise LeRobotImportError(f"cannot decode video file {self.path} (truncated?): {exc}") from None
        return None

    def read(self, timestamps: np.ndarray) -> np.ndarray:
        """The frames (n, H, W, 3) uint8 nearest each ascending timestamp, each within the tolerance."""
        if self._container is None or timestamps[0] < self._last_ts - self.tol:
            self._open(float(timestamps[0]))
        out = []
        for q in timestamps:
            while True:
                item = self._next()
                if item is None:
                    got = "no frame decoded" if self._last_ts == -math.inf else f"last frame at {self._last_ts:.4f} s"
                    raise LeRobotImportError(
                        f"video file {self.path} ends before {q:.4f} s ({got}): truncated, or the episode "
                        f"metadata points past its end"
                    )
                ts, frame = item
                if ts < q - self.tol:
                    self._last_ts = ts
                    continue
                if ts > q + self.tol:
                    self._pending = item
                    raise LeRobotImportError(
                        f"video file {self.path} has no frame within {self.tol:g} s of {q:.4f} s (next one at "
                        f"{ts:.4f} s): a frame is missing or the timestamps do not match the video"
                    )
                out.append(frame.to_ndarray(format="rgb24"))
                self._last_ts = ts
                break
        return np.stack(out)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._stream = self._frames = None


# ----------------------------------------------------------------------------------------------
# The import
# ----------------------------------------------------------------------------------------------
def _vector(table, key: str, path: Path, T: int) -> np.ndarray:
    col = table.column(key).combine_chunks()
    try:
        flat = col.flatten().to_numpy(zero_copy_only=False)
    except AttributeError:  # a scalar column
        flat = col.to_numpy(zero_copy_only=False)
    if T and flat.size % T:
        raise LeRobotImportError(f"data file {path}: column {key} does not hold {T} equal-length vectors")
    return np.asarray(flat).reshape(T, -1)


def _column(table, key: str, dtype) -> np.ndarray | None:
    if key not in table.column_names:
        return None
    return np.asarray(table.column(key).to_numpy(zero_copy_only=False)).astype(dtype)


def _closing(bar):
    try:
        yield from bar
    finally:
        bar.close()


def import_lerobot(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    force: bool = False,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Import the LeRobotDataset v3.0 at ``source`` into a new episode store ``out``; returns a summary."""
    if isinstance(tolerance_s, bool) or not isinstance(tolerance_s, (int, float)) or not tolerance_s > 0:
        raise ValueError(f"tolerance_s must be a number > 0, got {tolerance_s!r}")
    require_lerobot_deps()
    from tqdm import tqdm

    from robolearn.data.episode_store import EpisodeStore, decode_png

    say = log or (lambda _msg: None)
    root, dst = Path(source), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"no LeRobot dataset at {root}")
    info = read_info(root)
    cameras, ignored = plan_features(info)
    tasks = read_tasks(root)
    episodes = read_episodes(root)
    if len(episodes) != info["total_episodes"]:
        raise LeRobotImportError(
            f"{root / INFO_PATH} says total_episodes {info['total_episodes']} but {root / EPISODES_DIR} lists "
            f"{len(episodes)} episodes"
        )
    if not episodes:
        raise LeRobotImportError(f"{root} holds no episodes")
    extras = read_extras(root)
    fps = info["fps"]
    check_paths(root, dst, force, what="dataset")

    dst.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_tmp(dst, _TMP_MARK)
    tmp = dst.with_name(f".{dst.name}{_TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    store = EpisodeStore(tmp)
    writer = store.writer()
    cursors: dict[str, VideoCursor] = {}  # video key -> the cursor on its current file (one open file per camera)
    table_cache: tuple[Path, Any] | None = None
    total_frames = 0
    task_names: list[str] = []
    try:
        bar = tqdm(episodes, unit="ep", desc=f"import {root.name} -> store", disable=not progress)
        for row in _closing(bar):
            e = int(row["episode_index"])
            data_path = root / info["data_path"].format(chunk_index=int(row["data/chunk_index"]),
                                                        file_index=int(row["data/file_index"]))
            if table_cache is None or table_cache[0] != data_path:
                table_cache = (data_path, _read_parquet(data_path, "data file"))
            table = table_cache[1]
            for key in ("episode_index", "observation.state", "action"):
                if key not in table.column_names:
                    raise LeRobotImportError(f"data file {data_path} has no {key} column")
            ep_idx = np.asarray(table.column("episode_index").to_numpy(zero_copy_only=False))
            rows = np.flatnonzero(ep_idx == e)
            T = int(row["length"])
            if rows.size != T or T < 1 or (rows.size and rows[-1] - rows[0] + 1 != rows.size):
                raise LeRobotImportError(
                    f"data file {data_path} holds {rows.size} rows of episode {e} but its metadata says length {T}"
                    + (" (truncated or wrong file?)" if rows.size < T else "")
                )
            part = table.slice(int(rows[0]), T)
            if "frame_index" in part.column_names:
                fi = np.asarray(part.column("frame_index").to_numpy(zero_copy_only=False))
                if not np.array_equal(fi, np.arange(T)):
                    raise LeRobotImportError(f"data file {data_path}: episode {e} frame_index is not 0..{T - 1}")
            state = _vector(part, "observation.state", data_path, T).astype(np.float32)
            action = _vector(part, "action", data_path, T).astype(np.float32)
            if not (np.all(np.isfinite(state)) and np.all(np.isfinite(action))):
                raise LeRobotImportError(f"data file {data_path}: episode {e} has non-finite state or action")
            if "timestamp" in part.column_names:
                ts = np.asarray(part.column("timestamp").to_numpy(zero_copy_only=False), dtype=np.float64)
            else:
                ts = np.arange(T) / fps
            reward = _column(part, "next.reward", np.float32)
            done = _column(part, "next.done", bool)
            truncated = _column(part, "next.truncated", bool)
            success = _column(part, "next.success", bool)
            intervened = _column(part, "complementary_info.is_intervention", np.float64)
            if reward is None:
                reward = np.zeros(T, np.float32)
            if truncated is None:
                truncated = np.zeros(T, bool)
                if done is None:
                    truncated[-1] = True
            if done is None:
                done = truncated.copy()
            terminated = done & ~truncated
            success = np.zeros(T, bool) if success is None else success
            intervened = np.zeros(T, bool) if intervened is None else intervened > 0.5

            extra = extras.get(e)
            images: dict[str, np.ndarray] = {}
            for key, cam in cameras.items():
                chunk, file = row.get(f"videos/{key}/chunk_index"), row.get(f"videos/{key}/file_index")
                start = row.get(f"videos/{key}/from_timestamp")
                if chunk is None or file is None or start is None:
                    raise LeRobotImportError(
                        f"episode metadata file {row['_file']}: episode {e} lacks videos/{key}/chunk_index, "
                        f"file_index or from_timestamp"
                    )
                vpath = root / info["video_path"].format(video_key=key, chunk_index=int(chunk), file_index=int(file))
                if key not in cursors or cursors[key].path != vpath:
                    if key in cursors:
                        cursors[key].close()
                    cursors[key] = VideoCursor(vpath, tolerance_s)
                try:
                    frames = cursors[key].read(float(start) + ts)
                except LeRobotImportError as exc:
                    raise LeRobotImportError(f"episode {e}, camera {key}: {exc}") from None
                if extra is not None and extra.get(f"image_shape/{cam}"):
                    h, w, _c = extra[f"image_shape/{cam}"]
                    frames = frames[:, :h, :w]  # the export padded odd sizes by one row/column
                    last = decode_png(np.frombuffer(extra[f"final_image/{cam}"], dtype=np.uint8))
                else:
                    last = frames[-1]
                images[cam] = np.concatenate([frames, last[None]])

            task_index = _column(part, "task_index", np.int64)
            ep_tasks = list(row.get("tasks") or [])
            if not ep_tasks and task_index is not None:
                ep_tasks = [tasks[i] for i in dict.fromkeys(task_index.tolist()) if i in tasks]
            if extra is not None:
                meta = json.loads(extra["meta"])
                final_state = np.asarray(extra["final_state"], dtype=np.float32)
            else:
                meta = {"source": "lerobot", "fps": fps}
                if ep_tasks:
                    meta["task"] = ep_tasks[0]
                if len(ep_tasks) > 1:
                    meta["tasks"] = ep_tasks
                if info.get("robot_type"):
                    meta["robot_type"] = info["robot_type"]
                for key, name in (("observation.state", "state_names"), ("action", "action_names")):
                    names = info["features"][key].get("names")
                    if isinstance(names, list) and all(isinstance(n, str) for n in names):
                        meta[name] = names
                meta["final_observation"] = "the last frame repeated (a LeRobot episode has no final observation)"
                final_state = state[-1]
            meta["imported_from"] = {"dataset": str(root), "episode_index": e}
            for t in ep_tasks:
                if t not in task_names:
                    task_names.append(t)

            writer.reset({"state": state[0], "images": {c: f[0] for c, f in images.items()}}, meta=meta)
            for t in range(T):
                nxt = state[t + 1] if t + 1 < T else final_state
                info_t: dict[str, Any] = {"success": bool(success[t])}
                if intervened[t]:
                    info_t["intervene_action"] = action[t]
                writer.step(action[t], {"state": nxt, "images": {c: f[t + 1] for c, f in images.items()}},
                            float(reward[t]), bool(terminated[t]), bool(truncated[t]), info_t)
            writer.close()
            total_frames += T
            bar.set_postfix(frames=total_frames)
        for cursor in cursors.values():
            cursor.close()
        publish(tmp, dst, force)
    finally:
        for cursor in cursors.values():
            cursor.close()
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "source": str(root),
        "out": str(dst),
        "format": f"lerobot {CODEBASE_VERSION}",
        "episodes": len(episodes),
        "frames": total_frames,
        "fps": fps,
        "tasks": task_names,
        "cameras": {key: cam for key, cam in cameras.items()},
        "ignored_features": ignored,
        "final_observation": "kept (robolearn export)" if extras else "repeated last frame",
    }
    say(format_summary(result))
    return result


def format_summary(s: dict[str, Any]) -> str:
    cams = ", ".join(f"{k} -> {v}" for k, v in s["cameras"].items()) or "none"
    lines = [
        f"imported {s['episodes']} episodes ({s['frames']} steps, {s['fps']} fps) from {s['source']} "
        f"({s['format']}) into the store {s['out']}",
        f"  cameras: {cams}; tasks: {', '.join(s['tasks']) or 'none'}",
        f"  final observations: {s['final_observation']}",
    ]
    if s["ignored_features"]:
        lines.append(f"  not imported (no place in an episode store): {', '.join(s['ignored_features'])}")
    return "\n".join(lines)
