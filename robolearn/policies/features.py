"""Per-step observation features for single-step policies and RL critics, and DrQ random-shift augmentation.

State and image observations take the same path: ``FeatureEncoder(obs) -> features`` concatenates the
normalised state vector with one small conv embedding per camera (none when there are no cameras).
The state goes through the same ``Normalizer`` as the chunk policies' (mean/std here), so every
checkpoint stores its statistics the same way. It lives with the policies because the exported RL
actor (``policies/gaussian``) acts through it; the RL critic trains it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robolearn.policies.normalize import Normalizer


@dataclass
class EncoderConfig:
    channels: int = 32
    conv_layers: int = 4
    feature_dim: int = 50
    shift_pad: int = 4  # DrQ random shift in pixels; 0 disables augmentation

    def __post_init__(self) -> None:
        if self.channels < 1 or self.conv_layers < 1 or self.feature_dim < 1:
            raise ValueError("encoder channels, conv_layers and feature_dim must be >= 1")
        if self.shift_pad < 0:
            raise ValueError(f"encoder shift_pad must be >= 0, got {self.shift_pad}")


def check_head_fields(cfg) -> None:
    """The fields every per-step head's config shares (encoder, cameras, hidden sizes, dims): coerced from
    their JSON forms and checked, one rule for the Gaussian, residual and EXPO policies."""
    if isinstance(cfg.encoder, dict):
        cfg.encoder = EncoderConfig(**cfg.encoder)
    cfg.cameras = tuple(cfg.cameras)
    cfg.hidden = tuple(int(h) for h in cfg.hidden)
    if not cfg.hidden or min(cfg.hidden) < 1:
        raise ValueError(f"hidden must be a non-empty list of positive sizes, got {cfg.hidden}")
    if cfg.state_dim < 0 or cfg.action_dim < 0:
        raise ValueError("state_dim/action_dim must be >= 0")


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation on (B, H, W, C) frames: pad by replication and crop back at a random offset.

    Replicate-padding then cropping equals indexing with clamped coordinates, so no padded copy is
    made and uint8 frames stay uint8. Each sample gets its own integer shift in [-pad, pad].
    """
    if pad == 0:
        return images
    if images.dim() != 4:
        raise ValueError(f"random_shift expects (B, H, W, C) images, got shape {tuple(images.shape)}")
    b, h, w, _ = images.shape
    dev = images.device
    shift = torch.randint(0, 2 * pad + 1, (b, 2), generator=generator, device=getattr(generator, "device", dev))
    shift = shift.to(dev) - pad
    rows = (torch.arange(h, device=dev).unsqueeze(0) + shift[:, :1]).clamp_(0, h - 1)
    cols = (torch.arange(w, device=dev).unsqueeze(0) + shift[:, 1:]).clamp_(0, w - 1)
    batch = torch.arange(b, device=dev)[:, None, None]
    return images[batch, rows[:, :, None], cols[:, None, :]]


def augment(obs: dict, pad: int, generator: torch.Generator | None) -> dict:
    if pad == 0 or "images" not in obs:
        return obs
    return {**obs, "images": {cam: random_shift(img, pad, generator) for cam, img in obs["images"].items()}}


class ConvEmbed(nn.Module):
    """(B, H, W, 3) uint8 -> (B, feature_dim): conv stack trained from scratch, then Linear-LayerNorm-tanh."""

    def __init__(self, image_shape: tuple[int, int, int], cfg: EncoderConfig) -> None:
        super().__init__()
        h, w, c = image_shape
        layers: list[nn.Module] = [nn.Conv2d(c, cfg.channels, 3, stride=2), nn.ReLU()]
        for _ in range(cfg.conv_layers - 1):
            layers += [nn.Conv2d(cfg.channels, cfg.channels, 3, stride=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            n = self.conv(torch.zeros(1, c, h, w)).shape[1]
        self.head = nn.Sequential(nn.Linear(n, cfg.feature_dim), nn.LayerNorm(cfg.feature_dim), nn.Tanh())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
        return self.head(self.conv(x))


class FeatureEncoder(nn.Module):
    def __init__(self, state_dim: int, image_shapes: dict[str, tuple[int, int, int]], cfg: EncoderConfig):
        super().__init__()
        self.state_dim = state_dim
        self.cameras = sorted(image_shapes)
        self.convs = nn.ModuleDict({cam: ConvEmbed(tuple(image_shapes[cam]), cfg) for cam in self.cameras})
        self.out_dim = state_dim + cfg.feature_dim * len(self.cameras)
        # state standardization, fixed for a run (identity until set_state_stats: min -1, max 1)
        self.state_norm = Normalizer(state_dim)

    @torch.no_grad()
    def set_state_stats(self, states, min_scale: float = 1e-2) -> None:
        """Standardize with these states' mean and std (std floored: constant dims must not explode)."""
        states = torch.as_tensor(states, dtype=torch.float32).reshape(-1, self.state_dim)
        if states.shape[0] < 2 or not torch.isfinite(states).all():
            raise ValueError(f"state statistics need >= 2 finite rows, got {states.shape[0]} rows")
        self.state_norm.set_meanstd(states.mean(0).cpu().numpy(), states.std(0).cpu().numpy(), min_scale)

    @property
    def has_params(self) -> bool:
        return len(self.cameras) > 0

    def forward(self, obs: dict) -> torch.Tensor:
        parts = [self.state_norm.normalize(obs["state"])]
        images = obs.get("images", {})
        for cam in self.cameras:
            parts.append(self.convs[cam](images[cam]))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
