from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from robolearn.policies.configuration import PolicyConfig

SAMPLERS = ("ddpm", "ddim")


@dataclass
class DiffusionConfig(PolicyConfig):
    type: ClassVar[str] = "diffusion"
    num_train_timesteps: int = 100
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    sampler: str = "ddim"  # used by act(); sample_actions(sampler=...) overrides
    num_inference_steps: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.prediction_type != "epsilon":
            raise ValueError(f"only prediction_type 'epsilon' is supported, got {self.prediction_type!r}")
        if not 1 <= self.num_inference_steps <= self.num_train_timesteps:
            raise ValueError(
                f"num_inference_steps {self.num_inference_steps} must be in [1, num_train_timesteps={self.num_train_timesteps}]"
            )
