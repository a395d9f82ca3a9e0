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


@pytest.mark.parametrize("kind,sample_kw", [("diffusion", {"sampler": "ddim", "steps": 3}),
                                            ("diffusion", {"sampler": "ddpm", "steps": 4}),
                                            ("consistency", {"steps": 2})])
def test_policy_trains_and_samples_on_the_device(kind, sample_kw, device):
    """Normalizers, image encoder (random crop), noise and sampler all on ``device``; a CPU generator gives
    the same noise as it does on CPU (evaluators seed one per episode)."""
    from robolearn.device import make_generator

    cfg_cls = DiffusionConfig if kind == "diffusion" else ConsistencyConfig
    cfg = cfg_cls(state_dim=3, action_dim=2, cameras=("front",), image_size=20, crop_size=16, **TINY)
    torch.manual_seed(0)
    cpu_policy = policy_class(kind)(cfg)
    policy = policy_class(kind)(cfg).to(device)
    policy.load_state_dict(cpu_policy.state_dict())
    policy.set_normalization(-2 * np.ones(3), 2 * np.ones(3), np.array([-0.5, 0.0]), np.array([0.5, 1.0]))
    cpu_policy.set_normalization(-2 * np.ones(3), 2 * np.ones(3), np.array([-0.5, 0.0]), np.array([0.5, 1.0]))
    assert policy.device.type == device.type and policy.state_norm.max.device.type == device.type
    g = torch.Generator().manual_seed(0)
    batch = {"state": torch.randn(4, 2, 3, generator=g), "action": torch.rand(4, 8, 2, generator=g) - 0.5,
             "images": {"front": torch.randint(0, 255, (4, 2, 20, 20, 3), dtype=torch.uint8, generator=g)}}
    on_dev = {"state": batch["state"].to(device), "action": batch["action"].to(device),
              "images": {"front": batch["images"]["front"].to(device)}}
    policy.train()
    loss = policy.compute_loss(on_dev)
    loss.backward()
    assert loss.device.type == device.type and torch.isfinite(loss)
    assert policy.obs_encoder.images["front"].keypoints.weight.grad.abs().sum() > 0
    policy.eval()
    obs = {"state": on_dev["state"], "images": on_dev["images"]}
    a = policy.sample_actions(obs, generator=make_generator(device, 1), **sample_kw)
    b = policy.sample_actions(obs, generator=make_generator(device, 1), **sample_kw)
    assert a.device.type == device.type and a.shape == (4, 8, 2) and torch.equal(a, b)
    assert torch.all(a[..., 0].abs() <= 0.5 + 1e-6) and torch.all((a[..., 1] >= -1e-6) & (a[..., 1] <= 1 + 1e-6))
    from_cpu_gen = policy.sample_actions(obs, generator=torch.Generator().manual_seed(1), **sample_kw)
    reference = cpu_policy.eval().sample_actions(
        {"state": batch["state"], "images": batch["images"]}, generator=torch.Generator().manual_seed(1), **sample_kw)
    # other noise would differ by O(1); a GPU's TF32 convolutions differ from the CPU's by far less
    torch.testing.assert_close(from_cpu_gen.cpu(), reference, rtol=0, atol=2e-2)
    # the per-step API: numpy in, numpy out, whatever the device
    chunk = policy.act({"state": np.zeros(3, np.float32), "images": {"front": np.zeros((20, 20, 3), np.uint8)}},
                       generator=make_generator(device, 2), **sample_kw)
    assert isinstance(chunk, np.ndarray) and chunk.shape == (4, 2) and np.all(np.isfinite(chunk))


def test_random_crop_on_the_device(device):
    from robolearn.device import make_generator

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32, device=device).view(2, 3, 6, 6)
    a = random_crop(x, 4, generator=make_generator(device, 0))
    assert a.device.type == device.type
    assert torch.equal(a, random_crop(x, 4, generator=make_generator(device, 0)))


def test_constant_action_dimensions_sample_as_that_constant():
    """A gripper always closed in the demos must not be sampled anywhere in [v - 1, v + 1]."""
    cfg = DiffusionConfig(state_dim=2, action_dim=3, **TINY)
    torch.manual_seed(0)
    policy = policy_class("diffusion")(cfg).eval()
    policy.set_normalization(np.zeros(2), np.ones(2), np.array([-1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0]))
    assert policy.action_norm.min[0].item() == -1.0 and policy.action_norm.max[0].item() == 1.0  # untouched
    assert torch.allclose(policy.action_norm.normalize(torch.tensor([0.3, 0.0, 1.0])),
                          torch.tensor([0.3, 0.0, 0.0]), atol=1e-3)  # training targets as before
    chunk = policy.sample_actions({"state": torch.randn(5, 2, 2)}, generator=torch.Generator().manual_seed(0))
    assert chunk[..., 0].abs().max() > 0.1  # the varying dimension varies
    torch.testing.assert_close(chunk[..., 1], torch.zeros(5, 8), atol=2e-4, rtol=0)
    torch.testing.assert_close(chunk[..., 2], torch.ones(5, 8), atol=2e-4, rtol=0)
    with pytest.raises(ValueError, match="shape"):
        policy.set_normalization(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2))


def test_gaussian_policy_acts_on_the_device(device):
    """The RL policy export acts on any device, deterministically and from a generator (on the device or CPU)."""
    from robolearn.device import make_generator
    from robolearn.policies.gaussian.configuration import GaussianConfig
    from robolearn.policies.gaussian.modeling import GaussianPolicy

    cfg = GaussianConfig(state_dim=3, action_dim=2, cameras=("front",), image_size=16, hidden=(8,),
                         encoder={"channels": 4, "conv_layers": 1, "feature_dim": 4, "shift_pad": 2})
    torch.manual_seed(0)
    cpu_policy = GaussianPolicy(cfg).eval()
    policy = GaussianPolicy(cfg).eval().to(device)
    policy.load_state_dict(cpu_policy.state_dict())
    obs = {"state": np.array([0.1, -0.2, 0.3], np.float32), "images": {"front": np.zeros((16, 16, 3), np.uint8)}}
    mean_action = policy.act(obs)
    assert mean_action.shape == (1, 2) and np.all(np.abs(mean_action) < 1)
    a = policy.act(obs, generator=make_generator(device, 4), deterministic=False)
    assert np.array_equal(a, policy.act(obs, generator=make_generator(device, 4), deterministic=False))
    assert not np.allclose(a, mean_action)
    from_cpu_gen = policy.act(obs, generator=torch.Generator().manual_seed(4), deterministic=False)
    reference = cpu_policy.act(obs, generator=torch.Generator().manual_seed(4), deterministic=False)
    np.testing.assert_allclose(from_cpu_gen, reference, rtol=0, atol=1e-2)
