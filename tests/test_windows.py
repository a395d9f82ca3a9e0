"""Action-chunk windows: one definition (data/windows.py) for BC's dataset and the replay buffer."""
import numpy as np
import torch

from robolearn.data.replay import ObsSpec, ReplayBuffer
from robolearn.data.windows import episode_windows


def test_episode_windows_pad_by_repeating_the_edges():
    o, a = episode_windows(4, n_obs_steps=2, horizon=4)
    assert o.tolist() == [[0, 0], [0, 1], [1, 2], [2, 3]]
    assert a.tolist() == [[0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 3], [2, 3, 3, 3]]


def test_replay_chunks_match_bc_windows_and_never_cross_episodes():
    buf = ReplayBuffer(64, ObsSpec(1), 1, seed=0)
    for ep, length in enumerate((4, 3)):
        buf.start_episode({"state": np.array([100.0 * ep], np.float32)})
        for t in range(length):
            buf.add(np.array([10.0 * ep + t], np.float32), 0.0, {"state": np.array([100.0 * ep + t + 1], np.float32)},
                    False, t == length - 1)
    slots = np.flatnonzero(buf.has_next[: buf.size])
    o, a = buf.chunk_windows(slots, 2, 4)
    actions = buf.action[a][..., 0]
    # episode 0 (actions 0..3) then episode 1 (10..12): the same windows as BC's, per episode
    _, a0 = episode_windows(4, 2, 4)
    _, a1 = episode_windows(3, 2, 4)
    expected = np.concatenate([a0, 10 + a1]).astype(np.float32)
    assert np.array_equal(actions, expected)
    batch = buf.sample_chunks(16, 2, 4)
    assert batch["action"].shape == (16, 4, 1) and batch["state"].shape == (16, 2, 1)
    first = batch["action"][:, 0, 0].numpy()  # every window lies in one episode
    assert np.all((batch["action"][..., 0].numpy() >= 10) == (first[:, None] >= 10))


def test_extra_fields_and_monte_carlo_returns():
    buf = ReplayBuffer(16, ObsSpec(1), 1, extra_fields={"base_action": (1,), "mc_return": ()}, mc_discount=0.5)
    buf.start_episode({"state": np.zeros(1, np.float32)})
    for t, r in enumerate((1.0, 0.0, 2.0)):
        buf.add(np.zeros(1, np.float32), r, {"state": np.full(1, t + 1, np.float32)}, t == 2, False,
                {"base_action": np.array([t], np.float32)})
    # G = r_t + 0.5 G_{t+1}: 2, 0 + 1, 1 + 0.5 = 1.5
    assert np.allclose(buf.extras["mc_return"][:3], [1.5, 1.0, 2.0])
    b = buf.gather(np.array([0, 1]), 0.9)
    assert b["base_action"][:, 0].tolist() == [0.0, 1.0] and b["next_base_action"][:, 0].tolist() == [1.0, 2.0]
    import pytest

    with pytest.raises(KeyError, match="not declared"):
        buf.start_episode({"state": np.zeros(1, np.float32)})
        buf.add(np.zeros(1, np.float32), 0.0, {"state": np.zeros(1, np.float32)}, False, False, {"nope": 1.0})


def test_batches_carry_histories_and_chunks_when_an_algorithm_asks():
    buf = ReplayBuffer(64, ObsSpec(1), 1, seed=0)
    buf.start_episode({"state": np.zeros(1, np.float32)})
    for t in range(5):
        buf.add(np.array([t], np.float32), 0.0, {"state": np.array([t + 1], np.float32)}, False, t == 4)
    b = buf.gather(np.array([0, 3]), 0.9, windows=(2, 4))
    # history ends at the sampled obs (first frame repeated at the start); s' history ends at s'
    assert b["obs_history"]["state"][..., 0].tolist() == [[0, 0], [2, 3]]
    assert b["next_obs_history"]["state"][..., 0].tolist() == [[0, 1], [3, 4]]
    assert torch.equal(b["obs_history"]["state"][:, -1], b["obs"]["state"])
    assert torch.equal(b["next_obs_history"]["state"][:, -1], b["next_obs"]["state"])
    assert b["action_chunk"][..., 0].tolist() == [[0, 0, 1, 2], [2, 3, 4, 4]]
