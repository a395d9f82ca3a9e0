"""Cal-QL's conservative critic term (Nakamoto et al. 2023) as pure functions of tensors, in the form
ConRFT's official learner uses for its offline stage (cccedric/conrft, ``_get_cql_q_diff``).

CQL pushes Q down on actions the data does not support and up on the data's own actions. Alone it makes
the offline critic so pessimistic that the first online updates "unlearn" it (the dip Cal-QL is named
for); flooring every sampled action's Q at the Monte-Carlo return-to-go of the data keeps the pushed-down
values calibrated: never below what the behaviour policy actually obtained from that state.

Shapes: ``q_samples`` (E, B, N) = each member's Q at N sampled actions per state; ``q_data`` (E, B) = Q at
the dataset's actions; ``mc_return`` (B,) = discounted return-to-go of each row's episode.
"""
from __future__ import annotations

import math

import torch


def floor_at_mc_return(q_samples: torch.Tensor, mc_return: torch.Tensor) -> torch.Tensor:
    """max(Q(s, a_i), G(s)) per sampled action: the calibration that makes CQL into Cal-QL."""
    if q_samples.dim() != 3:
        raise ValueError(f"q_samples must be (E, B, N), got {tuple(q_samples.shape)}")
    if mc_return.shape != q_samples.shape[1:2]:
        raise ValueError(f"mc_return must be (B,) = ({q_samples.shape[1]},), got {tuple(mc_return.shape)}")
    return torch.maximum(q_samples, mc_return.to(q_samples.dtype).view(1, -1, 1))


def calql_q_diff(q_samples: torch.Tensor, q_data: torch.Tensor, mc_return: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """Per member and row: T * log mean_k exp(x_k / T) - Q(s, a_data), over the floored sampled Q values
    and the data action's own Q (the official learner appends it to the set, as CQL's reference code does;
    the mean, i.e. logsumexp - log K, makes the term 0 when every value equals Q(s, a_data)). (E, B)."""
    if q_data.shape != q_samples.shape[:2]:
        raise ValueError(f"q_data must be (E, B) = {tuple(q_samples.shape[:2])}, got {tuple(q_data.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    values = torch.cat([floor_at_mc_return(q_samples, mc_return), q_data.unsqueeze(-1)], dim=-1)
    ood = temperature * (torch.logsumexp(values / temperature, dim=-1) - math.log(values.shape[-1]))
    return ood - q_data


def calql_loss(q_samples: torch.Tensor, q_data: torch.Tensor, mc_return: torch.Tensor, alpha: float,
               temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """alpha * mean over members and rows of ``calql_q_diff``, plus diagnostics: the share of sampled
    values the floor lifted (``calql_bound_rate``) and the conservative gap itself (``cql_diff``)."""
    diff = calql_q_diff(q_samples, q_data, mc_return, temperature)
    with torch.no_grad():
        lifted = (q_samples < mc_return.to(q_samples.dtype).view(1, -1, 1)).float().mean()
    metrics = {"cql_diff": float(diff.detach().mean()), "calql_bound_rate": float(lifted),
               "cql_sampled_q": float(q_samples.detach().mean())}
    return alpha * diff.mean(), metrics
