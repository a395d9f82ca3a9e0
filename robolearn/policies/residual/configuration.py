"""Config of the residual policy: a frozen BC chunk policy plus a small per-step residual head."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from robolearn.policies.features import EncoderConfig, check_head_fields


@dataclass
class ResidualPolicyConfig:
    """The base is recorded by its registered type name and its own config (as a plain mapping), so the
    checkpoint rebuilds it through the policy registry and stays self-contained: the base's weights are
    part of this policy's state dict (``base.*``). ``n_obs_steps``/``n_action_steps`` are those of the
    per-step API (one action per call); the base's own horizons live in ``base_config``."""

    type: ClassVar[str] = "residual"
    state_dim: int = 0
    action_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    hidden: tuple[int, ...] = (256, 256)   # the residual MLP
    layer_norm: bool = True
    alpha: float = 0.1                      # executed = clip(base + alpha * residual), residual in [-1, 1]
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    base_type: str = ""
    base_config: dict[str, Any] = field(default_factory=dict)
    n_obs_steps: int = 1
    n_action_steps: int = 1

    def __post_init__(self) -> None:
        check_head_fields(self)
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not isinstance(self.base_config, dict):
            raise ValueError(f"base_config must be a mapping (the base policy's config), got "
                             f"{type(self.base_config).__name__}")
        if self.n_obs_steps != 1 or self.n_action_steps != 1:
            raise ValueError("a residual policy acts on one observation and returns one action per step "
                             "(n_obs_steps = n_action_steps = 1; the base's horizons are in base_config)")

    def require_dims(self) -> None:
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"ResidualPolicyConfig: state_dim and action_dim must be set (got {self.state_dim}, "
                             f"{self.action_dim})")
        if not self.base_type:
            raise ValueError("ResidualPolicyConfig: base_type must name the base policy's registered type")

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        return {cam: (self.image_size, self.image_size, 3) for cam in self.cameras}

    @property
    def inference_steps(self) -> int:
        """The base's default sampling steps: ``eval`` passes ``steps`` from here unless told otherwise, and
        the policy hands it to the base, so evaluation samples the base as training did."""
        c = self.base_config
        if self.base_type == "diffusion":
            if c.get("sampler", "ddim") == "ddpm":
                return int(c.get("num_train_timesteps", 100))
            return int(c.get("num_inference_steps", 10))
        return int(c.get("inference_steps", 1))
