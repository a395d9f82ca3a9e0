"""SAC / RLPD losses and targets as pure functions of tensors (unit-tested against hand-computed values).

Shapes: ``q`` of an ensemble is (E, B); per-sample quantities are (B,). ``discount`` is the per-sample
bootstrap factor gamma^n * (1 - terminated) that the replay buffer computes for n-step returns.
"""
from __future__ import annotations

import torch

from robolearn.policies.gaussian.modeling import tanh_gaussian_sample  # noqa: F401  (re-exported: the actor's math)


def subset_min(q: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """Min over the ensemble members ``members`` (RLPD/REDQ target): (E, B) -> (B,)."""
    if q.dim() != 2:
        raise ValueError(f"subset_min expects q of shape (E, B), got {tuple(q.shape)}")
    return q.index_select(0, members).min(dim=0).values


def td_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    next_q: torch.Tensor,
    next_log_prob: torch.Tensor | None = None,
    alpha: torch.Tensor | float | None = None,
    clip: tuple[float, float] | None = None,
) -> torch.Tensor:
    """y = r + discount * (Q'(s', a') - alpha * log pi(a'|s')); the entropy term only when both are given.

    ``clip`` = (lo, hi) bounds y to the range the returns can take (e.g. (0, 1) for a 0/1 reward that
    ends the episode), so an over-estimating critic cannot bootstrap itself past it.
    """
    value = next_q
    if next_log_prob is not None and alpha is not None:
        value = value - alpha * next_log_prob
    target = reward + discount * value
    if clip is not None:
        target = target.clamp(clip[0], clip[1])
    return target


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared TD error over members and batch (the target carries no gradient)."""
    return (q - target.detach().unsqueeze(0)).pow(2).mean()


def actor_loss(q: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor | float,
               q_normalize: bool = False) -> torch.Tensor:
    """E[alpha * log pi(a|s) - mean_members Q(s, a)], as RLPD/SERL (mean over all members).

    ``q_normalize`` divides the Q term by the batch's mean |Q| (no gradient), as TD3+BC does, so a BC
    term added to this loss keeps its relative weight however large the values grow.
    """
    q_bar = q.mean(dim=0)
    if q_normalize:
        q_bar = q_bar / q_bar.detach().abs().mean().clamp_min(1e-6)
    return (alpha * log_prob - q_bar).mean()


def bc_loss(pred_action: torch.Tensor, target_action: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared action error over the rows where ``mask`` is true (demo rows); 0 when none are."""
    err = (pred_action - target_action).pow(2).sum(-1)
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp_min(1.0)


def temperature_loss(log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float) -> torch.Tensor:
    """alpha * (entropy - target): raises alpha when the policy entropy falls below the target."""
    entropy = -log_prob.detach().mean()
    return log_alpha.exp() * (entropy - target_entropy)


def polyak_(target: list[torch.Tensor], source: list[torch.Tensor], tau: float) -> None:
    """target <- (1 - tau) * target + tau * source, in place."""
    with torch.no_grad():
        torch._foreach_lerp_(target, source, tau)
