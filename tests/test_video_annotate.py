"""Rollout videos a person can read: step counter and success mark on the frames, cameras side by side,
256 px video while the policy keeps its own image size, contact sheets large enough to see a 4 cm cube."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.data import video as V

torch.set_num_threads(1)


def _frame(H=96, W=96, value=128):
    return np.full((H, W, 3), value, np.uint8)


def _is(color, pixel, tol=0):
    return np.all(np.abs(np.asarray(pixel, int) - np.asarray(color, int)) <= tol)


# ----------------------------------------------------------------------------------------- pure functions
def test_annotate_marks_step_and_outcome_without_touching_the_input():
    f = _frame()
    running = V.annotate(f, 3, None)
    assert running.shape == f.shape and running.dtype == np.uint8
    assert np.array_equal(f, _frame())  # the input is not drawn on
    assert (running[:20, :48] != 128).any()  # the step counter, top left
    assert np.array_equal(running[20:, :], f[20:, :])  # nothing else while the episode runs
    assert not np.array_equal(V.annotate(f, 3, None)[:20], V.annotate(f, 48, None)[:20])  # the number is drawn

    done = V.annotate(f, 40, True)
    for pixel in (done[0, 0], done[-1, -1], done[48, 0], done[-1, 48]):
        assert _is(V.GREEN, pixel)
    failed = V.annotate(f, 40, False)
    for pixel in (failed[0, 0], failed[-1, -1], failed[48, -1]):
        assert _is(V.RED, pixel)
    # the outcome word sits top right, inside the border
    assert (done[3:20, 60:-3] != 128).any() and (failed[3:20, 60:-3] != 128).any()


def test_annotate_episode_turns_green_from_the_first_success_and_red_at_a_failed_end():
    frames = np.stack([_frame(64, 64)] * 5)
    won = V.annotate_episode(frames, [False, False, True, False, False])  # success stays reached
    assert [_is(V.GREEN, f[-1, -1]) for f in won] == [False, False, True, True, True]
    lost = V.annotate_episode(frames, [False] * 5)
    assert [_is(V.RED, f[-1, -1]) for f in lost] == [False, False, False, False, True]
    assert not any(_is(V.GREEN, f[-1, -1]) for f in lost)
    with pytest.raises(ValueError, match="4 success flags for 5 frames"):
        V.annotate_episode(frames, [False] * 4)


def test_side_by_side_orders_cameras_and_matches_heights():
    left, right = _frame(32, 32, 10), _frame(32, 40, 200)
    both = V.side_by_side({"front": left, "wrist": right}, gap=4)
    assert both.shape == (32, 32 + 4 + 40, 3)
    assert np.all(both[:, 32:36] == 0)  # the black gap
    assert np.array_equal(both[:8, :32], left[:8])  # away from the name at the bottom
    assert np.array_equal(both[:8, 36:], right[:8])
    assert (both[-10:, :20] != 10).any()  # camera name drawn bottom left
    small = V.side_by_side([left, _frame(16, 16, 50)], gap=0)
    assert small.shape == (32, 64, 3)  # the shorter view scaled to the taller one
    one = V.side_by_side({"front": left})
    assert np.array_equal(one, left)  # one camera: the frame as it is, unlabelled
    with pytest.raises(ValueError, match="no frames"):
        V.side_by_side({})
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
        V.side_by_side([np.zeros((8, 8), np.uint8)])


@pytest.mark.parametrize("bad, match", [
    (dict(frame=np.zeros((8, 8, 3), np.float32), step=0, success=None), r"\(H, W, 3\) uint8"),
    (dict(frame=np.zeros((8, 8, 3), np.uint8), step=-1, success=None), "step must be an int >= 0"),
    (dict(frame=np.zeros((8, 8, 3), np.uint8), step=0, success="yes"), "success must be True, False or None"),
])
def test_annotate_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        V.annotate(**bad)


def test_contact_sheet_cells_are_large_enough_by_default(tmp_path):
    import cv2

    frames = np.stack([_frame(84, 84, 5 * t) for t in range(40)])
    sheet = cv2.imread(str(V.contact_sheet(frames, tmp_path / "s.png", cols=8, n=16)))
    assert sheet.shape == (2 * 256, 8 * 256, 3)  # 84 px frames drawn in 256 px cells
    big = np.stack([_frame(300, 300)] * 3)
    assert cv2.imread(str(V.contact_sheet(big, tmp_path / "b.png"))).shape == (300, 900, 3)  # never shrunk
    with pytest.raises(ValueError, match="min_cell must be an int >= 0"):
        V.contact_sheet(frames, tmp_path / "x.png", min_cell=-1)


# ----------------------------------------------------------------------------------------- evaluation videos
def _image_policy(tmp_path, cameras=("front", "wrist"), image_size=20):
    from robolearn.policies.diffusion.configuration import DiffusionConfig
    from robolearn.policies.registry import policy_class
    from robolearn.train import checkpoint as ckpt

    torch.manual_seed(0)
    cfg = DiffusionConfig(state_dim=15, action_dim=7, cameras=cameras, image_size=image_size, crop_size=16,
                          down_dims=(8, 16), n_groups=4, step_embed_dim=8, state_hidden=(16,), state_feature_dim=8,
                          horizon=8, n_action_steps=4, num_inference_steps=2, image_channels=(8, 8),
                          image_keypoints=4, image_feature_dim=8)
    p = policy_class("diffusion")(cfg)
    p.set_normalization(-np.ones(15), np.ones(15), -0.2 * np.ones(7), 0.2 * np.ones(7))
    ckpt.save_policy(p, tmp_path / "run" / "checkpoint")
    return ckpt.load_policy(tmp_path / "run")


def _read(path):
    import imageio.v2 as imageio

    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return np.stack(list(reader.iter_data()))
    finally:
        reader.close()


def test_eval_video_is_256px_both_cameras_and_marked(tmp_path):
    """A 20 px two-camera policy: the env still feeds it 20 px images (it acts without a shape error),
    while the video shows both cameras at 256 px with the step counter and, at the failed end, red."""
    from robolearn.train.evaluate import evaluate

    policy = _image_policy(tmp_path)
    result = evaluate(policy, "sim/pick_cube", episodes=1, max_steps=4, video_episodes=1,
                      video_dir=tmp_path / "videos", progress=False)
    assert result["successes"] == 0 and result["per_episode"][0]["length"] == 4
    frames = _read(result["videos"][0])
    assert frames.shape == (5, 256, 2 * 256 + 4, 3)  # reset + 4 steps, front | wrist
    last, first = frames[-1].astype(int), frames[0].astype(int)
    red = np.array(V.RED)
    assert np.abs(last[1:4, 50:450] - red).mean() < 40  # red border at the failed end (lossy codec)
    assert np.abs(first[1:4, 50:450] - red).mean() > 80  # not before it
    assert np.abs(frames[1, :24, :90].astype(int) - frames[2, :24, :90].astype(int)).max() > 60  # counter moves


def test_eval_video_size_and_cameras_are_options(tmp_path):
    from robolearn.train.evaluate import evaluate

    policy = _image_policy(tmp_path, cameras=("front",))
    result = evaluate(policy, "sim/pick_cube", episodes=1, max_steps=2, video_episodes=1, video_size=128,
                      video_cameras=("wrist",), video_dir=tmp_path / "v", progress=False, annotate_video=False)
    assert _read(result["videos"][0]).shape == (3, 128, 128, 3)
    with pytest.raises(ValueError, match="video_size must be an int >= 16"):
        evaluate(policy, "sim/pick_cube", episodes=1, video_episodes=1, video_size=8, progress=False)
    with pytest.raises(ValueError, match="offscreen buffer"):
        evaluate(policy, "sim/pick_cube", episodes=1, video_episodes=1, video_size=2000, progress=False)
