"""Observation encoders: an MLP for the state vector, a small GroupNorm ResNet with spatial-softmax
keypoints for each camera (trained from scratch, random-crop augmentation), concatenated per frame."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


def mlp(sizes: Sequence[int], out_act: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or out_act:
            layers.append(nn.Mish())
    return nn.Sequential(*layers)


def random_crop(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Independent random crop per image: x (N, C, H, W) -> (N, C, size, size)."""
    n, _, h, w = x.shape
    oy = torch.randint(0, h - size + 1, (n,), generator=generator, device=x.device)
    ox = torch.randint(0, w - size + 1, (n,), generator=generator, device=x.device)
    ar = torch.arange(size, device=x.device)
    rows = (oy[:, None] + ar)[:, :, None]  # (N, size, 1)
    cols = (ox[:, None] + ar)[:, None, :]  # (N, 1, size)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return x.permute(0, 2, 3, 1)[idx, rows, cols].permute(0, 3, 1, 2)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


class SpatialSoftmax(nn.Module):
    """Expected (x, y) image coordinates of each feature map's softmax: K maps -> 2K keypoint numbers."""

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        n, k, h, w = feat.shape
        attn = F.softmax(feat.flatten(2), dim=-1).view(n, k, h, w)
        ys = torch.linspace(-1.0, 1.0, h, device=feat.device)
        xs = torch.linspace(-1.0, 1.0, w, device=feat.device)
        ey = (attn.sum(dim=3) * ys).sum(dim=2)
        ex = (attn.sum(dim=2) * xs).sum(dim=2)
        return torch.cat([ex, ey], dim=1)


class ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, groups: int):
        super().__init__()
        g = min(groups, c_out)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.norm1 = nn.GroupNorm(g, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.norm2 = nn.GroupNorm(g, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.mish(self.norm1(self.conv1(x)))
        h = self.norm2(self.conv2(h))
        return F.mish(h + self.skip(x))


class ImageEncoder(nn.Module):
    """uint8 (N, H, W, 3) -> features (N, feature_dim). Random crop when training, center crop otherwise."""

    def __init__(self, crop_size: int, channels: Sequence[int], keypoints: int, feature_dim: int, groups: int = 8):
        super().__init__()
        self.crop_size = crop_size
        chans = list(channels)
        layers: list[nn.Module] = [nn.Conv2d(3, chans[0], 3, 2, 1), nn.GroupNorm(min(groups, chans[0]), chans[0]), nn.Mish()]
        for ci, co in zip(chans[:-1], chans[1:]):
            layers.append(ResBlock2d(ci, co, 2, groups))
        self.trunk = nn.Sequential(*layers)
        self.keypoints = nn.Conv2d(chans[-1], keypoints, 1)
        self.softmax = SpatialSoftmax()
        self.out = nn.Sequential(nn.Linear(2 * keypoints, feature_dim), nn.Mish())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3), got {tuple(images.shape)}")
        x = images.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] < self.crop_size or x.shape[-2] < self.crop_size:
            raise ValueError(f"image {tuple(x.shape[-2:])} smaller than crop_size {self.crop_size}")
        x = random_crop(x, self.crop_size) if self.training else center_crop(x, self.crop_size)
        return self.out(self.softmax(self.keypoints(self.trunk(x * 2.0 - 1.0))))


class ObsEncoder(nn.Module):
    """Encodes a history of observations into one global condition vector (B, n_obs * per_frame_dim).

    ``state`` arrives already normalized, shape (B, n_obs, D); ``images`` maps camera -> uint8 (B, n_obs, H, W, 3).
    """

    def __init__(self, state_dim: int, state_hidden: Sequence[int], state_feature_dim: int, cameras: Sequence[str],
                 crop_size: int, image_channels: Sequence[int], image_keypoints: int, image_feature_dim: int,
                 n_obs_steps: int):
        super().__init__()
        self.cameras = list(cameras)
        self.n_obs_steps = n_obs_steps
        if state_feature_dim > 0:
            self.state = mlp([state_dim, *state_hidden, state_feature_dim], out_act=False)
            state_out = state_feature_dim
        else:  # raw normalized state as the condition (Diffusion Policy's low-dim setting)
            self.state = nn.Identity()
            state_out = state_dim
        self.images = nn.ModuleDict(
            {cam: ImageEncoder(crop_size, image_channels, image_keypoints, image_feature_dim) for cam in self.cameras}
        )
        self.frame_dim = state_out + image_feature_dim * len(self.cameras)
        self.out_dim = self.frame_dim * n_obs_steps

    def forward(self, state: torch.Tensor, images: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        b, t = state.shape[:2]
        if t != self.n_obs_steps:
            raise ValueError(f"observation history has {t} steps, expected n_obs_steps={self.n_obs_steps}")
        feats = [self.state(state)]
        for cam in self.cameras:
            if images is None or cam not in images:
                raise KeyError(f"observation is missing camera {cam!r} (policy expects cameras {self.cameras})")
            img = images[cam]
            if img.shape[:2] != (b, t):
                raise ValueError(f"camera {cam!r} images have leading shape {tuple(img.shape[:2])}, expected {(b, t)}")
            feats.append(self.images[cam](img.reshape(b * t, *img.shape[2:])).view(b, t, -1))
        return torch.cat(feats, dim=-1).reshape(b, -1)
