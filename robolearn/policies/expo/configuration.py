"""The config of an exported EXPO policy: the base policy's own config nested inside, plus the shapes of
the edit head and of the Q ensemble, so the checkpoint rebuilds every part from ``config.json`` alone."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robolearn.policies.features import EncoderConfig

BASE_TYPES = ("diffusion", "consistency")


def check_selection(beta: float, num_samples: int, n_edit: int, log_std_min: float, log_std_max: float) -> None:
    """The selection's settings, one rule for the exported policy and the algorithm that trains it."""
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if not 0 <= n_edit <= num_samples:
        raise ValueError(f"n_edit must be in [0, num_samples={num_samples}], got {n_edit}")
    if log_std_min >= log_std_max:
        raise ValueError(f"log_std_min ({log_std_min}) must be < log_std_max ({log_std_max})")


@dataclass
class ExpoPolicyConfig:
    """One action per env step (closed loop): every step draws ``num_samples`` base actions, edits the
    first ``n_edit`` of them and executes the candidate the Q ensemble ranks highest."""

    type: ClassVar[str] = "expo"
    state_dim: int = 0
    action_dim: int = 0
    cameras: tuple[str, ...] = ()
    image_size: int = 84
    base_type: str = "consistency"
    base: Any = None                      # the base's config (its dataclass; a mapping in config.json)
    base_sample: dict = field(default_factory=dict)   # sampling settings of the base (e.g. {"steps": 1})
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    edit_hidden: tuple[int, ...] = (256, 256)
    edit_layer_norm: bool = True
    log_std_min: float = -10.0
    log_std_max: float = 2.0
    critic_hidden: tuple[int, ...] = (256, 256, 256)
    critic_layer_norm: bool = True
    num_critics: int = 10
    critic_subset: int = 2                # candidates are ranked by the min over this many members
    beta: float = 0.05                    # edited = clip(base + beta * tanh(u))
    num_samples: int = 8
    n_edit: int = 8
    n_action_steps: int = 1

    def __post_init__(self) -> None:
        from robolearn.config_io import from_dict
        from robolearn.policies import registry

        if isinstance(self.encoder, dict):
            self.encoder = EncoderConfig(**self.encoder)
        self.cameras = tuple(self.cameras)
        self.edit_hidden = tuple(int(h) for h in self.edit_hidden)
        self.critic_hidden = tuple(int(h) for h in self.critic_hidden)
        if self.base_type not in BASE_TYPES:
            raise ValueError(f"base_type must be one of {', '.join(BASE_TYPES)}, got {self.base_type!r}")
        if isinstance(self.base, dict):
            self.base = from_dict(registry.config_class(self.base_type), self.base, where="expo config base")
        if self.base is not None and not dataclasses.is_dataclass(self.base):
            raise ValueError(f"base must be the base policy's config, got {type(self.base).__name__}")
        if not isinstance(self.base_sample, dict):
            raise ValueError(f"base_sample must be a mapping of sampling settings, got {self.base_sample!r}")
        for name in ("edit_hidden", "critic_hidden"):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a non-empty list of positive sizes, got {getattr(self, name)}")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if not 1 <= self.critic_subset <= self.num_critics:
            raise ValueError(f"critic_subset must be in [1, num_critics={self.num_critics}], got {self.critic_subset}")
        check_selection(self.beta, self.num_samples, self.n_edit, self.log_std_min, self.log_std_max)
        if self.n_action_steps != 1:
            raise ValueError("an EXPO policy selects one action per env step (n_action_steps must be 1)")

    def require_dims(self) -> None:
        if self.state_dim <= 0 or self.action_dim <= 0:
            raise ValueError(f"ExpoPolicyConfig: state_dim and action_dim must be set (got {self.state_dim}, "
                             f"{self.action_dim})")
        if self.base is None:
            raise ValueError("ExpoPolicyConfig: base (the base policy's config) must be set")

    @property
    def n_obs_steps(self) -> int:
        return int(self.base.n_obs_steps)

    @property
    def image_shapes(self) -> dict[str, tuple[int, int, int]]:
        return {cam: (self.image_size, self.image_size, 3) for cam in self.cameras}
