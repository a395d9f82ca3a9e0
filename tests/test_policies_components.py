"""Normalization, encoders, U-Net shapes and the per-step policy API (history, queue, bad observations)."""
import numpy as np
import pytest
import torch

from robolearn.config_io import ConfigError, from_dict
from robolearn.policies.consistency.configuration import ConsistencyConfig
from robolearn.policies.diffusion.configuration import DiffusionConfig
from robolearn.policies.encoders import SpatialSoftmax, center_crop, random_crop
from robolearn.policies.normalize import Normalizer, safe_bounds
from robolearn.policies.registry import UnknownPolicyError, policy_class
from robolearn.policies.unet1d import ConditionalUnet1D

torch.set_num_threads(1)
TINY = dict(down_dims=(8, 16), n_groups=4, step_embed_dim=8, state_hidden=(16,), state_feature_dim=8,
            horizon=8, n_action_steps=4, image_channels=(8, 8), image_keypoints=4, image_feature_dim=8)


def test_normalization_round_trip_and_range():
    lo = np.array([-2.0, 0.0, 5.0], dtype=np.float32)
    hi = np.array([2.0, 10.0, 5.0], dtype=np.float32)  # last dim constant
    n = Normalizer(3)
    n.set_stats(lo, hi)
    x = torch.tensor([[-2.0, 0.0, 5.0], [2.0, 10.0, 5.0], [0.0, 2.5, 5.0]])
    y = n.normalize(x)
    assert torch.allclose(y, torch.tensor([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, -0.5, 0.0]]))
    assert torch.allclose(n.unnormalize(y), x, atol=1e-6)
    with pytest.raises(ValueError, match="last dim"):
        n.normalize(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="NaN"):
        safe_bounds(np.array([np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="max < min"):
        safe_bounds(np.array([1.0]), np.array([0.0]))


def test_random_crop_matches_slices_and_center_crop():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    torch.manual_seed(0)
    out = random_crop(x, 4)
    assert out.shape == (2, 3, 4, 4)
    for i in range(2):
        # every crop is a contiguous 4x4 window of its own image
        found = any(torch.equal(out[i], x[i, :, r : r + 4, c : c + 4]) for r in range(3) for c in range(3))
        assert found
    assert torch.equal(center_crop(x, 4), x[:, :, 1:5, 1:5])


def test_spatial_softmax_finds_peak():
    feat = torch.full((1, 2, 5, 5), -1e4)
    feat[0, 0, 0, 4] = 0.0  # top-right: x = +1, y = -1
    feat[0, 1, 2, 2] = 0.0  # centre
    kp = SpatialSoftmax()(feat)
    assert torch.allclose(kp, torch.tensor([[1.0, 0.0, -1.0, 0.0]]), atol=1e-4)  # [x0, x1, y0, y1]


def test_unet_shapes_and_condition_matters():
    torch.manual_seed(0)
    net = ConditionalUnet1D(3, 5, (8, 16, 32), 8, 5, 4)
    x = torch.randn(2, 16, 3)
    c = torch.randn(2, 5)
    y = net(x, torch.tensor([1, 50]), c)
    assert y.shape == (2, 16, 3)
    assert not torch.allclose(y, net(x, torch.tensor([1, 50]), c + 1.0))
    assert not torch.allclose(y, net(x, torch.tensor([2, 60]), c))


def test_config_validation_and_registry():
    with pytest.raises(ValueError, match="divisible"):
        DiffusionConfig(horizon=10, down_dims=(8, 16, 32), n_groups=4)
    with pytest.raises(ValueError, match="n_action_steps"):
        DiffusionConfig(horizon=8, n_action_steps=9, down_dims=(8, 16), n_groups=4)
    with pytest.raises(ConfigError, match="sigma_max"):
        from_dict(DiffusionConfig, {"sigma_max": 80.0})  # a consistency key in a diffusion config
    with pytest.raises(ValueError, match="inference_steps"):
        ConsistencyConfig(inference_steps=0)
    with pytest.raises(UnknownPolicyError, match="did you mean 'diffusion'"):
        policy_class("difusion")
    with pytest.raises(ValueError, match="state_dim and action_dim"):
        policy_class("diffusion")(DiffusionConfig(**TINY))


@pytest.mark.parametrize("kind", ["diffusion", "consistency"])
def test_per_step_api_history_queue_and_bad_obs(kind):
    cfg_cls = DiffusionConfig if kind == "diffusion" else ConsistencyConfig
    cfg = cfg_cls(state_dim=3, action_dim=2, cameras=("front",), image_size=20, crop_size=16, **TINY)
    torch.manual_seed(0)
    policy = policy_class(kind)(cfg).eval()
    rng = np.random.default_rng(0)
    obs = {"state": np.zeros(3, np.float32), "images": {"front": rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)}}
    chunk = policy.act(obs)
    assert chunk.shape == (4, 2) and chunk.dtype == np.float32
    assert np.all(np.abs(chunk) <= 1.0 + 1e-6)  # default stats [-1, 1]
    policy.reset()
    for i in range(4):
        policy.select_action(obs)
        assert len(policy._action_queue) == 3 - i
        assert len(policy._obs_history) == 2  # history stays full once started
    policy.select_action(obs)
    assert len(policy._action_queue) == 3  # a fresh chunk was inferred when the queue ran dry
    with pytest.raises(ValueError, match=r"obs\['state'\] has shape"):
        policy.act({"state": np.zeros(4, np.float32), "images": obs["images"]})
    with pytest.raises(ValueError, match="non-finite"):
        policy.act({"state": np.array([0, np.nan, 0], np.float32), "images": obs["images"]})
    with pytest.raises(KeyError, match="front"):
        policy.act({"state": np.zeros(3, np.float32)})
    # batched API: loss is a finite scalar with gradients everywhere that matters
    batch = {"state": torch.randn(4, 2, 3), "action": torch.rand(4, 8, 2) * 2 - 1,
             "images": {"front": torch.randint(0, 255, (4, 2, 20, 20, 3), dtype=torch.uint8)}}
    policy.train()
    loss = policy.compute_loss(batch)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert policy.obs_encoder.images["front"].keypoints.weight.grad.abs().sum() > 0
