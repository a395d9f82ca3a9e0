"""Videos and contact sheets of episode frames, written atomically (temp name in the same dir, then rename)."""
from __future__ import annotations

import os
from pathlib import Path

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


def contact_sheet(frames, path: str | os.PathLike, cols: int = 8, n: int = 16, label: bool = True) -> Path:
    """A PNG grid of ``n`` evenly spaced frames, ``cols`` per row, each labelled with its frame index.

    Image size: (rows * H, cols * W, 3) with rows = ceil(k / cols), k = number of frames shown; unused
    cells are black.
    """
    import cv2

    arr = _check_frames(frames, "contact_sheet")
    if not isinstance(cols, (int, np.integer)) or cols < 1:
        raise ValueError(f"contact_sheet: cols must be an int >= 1, got {cols!r}")
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"contact_sheet: n must be an int >= 1, got {n!r}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"contact_sheet: path must end in .png, got {path.name}")
    idx = sheet_indices(arr.shape[0], n)
    cols = min(cols, len(idx))
    rows = -(-len(idx) // cols)
    T, H, W, _ = arr.shape
    sheet = np.zeros((rows * H, cols * W, 3), dtype=np.uint8)
    scale = max(H, W) / 256.0
    thickness = max(1, int(round(scale * 2)))
    for k, t in enumerate(idx):
        r, c = divmod(k, cols)
        cell = np.ascontiguousarray(arr[t][..., ::-1])  # cv2 draws in BGR
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
