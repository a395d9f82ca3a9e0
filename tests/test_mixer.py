"""Mixer fractions and the demo buffer loaded from a real episode store."""
import numpy as np
import pytest
import torch

from robolearn.data.demo_buffer import DemoBuffer
from robolearn.data.mixer import Mixer, split_counts
from robolearn.data.replay import ObsSpec, ReplayBuffer


def _buffer(sign, n_eps=3, length=5, seed=0):
    buf = ReplayBuffer(64, ObsSpec(2), 1, seed=seed)
    for e in range(n_eps):
        buf.start_episode({"state": np.array([sign, e], np.float32)})
        for t in range(length):
            buf.add(np.array([sign], np.float32), 0.0, {"state": np.array([sign, e], np.float32)},
                    terminated=False, truncated=t == length - 1)
    return buf


@pytest.mark.parametrize("fraction,expected", [(0.5, 128), (0.25, 64), (0.0, 0), (1.0, 256), (0.3, 77)])
def test_mixer_draws_fixed_fraction_from_demos(fraction, expected):
    mixer = Mixer(_buffer(-1.0, seed=1), _buffer(+1.0, seed=2), demo_fraction=fraction)
    for _ in range(3):
        b = mixer.sample(256, discount=0.9)
        from_demo = int((b["obs"]["state"][:, 0] > 0).sum())
        assert from_demo == expected  # exactly, every batch
        assert b["action"].shape == (256, 1) and b["reward"].shape == (256,)
        assert torch.equal(b["action"][:, 0], b["obs"]["state"][:, 0])  # rows stay aligned across keys
        assert torch.equal(b["is_demo"], b["obs"]["state"][:, 0] > 0)  # the demo mask marks demo rows


def test_mixer_without_demos_and_bad_fraction():
    online = _buffer(-1.0)
    b = Mixer(online, None, demo_fraction=0.5).sample(32, 0.9)
    assert torch.all(b["obs"]["state"][:, 0] < 0)
    with pytest.raises(ValueError, match="demo_fraction"):
        Mixer(online, online, demo_fraction=1.5)
    assert split_counts(10, 0.5) == (5, 5)


def _write_store(root, n_eps=3, length=4, state_dim=3, images=False):
    from robolearn.data.episode_store import EpisodeStore

    store = EpisodeStore(root)
    rng = np.random.default_rng(0)
    for e in range(n_eps):
        w = store.writer(meta={"env": "test", "source": "test"})
        def obs(t):
            o = {"state": np.full(state_dim, 10 * e + t, np.float32)}
            if images:
                o["images"] = {"front": rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)}
            return o
        w.reset(obs(0))
        for t in range(length):
            last = t == length - 1
            info = {"success": last}
            if t == 1:
                info["intervene_action"] = np.array([0.5, 0.5], np.float32)
            w.step(np.array([-0.1, 0.1], np.float32), obs(t + 1), float(last), last, False, info)
        w.close()
    return store


def test_demo_buffer_loads_store_and_accepts_interventions(tmp_path):
    _write_store(tmp_path / "demos", n_eps=3, length=4)
    buf = DemoBuffer.from_store(tmp_path / "demos", ObsSpec(3), 2, extra_capacity=10)
    assert len(buf) == 12 and buf.num_demo_episodes == 3
    b = buf.sample(200, discount=0.9)
    s, ns = b["obs"]["state"][:, 0], b["next_obs"]["state"][:, 0]
    assert torch.all(ns == s + 1)
    # the executed (intervention) action is what was stored at step 1
    at1 = (s % 10) == 1
    assert torch.all(b["action"][at1] == 0.5) and torch.all(b["action"][~at1] == torch.tensor([-0.1, 0.1]))
    terminal = (s % 10) == 3
    assert torch.all(b["discount"][terminal] == 0) and torch.all(b["reward"][terminal] == 1)
    # interventions arrive online into the spare capacity
    buf.start_episode({"state": np.full(3, 99, np.float32)})
    buf.add(np.array([1.0, 1.0], np.float32), 0.0, {"state": np.full(3, 100, np.float32)}, False, True)
    assert len(buf) == 13


def test_demo_buffer_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="demo directory"):
        DemoBuffer.from_store(tmp_path / "nope")
    _write_store(tmp_path / "d", state_dim=3)
    with pytest.raises(ValueError, match="state dim"):
        DemoBuffer.from_store(tmp_path / "d", ObsSpec(5), 2)
    with pytest.raises(ValueError, match="action dim"):
        DemoBuffer.from_store(tmp_path / "d", ObsSpec(3), 7)
    with pytest.raises(ValueError, match="camera"):
        DemoBuffer.from_store(tmp_path / "d", ObsSpec(3, {"front": (8, 8, 3)}), 2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="is not an episode store .*it is empty"):
        DemoBuffer.from_store(tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []  # reading demos wrote nothing there


def test_demo_buffer_with_images(tmp_path):
    _write_store(tmp_path / "img", n_eps=2, length=3, images=True)
    buf = DemoBuffer.from_store(tmp_path / "img", ObsSpec(3, {"front": (8, 8, 3)}), 2)
    b = buf.sample(16, 0.9)
    assert b["obs"]["images"]["front"].shape == (16, 8, 8, 3)
    assert b["next_obs"]["images"]["front"].dtype == torch.uint8
