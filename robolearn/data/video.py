"""Videos and contact sheets of episode frames, written atomically (temp name in the same dir, then rename).

The frame helpers (``annotate``, ``annotate_episode``, ``side_by_side``, ``upscale``) are pure functions on
RGB uint8 arrays, shared by evaluation videos and the demo: a rollout video is only useful when it says
which step is shown and whether the episode succeeded, without reading the JSON next to it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from robolearn.data.fsutil import atomic_target, atomic_write_bytes, temp_sibling


def _check_frames(frames, what: str) -> np.ndarray:
    if frames is None:
        raise ValueError(f"{what}: frames is None")
    arr = np.asarray(frames)
    if arr.dtype != np.uint8:
        raise ValueError(f"{what}: frames must be uint8, got dtype {arr.dtype}")
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"{what}: frames must have shape (T, H, W, 3), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what}: no frames (T = 0)")
    if arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"{what}: frames have empty height/width {arr.shape[1:3]}")
    return arr


GREEN = (40, 200, 70)
RED = (220, 45, 45)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)


def _check_frame(frame, what: str) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{what}: a frame must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    return arr


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, *, align_right: bool = False,
          box: bool = True) -> None:
    """Text with a dark box behind it (readable on the white table and the black sky), in place.

    OpenCV's built-in Hershey font: no font files and no extra dependency.
    """
    import cv2

    thickness = max(1, int(round(scale * 2)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x, y = org
    if align_right:
        x = max(0, x - w)
    if box:
        pad = max(1, int(round(3 * scale)))
        x0, y0 = max(0, x - pad), max(0, y - h - pad)
        x1, y1 = min(img.shape[1], x + w + pad), min(img.shape[0], y + base + pad)
        img[y0:y1, x0:x1] = (img[y0:y1, x0:x1].astype(np.uint16) * 2 // 7).astype(np.uint8)  # darkened, not opaque
    cv2.putText(img, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def annotate(frame, step: int, success: bool | None, *, total: int | None = None) -> np.ndarray:
    """A copy of ``frame`` with a step counter (top left) and the outcome so far.

    ``success``: True once the task has succeeded (green border, "success"), False at the last frame of
    a failed episode (red border, "fail"), None while the episode runs (no mark). Sizes follow the
    frame's height, so the marks read the same at 84 px and at 512 px.
    """
    img = np.array(_check_frame(frame, "annotate"), dtype=np.uint8, copy=True)
    if success not in (None, True, False):
        raise ValueError(f"annotate: success must be True, False or None, got {success!r}")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"annotate: step must be an int >= 0, got {step!r}")
    H, W = img.shape[:2]
    scale = max(0.3, H / 512.0)
    margin = max(2, H // 40)
    line = int(round(28 * scale))
    label = f"step {int(step)}" + (f"/{int(total)}" if total is not None else "")
    _text(img, label, (margin + 2, margin + line), scale, WHITE)
    if success is not None:
        color, word = (GREEN, "success") if success else (RED, "fail")
        border = max(2, H // 48)
        img[:border], img[-border:], img[:, :border], img[:, -border:] = color, color, color, color
        _text(img, word, (W - margin - 2, margin + line), scale, color, align_right=True)
    return img


def annotate_episode(frames, success) -> np.ndarray:
    """Annotate every frame of one episode: ``success[t]`` is the task's success flag at frame t
    (frame 0 is the reset); the mark turns green from the first success on, and the last frame of an
    episode that never succeeded turns red. With an episode from the store:
    ``annotate_episode(ep.images["front"], np.r_[False, ep.success])``.
    """
    arr = _check_frames(frames, "annotate_episode")
    flags = np.asarray(success, dtype=bool).reshape(-1)
    if flags.shape[0] != arr.shape[0]:
        raise ValueError(f"annotate_episode: {flags.shape[0]} success flags for {arr.shape[0]} frames")
    reached = np.logical_or.accumulate(flags)
    last = arr.shape[0] - 1
    out = np.empty_like(arr)
    for t in range(arr.shape[0]):
        mark = True if reached[t] else (False if t == last else None)
        out[t] = annotate(arr[t], t, mark, total=last)
    return out


def upscale(frame, size: int) -> np.ndarray:
    """``frame`` resized so its longer side is ``size`` px (aspect kept); frames already that large are
    returned as they are. For showing small policy images; a real higher-resolution render shows more."""
    import cv2

    img = _check_frame(frame, "upscale")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"upscale: size must be an int >= 1, got {size!r}")
    H, W = img.shape[:2]
    if max(H, W) >= size:
        return img
    f = size / max(H, W)
    return cv2.resize(img, (max(1, round(W * f)), max(1, round(H * f))), interpolation=cv2.INTER_LINEAR)


def side_by_side(frames_by_camera: Mapping[str, np.ndarray] | Sequence[np.ndarray], *, gap: int = 4,
                 labels: bool = True) -> np.ndarray:
    """One frame with the cameras next to each other, left to right in the given order, separated by a
    black ``gap`` and named at the bottom left when ``labels`` (and names are given). Frames of
    different heights are scaled to the tallest."""
    import cv2

    if isinstance(frames_by_camera, Mapping):
        items = [(str(k), v) for k, v in frames_by_camera.items()]
    else:
        items = [(None, v) for v in frames_by_camera]
    if not items:
        raise ValueError("side_by_side: no frames")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ValueError(f"side_by_side: gap must be an int >= 0, got {gap!r}")
    frames = [(name, _check_frame(f, f"side_by_side[{name or i}]")) for i, (name, f) in enumerate(items)]
    H = max(f.shape[0] for _, f in frames)
    parts = []
    for i, (name, f) in enumerate(frames):
        if f.shape[0] != H:
            f = cv2.resize(f, (max(1, round(f.shape[1] * H / f.shape[0])), H), interpolation=cv2.INTER_LINEAR)
        f = np.array(f, dtype=np.uint8, copy=True)
        if labels and name is not None and len(frames) > 1:
            scale = max(0.3, H / 640.0)
            _text(f, name, (max(2, H // 40) + 2, H - max(2, H // 40) - 2), scale, WHITE)
        if i:
            parts.append(np.zeros((H, gap, 3), np.uint8))
        parts.append(f)
    return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]


def write_mp4(frames, path: str | os.PathLike, fps: float = 20.0) -> Path:
    """H.264 mp4 of RGB frames (T, H, W, 3) uint8 via imageio-ffmpeg.

    Odd sizes are padded by one black row/column (yuv420p needs even dimensions) instead of letting
    ffmpeg rescale the frames.
    """
    import imageio.v2 as imageio

    arr = _check_frames(frames, "write_mp4")
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"write_mp4: fps must be > 0, got {fps}")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"write_mp4: path must end in .mp4, got {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pad_h, pad_w = arr.shape[1] % 2, arr.shape[2] % 2
    if pad_h or pad_w:
        arr = np.pad(arr, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    # imageio-ffmpeg writes to a path, not bytes: keep the .mp4 suffix on the temp name
    with atomic_target(path, temp_sibling(path, keep_suffix=True)) as tmp:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
            macro_block_size=1, quality=8, ffmpeg_log_level="error",
        )
        try:
            for frame in arr:
                writer.append_data(frame)
        finally:
            writer.close()
    return path


def sheet_indices(num_frames: int, n: int) -> np.ndarray:
    """``n`` evenly spaced frame indices from first to last (fewer if there are fewer frames)."""
    n = min(n, num_frames)
    return np.unique(np.round(np.linspace(0, num_frames - 1, n)).astype(int))


def contact_sheet(frames, path: str | os.PathLike, cols: int = 8, n: int = 16, label: bool = True,
                  min_cell: int = 256) -> Path:
    """A PNG grid of ``n`` evenly spaced frames, ``cols`` per row, each labelled with its frame index.

    Each cell is at least ``min_cell`` px on its longer side (smaller frames are scaled up; 0 keeps them
    as they are): at 84 px a 4 cm cube is a few pixels in a 16-frame strip, too small to judge a grasp.
    Image size: (rows * h, cols * w, 3) with (h, w) the cell size, rows = ceil(k / cols), k = number of
    frames shown; unused cells are black.
    """
    import cv2

    arr = _check_frames(frames, "contact_sheet")
    if not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"contact_sheet: cols must be an int >= 1, got {cols!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"contact_sheet: n must be an int >= 1, got {n!r}")
    if isinstance(min_cell, bool) or not isinstance(min_cell, (int, np.integer)) or min_cell < 0:
        raise ValueError(f"contact_sheet: min_cell must be an int >= 0, got {min_cell!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"contact_sheet: path must end in .png, got {path.name}")
    idx = sheet_indices(arr.shape[0], n)
    cells = [arr[t] for t in idx]
    if min_cell and max(arr.shape[1:3]) < min_cell:
        cells = [upscale(cell, int(min_cell)) for cell in cells]
    cols = min(cols, len(idx))
    rows = -(-len(idx) // cols)
    H, W = cells[0].shape[:2]
    sheet = np.zeros((rows * H, cols * W, 3), dtype=np.uint8)
    scale = max(H, W) / 256.0
    thickness = max(1, int(round(scale * 2)))
    for k, t in enumerate(idx):
        r, c = divmod(k, cols)
        cell = np.ascontiguousarray(cells[k][..., ::-1])  # cv2 draws in BGR
        if label:
            text = str(int(t))
            org = (2, max(8, int(14 * scale * 1.5)))
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, max(0.3, scale), (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.putText(cell, text, org, cv2.FONT_HERSHEY_SIMPLEX, max(0.3, scale), (255, 255, 255), thickness, cv2.LINE_AA)
        sheet[r * H : (r + 1) * H, c * W : (c + 1) * W] = cell
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".png", sheet)
    if not ok:
        raise ValueError(f"contact_sheet: PNG encoding failed for a {sheet.shape} image")
    atomic_write_bytes(path, buf.tobytes())
    return path
