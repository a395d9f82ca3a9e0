"""One normaliser for every policy: an affine map to about [-1, 1] whose statistics are buffers, so they
travel with a checkpoint.

Diffusion and consistency policies clip samples to [-1, 1]; min-max (not mean/std) makes that box
exactly the range seen in the data. RL features prefer mean/std (``set_meanstd``); that is the same map
with min = mean - std and max = mean + std, so BC and RL checkpoints share one layout.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

MIN_RANGE = 1e-4


def safe_bounds(lo: np.ndarray, hi: np.ndarray, min_range: float = MIN_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Widen (near-)constant dimensions to [v - 1, v + 1] so they map to 0 instead of dividing by ~0."""
    lo = np.asarray(lo, dtype=np.float32).copy()
    hi = np.asarray(hi, dtype=np.float32).copy()
    if lo.shape != hi.shape:
        raise ValueError(f"normalization min/max shapes differ: {lo.shape} vs {hi.shape}")
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("normalization statistics contain NaN or inf")
    if np.any(hi < lo):
        raise ValueError(f"normalization max < min at indices {np.flatnonzero(hi < lo).tolist()}")
    flat = (hi - lo) < min_range
    mid = (hi + lo) / 2
    lo[flat] = mid[flat] - 1.0
    hi[flat] = mid[flat] + 1.0
    return lo, hi


def minmax_normalize(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def minmax_unnormalize(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    return (y + 1.0) * 0.5 * (hi - lo) + lo


class Normalizer(nn.Module):
    """Holds per-dimension min/max of one quantity (state or action) over the last axis."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = int(dim)
        self.register_buffer("min", -torch.ones(self.dim))
        self.register_buffer("max", torch.ones(self.dim))

    def set_stats(self, lo, hi) -> None:
        lo, hi = safe_bounds(np.asarray(lo), np.asarray(hi))
        if lo.shape != (self.dim,):
            raise ValueError(f"normalization stats have shape {lo.shape}, expected ({self.dim},)")
        self.min.copy_(torch.from_numpy(lo))
        self.max.copy_(torch.from_numpy(hi))

    def set_meanstd(self, mean, std, min_std: float = 1e-2) -> None:
        """Standardize: (x - mean) / std, std floored so constant dimensions do not explode."""
        mean = np.asarray(mean, dtype=np.float32)
        std = np.maximum(np.asarray(std, dtype=np.float32), min_std)
        if mean.shape != (self.dim,) or std.shape != (self.dim,):
            raise ValueError(f"mean/std have shapes {mean.shape}/{std.shape}, expected ({self.dim},)")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std))):
            raise ValueError("normalization statistics contain NaN or inf")
        self.min.copy_(torch.from_numpy(mean - std))
        self.max.copy_(torch.from_numpy(mean + std))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.dim:
            raise ValueError(f"normalize: last dim is {x.shape[-1]}, expected {self.dim}")
        return minmax_normalize(x, self.min, self.max)

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        if y.shape[-1] != self.dim:
            raise ValueError(f"unnormalize: last dim is {y.shape[-1]}, expected {self.dim}")
        return minmax_unnormalize(y, self.min, self.max)
