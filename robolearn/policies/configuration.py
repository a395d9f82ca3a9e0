"""Fields shared by every chunk-predicting policy (observation history, horizons, network sizes)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass
class PolicyConfig:
    """Defaults are CPU-sized; Diffusion Policy's paper sizes are down_dims (256, 512, 1024), step_embed_dim 256."""

    type: ClassVar[str] = ""
    state_dim: int = 0  # 0: filled in from the data at training time
    action_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    crop_size: int = 76
    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    step_embed_dim: int = 128
    state_hidden: tuple[int, ...] = (256,)
    state_feature_dim: int = 64  # 0: feed the normalized state directly
    image_channels: tuple[int, ...] = (32, 64, 128)
    image_keypoints: int = 32
    image_feature_dim: int = 64

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.down_dims = tuple(int(d) for d in self.down_dims)
        self.state_hidden = tuple(int(d) for d in self.state_hidden)
        self.image_channels = tuple(int(d) for d in self.image_channels)
        if self.state_dim < 0 or self.action_dim < 0:
            raise ValueError("state_dim/action_dim must be >= 0 (0 = from data)")
        if self.n_obs_steps < 1:
            raise ValueError(f"n_obs_steps must be >= 1, got {self.n_obs_steps}")
        if not self.down_dims:
            raise ValueError("down_dims must not be empty")
        factor = 2 ** (len(self.down_dims) - 1)
        if self.horizon % factor:
            raise ValueError(f"horizon {self.horizon} must be divisible by {factor} (2^(len(down_dims)-1))")
        if not 1 <= self.n_action_steps <= self.horizon - self.n_obs_steps + 1:
            raise ValueError(
                f"n_action_steps {self.n_action_steps} must be in [1, horizon - n_obs_steps + 1 = "
                f"{self.horizon - self.n_obs_steps + 1}]"
            )
        for d in self.down_dims:
            if d % self.n_groups:
                raise ValueError(f"down_dims entry {d} is not divisible by n_groups {self.n_groups}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")
        if self.cameras and not 0 < self.crop_size <= self.image_size:
            raise ValueError(f"crop_size {self.crop_size} must be in (0, image_size={self.image_size}]")

    def require_dims(self) -> None:
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(
                f"{type(self).__name__}: state_dim and action_dim must be set (got {self.state_dim}, {self.action_dim})"
            )
