from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from robolearn.policies.features import EncoderConfig, check_head_fields


@dataclass
class GaussianConfig:
    """The acting part of an RL run: features (normalised state + per-camera conv embeddings) -> an MLP
    -> tanh-squashed Gaussian. One action per step (``n_action_steps`` = 1), no observation history."""

    type: ClassVar[str] = "gaussian"
    state_dim: int = 0
    action_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    hidden: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    n_obs_steps: int = 1
    n_action_steps: int = 1

    def __post_init__(self) -> None:
        check_head_fields(self)
        if self.log_std_min >= self.log_std_max:
            raise ValueError(f"log_std_min ({self.log_std_min}) must be < log_std_max ({self.log_std_max})")
        if self.n_obs_steps != 1 or self.n_action_steps != 1:
            raise ValueError("a Gaussian policy acts on one observation and returns one action per step")

    def require_dims(self) -> None:
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"GaussianConfig: state_dim and action_dim must be set (got {self.state_dim}, "
                             f"{self.action_dim})")

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        return {cam: (self.image_size, self.image_size, 3) for cam in self.cameras}
