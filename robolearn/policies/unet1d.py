"""1-D temporal conditional U-Net (Diffusion Policy's denoiser), written from the paper's description.

Input: a noisy action chunk (B, H, A), a scalar time per sample (DDPM step or consistency c_noise),
and a global condition (B, C) of observation features. Residual blocks: (Conv1d -> GroupNorm -> Mish) x2
with FiLM (per-channel scale and bias from the time embedding + condition) after the first conv.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"step embedding dim must be even, got {dim}")
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / max(half - 1, 1))
        args = t.float()[:, None] * freqs[None, :]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class ConvBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, groups: int):
        super().__init__()
        if c_out % groups:
            raise ValueError(f"channels {c_out} not divisible by n_groups {groups}")
        self.block = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2), nn.GroupNorm(groups, c_out), nn.Mish()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class FiLMResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, cond_dim: int, kernel: int, groups: int):
        super().__init__()
        self.conv1 = ConvBlock(c_in, c_out, kernel, groups)
        self.conv2 = ConvBlock(c_out, c_out, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * c_out))
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.conv2(scale * h + bias)
        return h + self.skip(x)


class ConditionalUnet1D(nn.Module):
    def __init__(
        self,
        action_dim: int,
        global_cond_dim: int,
        down_dims: Sequence[int] = (64, 128, 256),
        step_embed_dim: int = 128,
        kernel_size: int = 5,
        n_groups: int = 8,
    ):
        super().__init__()
        dims = [int(d) for d in down_dims]
        self.step_embed = nn.Sequential(
            SinusoidalEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cond_dim = step_embed_dim + global_cond_dim
        block = lambda ci, co: FiLMResBlock(ci, co, cond_dim, kernel_size, n_groups)  # noqa: E731
        ins = [action_dim] + dims[:-1]
        self.down = nn.ModuleList()
        for i, (ci, co) in enumerate(zip(ins, dims)):
            last = i == len(dims) - 1
            self.down.append(
                nn.ModuleList([block(ci, co), block(co, co), nn.Identity() if last else nn.Conv1d(co, co, 3, 2, 1)])
            )
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList()
        for i, (ci, co) in enumerate(reversed(list(zip(ins[1:], dims[1:])))):
            # ci = the smaller width we go back up to, co = the width coming from below
            self.up.append(nn.ModuleList([block(2 * co, ci), block(ci, ci), nn.ConvTranspose1d(ci, ci, 4, 2, 1)]))
        self.final = nn.Sequential(ConvBlock(dims[0], dims[0], kernel_size, n_groups), nn.Conv1d(dims[0], action_dim, 1))
        self.n_down = len(dims) - 1

    def forward(self, x: torch.Tensor, t: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        """x (B, H, A), t (B,) or scalar, global_cond (B, C) -> (B, H, A)."""
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        cond = torch.cat([self.step_embed(t), global_cond], dim=-1)
        h = x.transpose(1, 2)
        skips = []
        for b1, b2, down in self.down:
            h = b2(b1(h, cond), cond)
            skips.append(h)
            h = down(h)
        for b in self.mid:
            h = b(h, cond)
        for b1, b2, up in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            h = up(b2(b1(h, cond), cond))
        return self.final(h).transpose(1, 2)
