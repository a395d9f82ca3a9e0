"""Crash-safe, append-only episode store: one ``.npz`` file per finished episode.

Why this layout: a file only becomes visible under its final name once it is completely written and
fsync'd (temp name in the same directory, then an atomic link/rename), so killing a collector loses at
most the episode in progress. Files are read with ``allow_pickle=False`` only: images are PNG bytes in
one flat uint8 buffer plus an offsets array per camera, meta is a JSON string. ``index.json`` is a cache
(lengths, success, shapes, statistics) rebuilt from the files whenever it is missing or stale; the files
are the truth.

File layout (format 1), T = number of steps::

    format ()                    int64, 1
    meta ()                      str, JSON object
    state (T+1, D)               float32
    action (T, A)                float32, the executed action (the intervention when there was one)
    reward (T,)                  float32
    terminated, truncated, success, intervened (T,)   bool
    img__<cam>__data (N,)        uint8, concatenated PNG files
    img__<cam>__offsets (T+2,)   int64, frame t is data[offsets[t]:offsets[t+1]]
    img__<cam>__shape (3,)       int64, (H, W, 3)
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
import uuid
import warnings
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from robolearn.data.fsutil import atomic_write_json, fsync_path, pid_alive

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
INDEX_VERSION = 1
_EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")
_TMP_PREFIX = ".tmp-episode-"
_CAM_RE = re.compile(r"^[A-Za-z0-9_\-]+$")
_STEP_KEYS = ("action", "reward", "terminated", "truncated", "success", "intervened")
_BOOL_KEYS = ("terminated", "truncated", "success", "intervened")
_STALE_TMP_SECONDS = 24 * 3600


class CorruptEpisodeError(ValueError):
    """An episode file that cannot be read back (truncated, bad zip, missing key, inconsistent lengths)."""


@dataclasses.dataclass
class Episode:
    name: str
    state: np.ndarray  # (T+1, D) float32
    images: dict[str, np.ndarray]  # cam -> (T+1, H, W, 3) uint8
    action: np.ndarray  # (T, A) float32
    reward: np.ndarray  # (T,) float32
    terminated: np.ndarray  # (T,) bool
    truncated: np.ndarray  # (T,) bool
    success: np.ndarray  # (T,) bool
    intervened: np.ndarray  # (T,) bool
    meta: dict[str, Any]

    @property
    def length(self) -> int:
        return int(self.action.shape[0])

    @property
    def succeeded(self) -> bool:
        return bool(self.success.any())


# ----------------------------------------------------------------------------------------------
# Image codec
# ----------------------------------------------------------------------------------------------
def encode_png(frame: np.ndarray) -> np.ndarray:
    """Lossless PNG of an RGB (H, W, 3) uint8 frame, as a uint8 array."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError(f"PNG encoding failed for a frame of shape {frame.shape}")
    return buf.reshape(-1)


def decode_png(buf: np.ndarray) -> np.ndarray:
    import cv2

    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError("PNG data does not decode to an RGB frame")
    return np.ascontiguousarray(img[..., ::-1])


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    fsync_path(path)


def _episode_files(root: Path) -> dict[str, os.stat_result]:
    out = {}
    with os.scandir(root) as it:
        for entry in it:
            if _EPISODE_RE.match(entry.name) and entry.is_file():
                out[entry.name] = entry.stat()
    return out


def _name_of(filename: str) -> str:
    return filename[: -len(".npz")]


def _merge_moments(acc: dict | None, x: np.ndarray) -> dict:
    """Chan et al. parallel combination of (count, mean, M2, min, max) over axis 0 (float64)."""
    x = np.asarray(x, dtype=np.float64)
    n_b = x.shape[0]
    if n_b == 0:
        return acc
    mean_b = x.mean(axis=0)
    m2_b = ((x - mean_b) ** 2).sum(axis=0)
    mn, mx = x.min(axis=0), x.max(axis=0)
    if acc is None:
        return {"n": n_b, "mean": mean_b, "m2": m2_b, "min": mn, "max": mx}
    n_a = acc["n"]
    n = n_a + n_b
    delta = mean_b - acc["mean"]
    return {
        "n": n,
        "mean": acc["mean"] + delta * (n_b / n),
        "m2": acc["m2"] + m2_b + delta**2 * (n_a * n_b / n),
        "min": np.minimum(acc["min"], mn),
        "max": np.maximum(acc["max"], mx),
    }


def _finish_moments(acc: dict) -> dict[str, np.ndarray]:
    return {
        "min": np.asarray(acc["min"], dtype=np.float64),
        "max": np.asarray(acc["max"], dtype=np.float64),
        "mean": np.asarray(acc["mean"], dtype=np.float64),
        "std": np.sqrt(np.asarray(acc["m2"], dtype=np.float64) / acc["n"]),
    }


def _stats_to_json(stats: dict) -> dict:
    return {k: {s: np.asarray(v).tolist() for s, v in d.items()} for k, d in stats.items()}


def _stats_from_json(data: dict) -> dict:
    return {k: {s: np.asarray(v, dtype=np.float64) for s, v in d.items()} for k, d in data.items()}


# ----------------------------------------------------------------------------------------------
# Reading one file
# ----------------------------------------------------------------------------------------------
def read_episode(path: str | os.PathLike, *, images: bool = True) -> Episode:
    """Read and validate one episode file; any defect raises CorruptEpisodeError naming the file.

    All arrays are read in full even with ``images=False`` so the zip CRCs are checked.
    """
    path = Path(path)
    name = _name_of(path.name) if path.name.endswith(".npz") else path.name
    try:
        with np.load(path, allow_pickle=False) as npz:
            files = set(npz.files)
            required = {"format", "meta", "state", *_STEP_KEYS}
            missing = sorted(required - files)
            if missing:
                raise CorruptEpisodeError(f"missing key(s) {', '.join(missing)}")
            fmt = int(npz["format"])
            if fmt != FORMAT_VERSION:
                raise CorruptEpisodeError(f"unsupported format version {fmt}")
            meta = json.loads(str(npz["meta"]))
            if not isinstance(meta, dict):
                raise CorruptEpisodeError("meta is not a JSON object")
            state = npz["state"]
            arrays = {k: npz[k] for k in _STEP_KEYS}
            cams = sorted({f.split("__")[1] for f in files if f.startswith("img__") and f.count("__") == 2})
            raw_images = {}
            for cam in cams:
                keys = [f"img__{cam}__{part}" for part in ("data", "offsets", "shape")]
                absent = [k for k in keys if k not in files]
                if absent:
                    raise CorruptEpisodeError(f"missing key(s) {', '.join(absent)}")
                raw_images[cam] = tuple(npz[k] for k in keys)
    except CorruptEpisodeError as exc:
        raise CorruptEpisodeError(f"corrupt episode file {path.name}: {exc}") from None
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, TypeError, json.JSONDecodeError) as exc:
        raise CorruptEpisodeError(f"corrupt episode file {path.name}: {type(exc).__name__}: {exc}") from None

    def bad(msg: str) -> CorruptEpisodeError:
        return CorruptEpisodeError(f"corrupt episode file {path.name}: {msg}")

    if state.ndim != 2 or state.dtype != np.float32:
        raise bad(f"state has shape {state.shape} dtype {state.dtype}, expected (T+1, D) float32")
    T = state.shape[0] - 1
    if T < 1:
        raise bad("episode has no steps")
    act = arrays["action"]
    if act.ndim != 2 or act.shape[0] != T or act.dtype != np.float32:
        raise bad(f"action has shape {act.shape} dtype {act.dtype}, expected ({T}, A) float32")
    for key in ("reward", *_BOOL_KEYS):
        arr = arrays[key]
        want = np.float32 if key == "reward" else np.bool_
        if arr.shape != (T,) or arr.dtype != want:
            raise bad(f"{key} has shape {arr.shape} dtype {arr.dtype}, expected ({T},) {np.dtype(want).name}")
    decoded: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for cam, (data, offsets, shape) in raw_images.items():
        if data.dtype != np.uint8 or data.ndim != 1:
            raise bad(f"images {cam!r}: data is not a flat uint8 buffer")
        if offsets.shape != (T + 2,) or offsets[0] != 0 or offsets[-1] != data.shape[0] or np.any(np.diff(offsets) <= 0):
            raise bad(f"images {cam!r}: offsets inconsistent with {T + 1} frames and {data.shape[0]} bytes")
        if shape.shape != (3,) or shape[2] != 3:
            raise bad(f"images {cam!r}: bad frame shape {shape.tolist()}")
        shapes[cam] = tuple(int(s) for s in shape)
        if images:
            frames = np.empty((T + 1, *shapes[cam]), dtype=np.uint8)
            for t in range(T + 1):
                try:
                    frame = decode_png(data[offsets[t] : offsets[t + 1]])
                except ValueError as exc:
                    raise bad(f"images {cam!r} frame {t}: {exc}") from None
                if frame.shape != shapes[cam]:
                    raise bad(f"images {cam!r} frame {t} has shape {frame.shape}, expected {shapes[cam]}")
                frames[t] = frame
            decoded[cam] = frames
    ep = Episode(
        name=name,
        state=state,
        images=decoded,
        meta=meta,
        **arrays,
    )
    ep._image_shapes = shapes  # type: ignore[attr-defined]  (used by the index without decoding)
    return ep


# ----------------------------------------------------------------------------------------------
# Writer
# ----------------------------------------------------------------------------------------------
class EpisodeWriter:
    """Accumulates one episode at a time and writes it as one file on ``close()``.

    Everything is validated as it arrives so a bad episode is never written: obs must be a dict with
    "state", shapes may not change across steps, and state/action/reward must be finite.
    A writer can be reused: ``reset`` -> ``step``... -> ``close`` (or ``discard``), then ``reset`` again.
    """

    def __init__(self, store: "EpisodeStore", meta: Mapping[str, Any] | None = None):
        self.store = store
        self.meta = dict(meta or {})
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"episode meta must be JSON-serialisable: {exc}") from None
        self._active = False
        self._clear()
        store.clean_stale_temp_files()

    # -- validation ----------------------------------------------------------------------
    def _where(self) -> str:
        return "reset" if self._t is None else f"step {self._t}"

    def _check_vector(self, key: str, value: Any, shape: tuple[int, ...] | None) -> np.ndarray:
        try:
            arr = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{key} at {self._where()} is not numeric: {exc}") from None
        if arr.ndim != 1:
            raise ValueError(f"{key} at {self._where()} must be a 1-D vector, got shape {arr.shape}")
        if shape is not None and arr.shape != shape:
            raise ValueError(f"{key} at {self._where()} has shape {arr.shape}, expected {shape} as in earlier steps")
        if not np.all(np.isfinite(arr)):
            bad = np.flatnonzero(~np.isfinite(arr)).tolist()
            raise ValueError(f"{key} at {self._where()} has non-finite values (NaN/inf) at indices {bad}")
        return arr.copy()

    def _check_obs(self, obs: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if not isinstance(obs, Mapping) or "state" not in obs:
            got = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
            raise ValueError(f"obs at {self._where()} must be a dict with a 'state' key, got {got}")
        state = self._check_vector("state", obs["state"], self._state_shape)
        imgs = obs.get("images") or {}
        if not isinstance(imgs, Mapping):
            raise ValueError(f"obs['images'] at {self._where()} must be a dict camera -> (H, W, 3) uint8")
        if self._image_shapes is not None and set(imgs) != set(self._image_shapes):
            raise ValueError(
                f"images at {self._where()} have cameras {sorted(imgs)}, expected {sorted(self._image_shapes)}"
            )
        checked = {}
        for cam, frame in imgs.items():
            if not isinstance(cam, str) or not _CAM_RE.match(cam):
                raise ValueError(f"camera name {cam!r} must match [A-Za-z0-9_-]+")
            frame = np.asarray(frame)
            key = f"images[{cam!r}]"
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(
                    f"{key} at {self._where()} must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}"
                )
            if self._image_shapes is not None and frame.shape != self._image_shapes[cam]:
                raise ValueError(
                    f"{key} at {self._where()} has shape {frame.shape}, expected {self._image_shapes[cam]}"
                )
            checked[cam] = frame
        return state, checked

    # -- recording -----------------------------------------------------------------------
    def _clear(self) -> None:
        self._t: int | None = None
        self._state_shape: tuple[int, ...] | None = None
        self._action_shape: tuple[int, ...] | None = None
        self._image_shapes: dict[str, tuple[int, ...]] | None = None
        self._states: list[np.ndarray] = []
        self._pngs: dict[str, list[np.ndarray]] = {}
        self._steps: dict[str, list] = {k: [] for k in _STEP_KEYS}
        self._episode_meta: dict[str, Any] = {}
        self._active = False

    @property
    def num_steps(self) -> int:
        return len(self._steps["action"])

    def reset(self, obs: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> None:
        """Start an episode at its first observation; ``meta`` adds to the writer's meta for this episode."""
        if self._active and self.num_steps:
            raise RuntimeError(
                f"reset() with {self.num_steps} unsaved steps: call close() to save or discard() to drop them"
            )
        self._clear()
        if meta:
            try:
                json.dumps(dict(meta))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"episode meta must be JSON-serialisable: {exc}") from None
        state, imgs = self._check_obs(obs)
        self._episode_meta = dict(meta or {})
        self._state_shape = state.shape
        self._image_shapes = {cam: f.shape for cam, f in imgs.items()}
        self._add_obs(state, imgs)
        self._t = 0
        self._active = True

    def _add_obs(self, state: np.ndarray, imgs: dict[str, np.ndarray]) -> None:
        self._states.append(state)
        for cam, frame in imgs.items():
            self._pngs.setdefault(cam, []).append(encode_png(frame))

    def step(self, action, next_obs, reward, terminated, truncated, info: Mapping[str, Any] | None = None) -> None:
        if not self._active:
            raise RuntimeError("step() called before reset(): start each episode with reset(first_obs)")
        info = info or {}
        executed = info.get("intervene_action")
        intervened = executed is not None
        act = self._check_vector(
            "intervene_action" if intervened else "action",
            executed if intervened else action,
            self._action_shape,
        )
        try:
            rew = float(reward)
        except (TypeError, ValueError):
            raise ValueError(f"reward at {self._where()} is not a number: {reward!r}") from None
        if not math.isfinite(rew):
            raise ValueError(f"reward at {self._where()} is not finite: {rew}")
        state, imgs = self._check_obs(next_obs)
        # Only now, with everything valid, does the step become part of the episode.
        self._action_shape = act.shape
        self._add_obs(state, imgs)
        s = self._steps
        s["action"].append(act)
        s["reward"].append(rew)
        s["terminated"].append(bool(terminated))
        s["truncated"].append(bool(truncated))
        s["success"].append(bool(info.get("success", False)))
        s["intervened"].append(intervened)
        self._t += 1

    def discard(self) -> None:
        """Drop the episode in progress."""
        self._clear()

    def close(self) -> Path | None:
        """Write the finished episode as one file (atomically); None when it has no steps."""
        if not self._active or self.num_steps == 0:
            self._clear()
            return None
        arrays: dict[str, np.ndarray] = {
            "format": np.array(FORMAT_VERSION, dtype=np.int64),
            "meta": np.array(json.dumps({**self.meta, **self._episode_meta}, sort_keys=True)),
            "state": np.stack(self._states).astype(np.float32),
            "action": np.stack(self._steps["action"]).astype(np.float32),
            "reward": np.asarray(self._steps["reward"], dtype=np.float32),
        }
        for key in _BOOL_KEYS:
            arrays[key] = np.asarray(self._steps[key], dtype=bool)
        for cam, pngs in self._pngs.items():
            sizes = np.array([p.shape[0] for p in pngs], dtype=np.int64)
            arrays[f"img__{cam}__data"] = np.concatenate(pngs)
            arrays[f"img__{cam}__offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            arrays[f"img__{cam}__shape"] = np.asarray(self._image_shapes[cam], dtype=np.int64)
        path = self.store._commit(arrays)
        self._clear()
        return path


# ----------------------------------------------------------------------------------------------
# Store
# ----------------------------------------------------------------------------------------------
def is_episode_store(root: str | os.PathLike) -> bool:
    """A directory is a store when it holds episode files, their index or a writer's temp file.

    Reading code checks this before touching a folder, because reading a store refreshes its
    ``index.json``: without the check, pointing a reader at a run folder would plant an index there
    and report "0 episodes" as if that were a valid answer.
    """
    root = Path(root)
    if not root.is_dir():
        return False
    with os.scandir(root) as it:
        return any(
            _EPISODE_RE.match(e.name) or e.name == INDEX_NAME or e.name.startswith(_TMP_PREFIX) for e in it
        )


def describe_folder(root: str | os.PathLike, limit: int = 8) -> str:
    """What a folder holds, for errors: ``config.json, checkpoint/ ...`` or ``it is empty``."""
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(root))
    if not names:
        return "it is empty"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"it holds {', '.join(names[:limit])}{more}"


class EpisodeStore:
    """A directory of episode files plus a cached index (see module docstring)."""

    def __init__(self, root: str | os.PathLike, *, create: bool = True):
        """``create=False`` opens an existing store for reading: a missing path, or a folder that is not
        a store (see ``is_episode_store``), raises FileNotFoundError naming what the folder holds, and
        nothing is written to it."""
        self.root = Path(root)
        if not self.root.exists():
            if not create:
                raise FileNotFoundError(f"episode store not found: {self.root}")
            self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise NotADirectoryError(f"episode store path is not a directory: {self.root}")
        if not create and not is_episode_store(self.root):
            raise FileNotFoundError(
                f"{self.root} is not an episode store (no episode files; {describe_folder(self.root)})"
            )
        self._index: dict | None = None
        self._warned: set[str] = set()

    def __repr__(self) -> str:
        return f"EpisodeStore({str(self.root)!r})"

    # -- writing -------------------------------------------------------------------------
    def writer(self, meta: Mapping[str, Any] | None = None) -> EpisodeWriter:
        return EpisodeWriter(self, meta)

    def _next_index(self) -> int:
        used = [int(_EPISODE_RE.match(n).group(1)) for n in _episode_files(self.root)]
        return max(used) + 1 if used else 0

    def _commit(self, arrays: dict[str, np.ndarray]) -> Path:
        tmp = self.root / f"{_TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:10]}.npz"
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            # Claim the next free name without ever overwriting: link() fails if the name exists,
            # so concurrent writers (or a resumed run) each get their own index.
            idx = self._next_index()
            while True:
                final = self.root / f"episode_{idx:06d}.npz"
                try:
                    os.link(tmp, final)
                    break
                except FileExistsError:
                    idx += 1
                except OSError:  # filesystem without hard links: rename, after checking the name is free
                    if final.exists():
                        idx += 1
                        continue
                    os.replace(tmp, final)
                    break
        finally:
            if tmp.exists():
                tmp.unlink()
        _fsync_dir(self.root)
        return final

    def clean_stale_temp_files(self) -> list[str]:
        """Remove temp files left by writers that died (their pid is gone or they are a day old)."""
        removed = []
        now = time.time()
        with os.scandir(self.root) as it:
            for entry in it:
                if not entry.name.startswith(_TMP_PREFIX):
                    continue
                pid_part = entry.name[len(_TMP_PREFIX) :].split("-", 1)[0]
                try:
                    dead = not pid_alive(int(pid_part))
                except ValueError:
                    dead = True
                try:
                    old = now - entry.stat().st_mtime > _STALE_TMP_SECONDS
                    if dead or old:
                        os.unlink(entry.path)
                        removed.append(entry.name)
                except FileNotFoundError:
                    pass
        return removed

    # -- index -----------------------------------------------------------------------------
    def _read_index_file(self) -> dict | None:
        path = self.root / INDEX_NAME
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return None
        if not isinstance(data.get("files"), dict):
            return None
        return data

    def refresh(self) -> dict:
        """Bring the index in line with the files: unchanged files are trusted, new/changed ones read."""
        old = self._index if self._index is not None else self._read_index_file()
        old_files = (old or {}).get("files", {})
        listing = _episode_files(self.root)
        files: dict[str, dict] = {}
        changed = old is None or set(old_files) != set(listing) or not (self.root / INDEX_NAME).exists()
        for fname in sorted(listing):
            st = listing[fname]
            prev = old_files.get(fname)
            if prev and prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns:
                files[fname] = prev
                continue
            changed = True
            entry: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
            try:
                ep = read_episode(self.root / fname, images=False)
            except FileNotFoundError:
                continue
            except CorruptEpisodeError as exc:
                entry["corrupt"] = str(exc)
            else:
                entry.update(
                    length=ep.length,
                    success=ep.succeeded,
                    shapes={
                        "state": list(ep.state.shape[1:]),
                        "action": list(ep.action.shape[1:]),
                        **{f"images/{c}": list(s) for c, s in ep._image_shapes.items()},  # type: ignore[attr-defined]
                    },
                )
            files[fname] = entry
        index = {"version": INDEX_VERSION, "files": files, "stats": (old or {}).get("stats", {})}
        if changed:
            index["stats"] = {}  # statistics depend on the exact set of episodes
            try:
                atomic_write_json(self.root / INDEX_NAME, index, indent=1, sort_keys=True)
            except OSError as exc:  # a read-only store is still readable
                warnings.warn(f"could not write {self.root / INDEX_NAME}: {exc}", stacklevel=2)
        for fname, entry in files.items():
            if "corrupt" in entry and fname not in self._warned:
                self._warned.add(fname)
                warnings.warn(f"skipping {entry['corrupt']}", stacklevel=3)
        self._index = index
        return index

    def _valid(self) -> list[tuple[str, dict]]:
        files = self.refresh()["files"]
        return [(f, e) for f, e in sorted(files.items()) if "corrupt" not in e]

    # -- reading ---------------------------------------------------------------------------
    def names(self) -> list[str]:
        return [_name_of(f) for f, _ in self._valid()]

    def __len__(self) -> int:
        return len(self._valid())

    def load(self, key: int | str, *, images: bool = True) -> Episode:
        """Episode by position in ``names()`` or by name (``episode_000003`` or the file name)."""
        if isinstance(key, (int, np.integer)):
            names = self.names()
            try:
                name = names[int(key)]
            except IndexError:
                raise IndexError(f"episode index {key} out of range: the store holds {len(names)} episodes") from None
        else:
            name = _name_of(key) if str(key).endswith(".npz") else str(key)
        path = self.root / f"{name}.npz"
        if not path.exists():
            raise FileNotFoundError(f"no episode {name!r} in {self.root}")
        return read_episode(path, images=images)

    def iter(self, *, images: bool = True) -> Iterator[Episode]:
        for name in self.names():
            try:
                yield self.load(name, images=images)
            except CorruptEpisodeError as exc:  # changed on disk since the index was built
                warnings.warn(f"skipping {exc}", stacklevel=2)
            except FileNotFoundError:
                continue

    def __iter__(self) -> Iterator[Episode]:
        return self.iter()

    def stats(self, *, images: bool = False) -> dict[str, dict[str, np.ndarray]]:
        """min/max/mean/std (float64, population std) of state, action, reward over valid episodes.

        With ``images=True`` also per-channel mean/std of each camera (0..255 scale). Cached in the
        index until the set of episode files changes.
        """
        index = self.refresh()
        cache_key = "with_images" if images else "no_images"
        cached = index.get("stats", {}).get(cache_key)
        if cached:
            return _stats_from_json(cached)
        accs: dict[str, dict | None] = {"state": None, "action": None, "reward": None}
        img_accs: dict[str, dict | None] = {}
        for ep in self.iter(images=images):
            for key, arr in (("state", ep.state), ("action", ep.action)):
                if accs[key] is not None and accs[key]["mean"].shape != arr.shape[1:]:
                    raise ValueError(
                        f"{ep.name}: {key} has shape {arr.shape[1:]} but earlier episodes have "
                        f"{accs[key]['mean'].shape}; statistics need one shape per key"
                    )
            accs["state"] = _merge_moments(accs["state"], ep.state)
            accs["action"] = _merge_moments(accs["action"], ep.action)
            accs["reward"] = _merge_moments(accs["reward"], ep.reward)
            for cam, frames in ep.images.items():
                img_accs[cam] = _merge_moments(img_accs.get(cam), frames.reshape(-1, frames.shape[-1]))
        if accs["state"] is None:
            raise ValueError(f"no valid episodes in {self.root} to compute statistics from")
        out = {k: _finish_moments(a) for k, a in accs.items()}
        for cam, acc in img_accs.items():
            full = _finish_moments(acc)
            out[f"images/{cam}"] = {"mean": full["mean"], "std": full["std"]}
        index.setdefault("stats", {})[cache_key] = _stats_to_json(out)
        try:
            atomic_write_json(self.root / INDEX_NAME, index, indent=1, sort_keys=True)
        except OSError:
            pass
        return out

    def summary(self) -> dict[str, Any]:
        files = self.refresh()["files"]
        valid = [e for _, e in sorted(files.items()) if "corrupt" not in e]
        keys: dict[str, list[int]] = {}
        for e in valid:
            for k, shape in e["shapes"].items():
                keys.setdefault(k, shape)
        steps = sum(e["length"] for e in valid)
        return {
            "path": str(self.root),
            "episodes": len(valid),
            "steps": steps,
            "success_rate": (sum(bool(e["success"]) for e in valid) / len(valid)) if valid else 0.0,
            "mean_length": steps / len(valid) if valid else 0.0,
            "keys": keys,
            "corrupt": [_name_of(f) for f, e in sorted(files.items()) if "corrupt" in e],
            "corrupt_reasons": {_name_of(f): e["corrupt"] for f, e in sorted(files.items()) if "corrupt" in e},
        }
