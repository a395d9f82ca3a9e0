"""Mixer: every batch draws a fixed fraction from the demo buffer and the rest online (RLPD's 50/50)."""
from __future__ import annotations

import torch

from robolearn.data.replay import ReplayBuffer


def _cat(a, b):
    if isinstance(a, dict):
        return {k: _cat(a[k], b[k]) for k in a}
    return torch.cat([a, b], dim=0)


def split_counts(batch_size: int, demo_fraction: float) -> tuple[int, int]:
    """(from demos, from online); the demo count is round(batch * fraction), fixed for every batch."""
    n_demo = int(round(batch_size * demo_fraction))
    return n_demo, batch_size - n_demo


class Mixer:
    def __init__(self, online: ReplayBuffer, demos: ReplayBuffer | None = None, demo_fraction: float = 0.5):
        if not 0.0 <= demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {demo_fraction}")
        self.online, self.demos = online, demos
        self.demo_fraction = demo_fraction if demos is not None else 0.0

    def sample(self, batch_size: int, discount: float, n_step: int = 1,
               windows: tuple[int, int] | None = None) -> dict:
        """Demo rows first, then online rows; ``is_demo`` marks them (for optional BC terms)."""
        n_demo, n_online = split_counts(batch_size, self.demo_fraction)
        if n_demo == 0:
            batch = self.online.sample(n_online, discount, n_step, windows)
        elif n_online == 0 or len(self.online) == 0:
            batch, n_demo = self.demos.sample(batch_size, discount, n_step, windows), batch_size
        else:
            batch = _cat(self.demos.sample(n_demo, discount, n_step, windows),
                         self.online.sample(n_online, discount, n_step, windows))
        batch["is_demo"] = torch.arange(batch_size) < n_demo
        return batch
