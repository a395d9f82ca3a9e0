"""Replay buffer: wrap-around, episode boundaries, n-step returns, frames stored once, save/load."""
import numpy as np
import pytest
import torch

from robolearn.data.replay import ObsSpec, ReplayBuffer


def _obs(v, img=False):
    o = {"state": np.array([v, -v], np.float32)}
    if img:
        o["images"] = {"cam": np.full((4, 5, 3), int(v) % 256, np.uint8)}
    return o


def _fill(buf, episodes, img=False, terminate_last=True):
    """Episodes of given lengths; state value encodes 100*episode + step, reward = step + 1."""
    for e, length in enumerate(episodes):
        buf.start_episode(_obs(100 * e, img))
        for t in range(length):
            last = t == length - 1
            buf.add(np.array([t], np.float32), float(t + 1), _obs(100 * e + t + 1, img),
                    terminated=last and terminate_last, truncated=last and not terminate_last)


def test_transitions_never_cross_episode_boundaries():
    buf = ReplayBuffer(64, ObsSpec(2), 1, seed=0)
    _fill(buf, [3, 4, 2])
    assert len(buf) == 9
    b = buf.sample(500, discount=0.9)
    s, ns = b["obs"]["state"][:, 0], b["next_obs"]["state"][:, 0]
    assert torch.all(ns == s + 1)  # next obs is the same episode's next step, never a reset obs
    # rewards follow the step index, terminal transitions have discount 0
    step = (s % 100)
    assert torch.all(b["reward"] == step + 1)
    last_steps = {0: 2, 1: 3, 2: 1}
    ep = (s // 100).long()
    is_last = torch.tensor([int(st) == last_steps[int(e)] for st, e in zip(step, ep)])
    assert torch.all(b["discount"][is_last] == 0) and torch.allclose(b["discount"][~is_last], torch.tensor(0.9))


def test_wrap_around_overwrites_oldest_and_stays_consistent():
    buf = ReplayBuffer(12, ObsSpec(2), 1, seed=1)
    # 3 episodes x 5 obs slots = 15 slots into 12: episode 2 wraps (slots 10, 11, 0, 1, 2) and
    # overwrites episode 0's obs 0..2; episode 0's transition 3 -> 4 (slots 3, 4) survives.
    _fill(buf, [4, 4, 4])
    assert buf.size == 12 and buf.ptr == 3
    b = buf.sample(2000, discount=0.5)
    s, ns = b["obs"]["state"][:, 0], b["next_obs"]["state"][:, 0]
    assert torch.all(ns == s + 1)  # incl. the 201 -> 202 -> 203 chain across the array end
    assert set(s.long().tolist()) == {3, 100, 101, 102, 103, 200, 201, 202, 203}
    assert len(buf) == 9
    # an n-step chain from the surviving tail of episode 0 must not run into episode 2's slots
    b = buf.gather(np.array([3]), discount=0.5, n_step=3)
    assert b["reward"].item() == 4.0 and b["discount"].item() == 0.0  # terminal after step 3


def test_n_step_returns_hand_computed():
    buf = ReplayBuffer(32, ObsSpec(2), 1, seed=2)
    _fill(buf, [5], terminate_last=True)  # rewards 1..5, terminal after the 5th
    idx = np.array([0, 2, 3, 4])
    b = buf.gather(idx, discount=0.5, n_step=3)
    # from step 0: 1 + .5*2 + .25*3 = 2.75, bootstrap obs 3, discount .125
    # from step 2: 3 + .5*4 + .25*5 = 6.25, terminal inside -> discount 0
    # from step 3: 4 + .5*5 = 6.5, terminal -> 0 ; from step 4: 5, terminal -> 0
    assert torch.allclose(b["reward"], torch.tensor([2.75, 6.25, 6.5, 5.0]))
    assert torch.allclose(b["discount"], torch.tensor([0.125, 0.0, 0.0, 0.0]))
    assert b["next_obs"]["state"][0, 0] == 3


def test_n_step_stops_at_truncation_and_bootstraps():
    buf = ReplayBuffer(32, ObsSpec(2), 1, seed=3)
    _fill(buf, [2, 3], terminate_last=False)  # truncated episodes: bootstrap from the last obs
    b = buf.gather(np.array([0, 1]), discount=0.5, n_step=3)
    # from step 0 of ep 0: 1 + .5*2 = 2, bootstrap obs 2 with discount .25; step 1: 2, obs 2, .5
    assert torch.allclose(b["reward"], torch.tensor([2.0, 2.0]))
    assert torch.allclose(b["discount"], torch.tensor([0.25, 0.5]))
    assert torch.all(b["next_obs"]["state"][:, 0] == 2)


def test_images_stored_once_and_next_frames_match():
    spec = ObsSpec(2, {"cam": (4, 5, 3)})
    buf = ReplayBuffer(50, spec, 1, seed=4)
    _fill(buf, [6, 6], img=True)
    # one frame per observation slot: no separate next-obs image array
    frame_arrays = [v for v in vars(buf).values() if isinstance(v, np.ndarray) and v.dtype == np.uint8]
    assert frame_arrays == [] and list(buf.images) == ["cam"]
    assert buf.images["cam"].nbytes == 50 * 4 * 5 * 3
    b = buf.sample(200, discount=0.9)
    s, ns = b["obs"]["state"][:, 0].long(), b["next_obs"]["state"][:, 0].long()
    assert b["obs"]["images"]["cam"].dtype == torch.uint8
    assert torch.all(b["obs"]["images"]["cam"][:, 0, 0, 0].long() == s % 256)
    assert torch.all(b["next_obs"]["images"]["cam"][:, 0, 0, 0].long() == ns % 256)


def test_bad_input_raises_clear_errors():
    buf = ReplayBuffer(8, ObsSpec(2), 1)
    with pytest.raises(RuntimeError, match="start_episode"):
        buf.add(np.zeros(1), 0.0, _obs(1), False, False)
    with pytest.raises(ValueError, match="state"):
        buf.start_episode({"state": np.zeros(3, np.float32)})
    buf.start_episode(_obs(0))
    with pytest.raises(ValueError, match="action has shape"):
        buf.add(np.zeros(2), 0.0, _obs(1), False, False)
    with pytest.raises(ValueError, match="non-finite"):
        buf.add(np.array([np.nan]), 0.0, _obs(1), False, False)
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(8, ObsSpec(2), 1).sample(4, 0.9)
    with pytest.raises(ValueError, match="missing camera"):
        ReplayBuffer(8, ObsSpec(2, {"cam": (4, 5, 3)}), 1).start_episode(_obs(0))


def test_save_load_restores_contents_and_next_sample(tmp_path):
    spec = ObsSpec(2, {"cam": (4, 5, 3)})
    a = ReplayBuffer(20, spec, 1, seed=5)
    _fill(a, [7, 9], img=True)
    a.sample(16, 0.9)
    a.save(tmp_path / "buf.npz")
    b = ReplayBuffer(20, spec, 1, seed=123)
    b.load(tmp_path / "buf.npz")
    x, y = a.sample(32, 0.9, n_step=2), b.sample(32, 0.9, n_step=2)
    for k in ("action", "reward", "discount"):
        assert torch.equal(x[k], y[k])
    assert torch.equal(x["next_obs"]["images"]["cam"], y["next_obs"]["images"]["cam"])
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="corrupt"):
        b.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        b.load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(19, spec, 1).load(tmp_path / "buf.npz")  # smaller than the stored data


def test_unwrapped_buffer_loads_into_a_larger_one(tmp_path):
    a = ReplayBuffer(40, ObsSpec(2), 1, seed=6)
    _fill(a, [5, 6])
    a.save(tmp_path / "a.npz")
    big = ReplayBuffer(100, ObsSpec(2), 1)
    big.load(tmp_path / "a.npz")
    assert len(big) == 11 and big.ptr == a.ptr
    assert torch.equal(a.sample(20, 0.9)["reward"], big.sample(20, 0.9)["reward"])
    full = ReplayBuffer(10, ObsSpec(2), 1)
    _fill(full, [5, 6])  # wrapped: order is no longer slot order, so it must not be re-laid out
    full.save(tmp_path / "w.npz")
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(100, ObsSpec(2), 1).load(tmp_path / "w.npz")
