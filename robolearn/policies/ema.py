"""Exponential moving average of weights with Diffusion Policy's warm-up power schedule."""
from __future__ import annotations

import copy

import torch
from torch import nn


def ema_decay(step: int, power: float = 0.75, max_decay: float = 0.9999, min_decay: float = 0.0) -> float:
    """decay = 1 - (1 + step)^-power, clamped to [min_decay, max_decay]: early weights are forgotten fast."""
    if step < 0:
        raise ValueError(f"EMA step must be >= 0, got {step}")
    value = 1.0 - (1.0 + step) ** (-power)
    return float(min(max(value, min_decay), max_decay))


class EMA:
    """Keeps a frozen copy of ``model`` whose parameters track an EMA of the live ones."""

    def __init__(self, model: nn.Module, power: float = 0.75, max_decay: float = 0.9999):
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.power = power
        self.max_decay = max_decay
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> float:
        decay = ema_decay(self.step, self.power, self.max_decay)
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.step += 1
        return decay
