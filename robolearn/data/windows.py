"""Action-chunk windows, one definition for BC datasets and replay buffers.

A window at step c of an episode of T actions covers observations c-n_obs+1..c and actions
c-n_obs+1..c+horizon-n_obs (so the executed part starts at index n_obs-1), with indices clamped to
the episode: the first frame repeats before the start and the last action after the end, as
Diffusion Policy pads.
"""
from __future__ import annotations

import numpy as np


def window_offsets(n_obs_steps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets relative to the current step c: (observation offsets (n_obs,), action offsets (horizon,))."""
    if n_obs_steps < 1 or horizon < n_obs_steps:
        raise ValueError(f"need 1 <= n_obs_steps <= horizon, got n_obs_steps={n_obs_steps}, horizon={horizon}")
    return np.arange(-(n_obs_steps - 1), 1), np.arange(-(n_obs_steps - 1), horizon - n_obs_steps + 1)


def episode_windows(t_len: int, n_obs_steps: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Clamped step indices of every window of one episode: (T, n_obs) and (T, horizon)."""
    o_off, a_off = window_offsets(n_obs_steps, horizon)
    cur = np.arange(t_len)[:, None]
    return np.clip(cur + o_off[None], 0, t_len - 1), np.clip(cur + a_off[None], 0, t_len - 1)
