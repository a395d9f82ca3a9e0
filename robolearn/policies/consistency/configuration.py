from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from robolearn.policies.configuration import PolicyConfig


@dataclass
class ConsistencyConfig(PolicyConfig):
    """EDM/Karras consistency model. ``objective`` records how it was trained:
    'denoise' = ConRFT's direct denoise-to-clean training, 'distill' = consistency distillation from a DDPM teacher."""

    type: ClassVar[str] = "consistency"
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    n_levels: int = 40
    inference_steps: int = 1
    objective: str = "denoise"
    # 'edm': f = c_skip x + c_out F(c_in x, c_noise); 'vp_eps': the network is a DDPM epsilon net on
    # x / sqrt(1 + sigma^2) at the continuous DDPM step of sigma (used for distillation: exact warm start)
    parameterization: str = "edm"
    vp_timesteps: int = 100
    vp_beta_schedule: str = "squaredcos_cap_v2"
    # distillation only
    huber_c: float = 0.0  # 0: 0.00054 * sqrt(horizon * action_dim)
    dsm_weight: float = 0.1
    distill_levels: int = 0  # 0: every teacher step; N: N-1 teacher steps spread evenly + sigma_min
    warm_start: bool = True
    # 'consistency': one teacher step between adjacent levels (consistency distillation);
    # 'trajectory': the teacher's whole DDIM solve from sigma_max to clean (CTM's s = 0 jump)
    distill_target: str = "consistency"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if self.sigma_data <= 0:
            raise ValueError(f"sigma_data must be > 0, got {self.sigma_data}")
        if self.n_levels < 2:
            raise ValueError(f"n_levels must be >= 2, got {self.n_levels}")
        if not 1 <= self.inference_steps <= self.n_levels:
            raise ValueError(f"inference_steps must be in [1, n_levels={self.n_levels}], got {self.inference_steps}")
        if self.parameterization not in ("edm", "vp_eps"):
            raise ValueError(f"parameterization must be 'edm' or 'vp_eps', got {self.parameterization!r}")
        if self.distill_target not in ("consistency", "trajectory"):
            raise ValueError(f"distill_target must be 'consistency' or 'trajectory', got {self.distill_target!r}")
        if self.objective not in ("denoise", "distill"):
            raise ValueError(f"objective must be 'denoise' or 'distill', got {self.objective!r}")
