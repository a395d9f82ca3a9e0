"""The math of diffusion and consistency policies as pure functions on tensors (unit-tested by hand).

Conventions: ``x0`` is a clean normalized action chunk (B, H, A); ``sigma`` is a (B,) tensor of
noise levels in the variance-exploding (EDM) convention x = x0 + sigma * z.
"""
from __future__ import annotations

import math

import torch


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) so it broadcasts against ``like``."""
    return v.reshape(v.shape[0], *([1] * (like.dim() - 1)))


# ---------------------------------------------------------------- diffusion (DDPM, epsilon prediction)
def epsilon_mse(pred_noise: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Diffusion Policy's loss: mean squared error between predicted and true noise."""
    if pred_noise.shape != noise.shape:
        raise ValueError(f"epsilon_mse: shapes differ {tuple(pred_noise.shape)} vs {tuple(noise.shape)}")
    return torch.mean((pred_noise - noise) ** 2)


def vp_sigmas(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """VE noise level of each DDPM step: x_t / sqrt(abar_t) = x0 + sigma_t * eps, sigma_t = sqrt((1-abar)/abar)."""
    return torch.sqrt((1.0 - alphas_cumprod) / alphas_cumprod)


def ddim_ve_step(x: torch.Tensor, x0_hat: torch.Tensor, sigma_from: torch.Tensor, sigma_to: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM (= Euler on the probability-flow ODE in VE coordinates) from sigma_from to sigma_to.

    With eps_hat = (x - x0_hat) / sigma_from the new point is x0_hat + sigma_to * eps_hat.
    """
    ratio = _bcast(sigma_to / sigma_from, x)
    return x0_hat + ratio * (x - x0_hat)


# ---------------------------------------------------------------- consistency (EDM / Karras parameterization)
def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """N Karras levels from sigma_max down to sigma_min: (max^(1/rho) + i/(N-1) (min^(1/rho) - max^(1/rho)))^rho."""
    if n < 2:
        raise ValueError(f"need at least 2 noise levels, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    return ((hi + ramp * (lo - hi)) ** rho).float()


def edm_scalings(sigma: torch.Tensor, sigma_data: float, sigma_min: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in) of a consistency model; shifted by sigma_min so f(x, sigma_min) = x exactly."""
    s = sigma - sigma_min
    c_skip = sigma_data**2 / (s**2 + sigma_data**2)
    c_out = s * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)
    c_in = 1.0 / torch.sqrt(sigma**2 + sigma_data**2)
    return c_skip, c_out, c_in


def c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """Network time input: EDM's ln(sigma)/4, times 100 so the sinusoidal step embedding (made for 0..100) resolves it."""
    return 25.0 * torch.log(sigma)


def consistency_output(x: torch.Tensor, sigma: torch.Tensor, raw: torch.Tensor, sigma_data: float, sigma_min: float) -> torch.Tensor:
    """f(x, sigma) = c_skip x + c_out F, with F = ``raw`` the network output for input c_in x."""
    c_skip, c_out, _ = edm_scalings(sigma, sigma_data, sigma_min)
    return _bcast(c_skip, x) * x + _bcast(c_out, x) * raw


def denoise_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """ConRFT / EDM loss weight sigma^-2 + sigma_data^-2."""
    return sigma ** (-2) + sigma_data ** (-2)


def denoise_to_clean_loss(pred_x0: torch.Tensor, x0: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """ConRFT's BC term: mean over the batch of w(sigma) * mean squared error of f(x0 + sigma z, sigma) vs x0.

    Kept separate from the network so an RL learner can add its Q term: L = beta * this + eta * L_Q.
    """
    if pred_x0.shape != x0.shape:
        raise ValueError(f"denoise_to_clean_loss: shapes differ {tuple(pred_x0.shape)} vs {tuple(x0.shape)}")
    per_sample = ((pred_x0 - x0) ** 2).flatten(1).mean(dim=1)
    return torch.mean(denoise_weight(sigma, sigma_data) * per_sample)


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    """Per-sample sqrt(||a - b||^2 + c^2) - c (improved consistency training's metric)."""
    sq = ((a - b) ** 2).flatten(1).sum(dim=1)
    return torch.sqrt(sq + c * c) - c


def default_huber_c(dim: int) -> float:
    """0.00054 * sqrt(d), the constant from improved consistency training, for d = H * A."""
    return 0.00054 * math.sqrt(dim)


def consistency_distill_loss(
    student: torch.Tensor, target: torch.Tensor, x0: torch.Tensor, huber_c: float, dsm_weight: float = 0.0
) -> torch.Tensor:
    """Consistency distillation: d(f(x_{n+1}, s_{n+1}), sg f(x_hat_n, s_n)) + dsm_weight * ||f(x_{n+1}) - x0||^2.

    ``target`` must already be detached (the caller computes it without grad); the optional
    denoising term is CTM's regulariser towards the data.
    """
    if target.requires_grad:
        raise ValueError("consistency_distill_loss: target must be detached (stop-gradient)")
    loss = pseudo_huber(student, target, huber_c).mean()
    if dsm_weight:
        loss = loss + dsm_weight * ((student - x0) ** 2).flatten(1).mean(dim=1).mean()
    return loss


# ---------------------------------------------------------------- consistency on a DDPM (VP, epsilon) network
def sigma_to_timestep(sigma: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Continuous DDPM timestep of VE level sigma: linear interpolation of log sigma over the (ascending)
    per-step table sigma_t, clamped to [0, T-1]; exact integers at the table's own levels."""
    log_t = torch.log(table)
    x = torch.log(sigma).clamp(log_t[0], log_t[-1])
    idx = torch.searchsorted(log_t, x).clamp(1, len(table) - 1)
    lo, hi = log_t[idx - 1], log_t[idx]
    frac = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    return (idx - 1).float() + frac


def vp_eps_consistency_output(x: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor, sigma_data: float,
                              sigma_min: float) -> torch.Tensor:
    """f(x, sigma) = c_skip x + (1 - c_skip) (x - sigma eps): the boundary f(x, sigma_min) = x holds, and a
    network initialised from a DDPM teacher starts as the teacher's one-step x0 estimate (a warm start that fits)."""
    c_skip, _, _ = edm_scalings(sigma, sigma_data, sigma_min)
    return x - _bcast((1.0 - c_skip) * sigma, x) * eps
