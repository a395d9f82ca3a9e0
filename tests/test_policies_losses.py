"""Diffusion / consistency math against hand-computed values, and our use of the diffusers schedulers."""
import math

import pytest
import torch

from robolearn.policies import losses
from robolearn.policies.diffusion.configuration import DiffusionConfig
from robolearn.policies.diffusion.modeling import make_scheduler
from robolearn.policies.ema import ema_decay
from robolearn.train.bc import lr_factor

torch.set_num_threads(1)


def test_epsilon_mse_hand_value():
    pred = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    noise = torch.tensor([[[0.0, 0.0]], [[1.0, 1.0]]])
    assert losses.epsilon_mse(pred, noise).item() == pytest.approx((1 + 4 + 1 + 1) / 4)
    with pytest.raises(ValueError, match="shapes differ"):
        losses.epsilon_mse(pred, noise[:1])


def test_karras_sigmas_endpoints_and_middle():
    s = losses.karras_sigmas(3, 0.002, 80.0, 7.0)
    # middle = ((80^(1/7) + 0.002^(1/7)) / 2)^7 = ((1.870326 + 0.411549) / 2)^7 = 1.1409375^7 = 2.5152
    assert s.tolist() == pytest.approx([80.0, 2.5152, 0.002], rel=1e-4)
    assert torch.all(s[:-1] > s[1:])
    assert len(losses.karras_sigmas(40, 0.002, 80.0)) == 40
    with pytest.raises(ValueError):
        losses.karras_sigmas(1, 0.002, 80.0)


def test_edm_scalings_hand_values_and_boundary():
    c_skip, c_out, c_in = losses.edm_scalings(torch.tensor([0.5]), sigma_data=0.5, sigma_min=0.0)
    assert c_skip.item() == pytest.approx(0.25 / 0.5)
    assert c_out.item() == pytest.approx(0.25 / math.sqrt(0.5))
    assert c_in.item() == pytest.approx(1 / math.sqrt(0.5))
    # boundary condition f(x, sigma_min) = x whatever the network says
    x = torch.randn(3, 4, 2)
    raw = torch.randn(3, 4, 2) * 100
    out = losses.consistency_output(x, torch.full((3,), 0.002), raw, 0.5, 0.002)
    assert torch.equal(out, x)
    # at large sigma the output is mostly the network's: c_skip -> 0
    c_skip_big, _, _ = losses.edm_scalings(torch.tensor([80.0]), 0.5, 0.002)
    assert c_skip_big.item() < 1e-4


def test_denoise_to_clean_loss_weights():
    x0 = torch.zeros(2, 1, 1)
    pred = torch.tensor([0.1, 0.2]).view(2, 1, 1)
    sigma = torch.tensor([1.0, 0.5])
    # weights sigma^-2 + sigma_data^-2 = [1 + 4, 4 + 4]; per-sample mse [0.01, 0.04]; mean(0.05, 0.32)
    assert losses.denoise_to_clean_loss(pred, x0, sigma, 0.5).item() == pytest.approx(0.185)
    assert losses.denoise_weight(torch.tensor([2.0]), 1.0).item() == pytest.approx(1.25)


def test_pseudo_huber_and_distill_loss():
    a = torch.tensor([[3.0, 4.0]])
    b = torch.zeros(1, 2)
    assert losses.pseudo_huber(a, b, 0.0).item() == pytest.approx(5.0)
    assert losses.pseudo_huber(a, b, 1.0).item() == pytest.approx(math.sqrt(26) - 1)
    student = a.clone().requires_grad_(True)
    loss = losses.consistency_distill_loss(student, b, x0=torch.ones(1, 2), huber_c=1.0, dsm_weight=0.5)
    # huber sqrt(26) - 1, dsm 0.5 * mean((3-1)^2, (4-1)^2) = 0.5 * 6.5
    assert loss.item() == pytest.approx(math.sqrt(26) - 1 + 3.25)
    with pytest.raises(ValueError, match="detached"):
        losses.consistency_distill_loss(student, student * 2, x0=b, huber_c=1.0)
    assert losses.default_huber_c(16 * 7) == pytest.approx(0.00054 * math.sqrt(112))


def test_vp_sigma_and_ddim_ve_step():
    assert losses.vp_sigmas(torch.tensor([0.2])).item() == pytest.approx(2.0)
    x = torch.full((1, 1, 1), 2.0)
    x0_hat = torch.full((1, 1, 1), 0.5)
    out = losses.ddim_ve_step(x, x0_hat, torch.tensor([2.0]), torch.tensor([1.0]))
    assert out.item() == pytest.approx(1.25)  # 0.5 + (1/2) * (2 - 0.5)
    assert losses.ddim_ve_step(x, x0_hat, torch.tensor([2.0]), torch.tensor([0.0])).item() == pytest.approx(0.5)


def _cos_alpha_bar(t: int, T: int = 100) -> float:
    """squaredcos_cap_v2 by hand: abar_t = prod_{i<=t} (1 - min(1 - f((i+1)/T) / f(i/T), 0.999))."""
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    out = 1.0
    for i in range(t + 1):
        out *= 1 - min(1 - f((i + 1) / T) / f(i / T), 0.999)
    return out


def test_ddpm_add_noise_matches_hand_computed_cosine_schedule():
    sched = make_scheduler("ddpm", DiffusionConfig(state_dim=1, action_dim=1))
    assert _cos_alpha_bar(0) == pytest.approx(0.99936872, rel=1e-6)
    for t in (0, 49, 99):
        assert sched.alphas_cumprod[t].item() == pytest.approx(_cos_alpha_bar(t), rel=1e-4, abs=1e-7)
    x0 = torch.tensor([[[0.5, -1.0]]])
    eps = torch.tensor([[[1.0, 2.0]]])
    ab = _cos_alpha_bar(49)
    noisy = sched.add_noise(x0, eps, torch.tensor([49]))
    expected = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    assert torch.allclose(noisy, expected, atol=1e-5)


@pytest.mark.parametrize("kind,steps", [("ddim", 10), ("ddim", 3), ("ddpm", 100)])
def test_scheduler_with_oracle_noise_recovers_x0(kind, steps):
    """A denoiser that always predicts the true noise must land on x0 (DDPM: up to its tiny last-step noise)."""
    sched = make_scheduler(kind, DiffusionConfig(state_dim=1, action_dim=1))
    sched.set_timesteps(steps)
    ab = sched.alphas_cumprod
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 8, 3, generator=g) * 1.6 - 0.8
    x = torch.randn(2, 8, 3, generator=g)
    for t in sched.timesteps:
        eps = (x - ab[t].sqrt() * x0) / (1 - ab[t]).sqrt()
        x = sched.step(eps, t, x, generator=g).prev_sample
    assert torch.allclose(x, x0, atol=1e-4)


def test_schedules_hand_values():
    assert ema_decay(0) == 0.0
    assert ema_decay(15) == pytest.approx(1 - 16 ** -0.75)  # = 0.875
    assert ema_decay(10**9) == 0.9999
    assert lr_factor(4, warmup=10, total=110) == pytest.approx(0.5)
    assert lr_factor(60, warmup=10, total=110) == pytest.approx(0.5)  # half-way through the cosine
    assert lr_factor(110, warmup=10, total=110) == pytest.approx(0.0, abs=1e-12)


def test_sigma_to_timestep_interpolates_log_sigma():
    table = torch.tensor([0.1, 1.0, 10.0])
    t = losses.sigma_to_timestep(torch.tensor([0.1, 1.0, 10.0, math.sqrt(10.0), 0.01, 100.0]), table)
    assert t.tolist() == pytest.approx([0.0, 1.0, 2.0, 1.5, 0.0, 2.0])


def test_vp_eps_consistency_output_boundary_and_large_sigma():
    x = torch.randn(2, 3, 1)
    eps = torch.randn(2, 3, 1)
    out = losses.vp_eps_consistency_output(x, torch.full((2,), 0.002), eps, 0.5, 0.002)
    assert torch.equal(out, x)  # boundary: f(x, sigma_min) = x
    sigma = torch.full((2,), 2.0)
    c_skip = 0.25 / (1.998**2 + 0.25)
    expected = x - (1 - c_skip) * 2.0 * eps  # = c_skip x + (1 - c_skip)(x - sigma eps)
    assert torch.allclose(losses.vp_eps_consistency_output(x, sigma, eps, 0.5, 0.002), expected)
