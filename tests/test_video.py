"""mp4 writing and contact sheets: read back with independent decoders, sizes, frame choice, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from robolearn.data.video import contact_sheet, sheet_indices, write_mp4


def _gradient_frames(T, H, W):
    """Smooth, moving frames (video codecs keep these close to the input)."""
    y, x = np.mgrid[0:H, 0:W]
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    for t in range(T):
        frames[t, ..., 0] = (x * 255 // max(W - 1, 1) + 4 * t) % 256
        frames[t, ..., 1] = y * 255 // max(H - 1, 1)
        frames[t, ..., 2] = 128
    return frames


def test_mp4_reads_back_with_right_count_and_content(tmp_path):
    import imageio.v2 as imageio

    frames = _gradient_frames(30, 48, 64)
    path = write_mp4(frames, tmp_path / "sub" / "ep.mp4", fps=20)
    assert path.exists() and path.stat().st_size > 0
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(20)
        back = np.stack([f for f in reader.iter_data()])
    finally:
        reader.close()
    assert back.shape == frames.shape
    err = np.abs(back.astype(int) - frames.astype(int)).mean()
    assert err < 6, err  # lossy codec, but the same picture
    assert [p.name for p in path.parent.iterdir()] == ["ep.mp4"]  # no temp file left behind


def test_mp4_odd_size_is_padded_not_scaled(tmp_path):
    import imageio.v2 as imageio

    frames = _gradient_frames(5, 21, 33)
    path = write_mp4(frames, tmp_path / "odd.mp4", fps=10)
    reader = imageio.get_reader(path, format="FFMPEG")
    back = np.stack([f for f in reader.iter_data()])
    reader.close()
    assert back.shape == (5, 22, 34, 3)
    assert np.abs(back[:, :21, :33].astype(int) - frames.astype(int)).mean() < 8


def test_contact_sheet_size_and_frame_choice(tmp_path):
    import cv2

    T, H, W = 50, 40, 60
    frames = np.stack([np.full((H, W, 3), 5 * t, dtype=np.uint8) for t in range(T)])
    path = contact_sheet(frames, tmp_path / "sheet.png", cols=8, n=16, min_cell=0)  # native size
    sheet = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert sheet.shape == (2 * H, 8 * W, 3)
    idx = sheet_indices(T, 16)
    assert len(idx) == 16 and idx[0] == 0 and idx[-1] == T - 1
    np.testing.assert_array_equal(np.diff(idx) >= 3, True)  # evenly spread over 50 frames
    for k, t in enumerate(idx):
        r, c = divmod(k, 8)
        cell = sheet[r * H : (r + 1) * H, c * W : (c + 1) * W]
        assert cell[-1, -1].tolist() == [5 * t] * 3  # the right frame, away from the label
        assert (cell[: H // 2, : W // 2] != 5 * t).any()  # the index label was drawn
    # Fewer frames than cells: one row, only as wide as needed.
    small = contact_sheet(frames[:5], tmp_path / "small.png", cols=8, n=16, min_cell=0)
    assert cv2.imread(str(small)).shape == (H, 5 * W, 3)
    assert contact_sheet(frames[:1], tmp_path / "one.png").exists()


@pytest.mark.parametrize(
    "frames, match",
    [
        (np.zeros((0, 8, 8, 3), np.uint8), r"no frames \(T = 0\)"),
        (np.zeros((3, 8, 8, 3), np.float32), "must be uint8, got dtype float32"),
        (np.zeros((3, 8, 8), np.uint8), r"must have shape \(T, H, W, 3\), got \(3, 8, 8\)"),
        (np.zeros((3, 8, 8, 4), np.uint8), r"got \(3, 8, 8, 4\)"),
        (None, "frames is None"),
    ],
)
def test_bad_frames_raise(tmp_path, frames, match):
    with pytest.raises(ValueError, match=match):
        write_mp4(frames, tmp_path / "x.mp4")
    with pytest.raises(ValueError, match=match):
        contact_sheet(frames, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_bad_arguments(tmp_path):
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="fps must be > 0"):
        write_mp4(frames, tmp_path / "x.mp4", fps=0)
    with pytest.raises(ValueError, match="must end in .mp4"):
        write_mp4(frames, tmp_path / "x.avi")
    with pytest.raises(ValueError, match="cols must be an int >= 1"):
        contact_sheet(frames, tmp_path / "x.png", cols=0)
    with pytest.raises(ValueError, match="must end in .png"):
        contact_sheet(frames, tmp_path / "x.jpg")
