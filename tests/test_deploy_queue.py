"""Chunk aggregation (LeRobot-style blending, RTC-style freezing) against hand-computed values."""
import numpy as np
import pytest

from robolearn.deploy.chunk_queue import ActionQueue, merge_chunk


def _chunk(*vals):
    return np.array(vals, dtype=np.float64)[:, None]


def test_merge_into_empty_drops_past_steps():
    out = merge_chunk({}, next_step=2, chunk=_chunk(0, 1, 2, 3), start_step=0)
    assert sorted(out) == [2, 3]
    assert out[2][0] == 2 and out[3][0] == 3


def test_merge_blends_overlap_with_weight():
    queued = {5: np.array([1.0]), 6: np.array([1.0]), 7: np.array([1.0])}
    out = merge_chunk(queued, next_step=5, chunk=_chunk(3, 3, 3, 3), start_step=5, new_weight=0.25)
    # overlap steps 5, 6, 7: 0.75 * 1 + 0.25 * 3 = 1.5 ; step 8 new only
    assert [out[s][0] for s in (5, 6, 7, 8)] == [1.5, 1.5, 1.5, 3.0]


def test_merge_freeze_keeps_the_actions_that_will_surely_run():
    queued = {5: np.array([1.0]), 6: np.array([1.0]), 7: np.array([1.0])}
    out = merge_chunk(queued, next_step=5, chunk=_chunk(3, 3, 3, 3), start_step=5, new_weight=1.0, freeze=2)
    assert [out[s][0] for s in (5, 6, 7, 8)] == [1.0, 1.0, 3.0, 3.0]


def test_merge_rejects_bad_weight():
    with pytest.raises(ValueError, match="new_weight"):
        merge_chunk({}, 0, _chunk(1), 0, new_weight=1.5)


def test_queue_pop_depth_and_shape_check():
    q = ActionQueue(action_dim=2)
    assert q.pop() is None and q.next_step == 1  # dry pops still advance time
    late = q.merge(np.ones((4, 2)), start_step=0)
    assert late == 1 and q.depth() == 3
    np.testing.assert_array_equal(q.pop(), [1.0, 1.0])
    assert q.depth() == 2
    with pytest.raises(ValueError, match=r"expected shape \(H, 2\), got \(3, 3\)"):
        q.merge(np.ones((3, 3)), 0)
    q.clear()
    assert q.depth() == 0
