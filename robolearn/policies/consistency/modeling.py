"""ConsistencyPolicy: f(x, sigma) = c_skip x + c_out F(c_in x, c_noise(sigma) | obs), acting in 1..k steps."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from robolearn.policies import losses
from robolearn.policies.base import ChunkPolicy, sample_noise
from robolearn.policies.consistency.configuration import ConsistencyConfig


class ConsistencyPolicy(ChunkPolicy):
    type: ClassVar[str] = "consistency"
    config_class = ConsistencyConfig

    def __init__(self, config: ConsistencyConfig):
        super().__init__(config)
        self._vp_table: torch.Tensor | None = None
        if config.parameterization == "vp_eps":
            from diffusers import DDPMScheduler

            sched = DDPMScheduler(num_train_timesteps=config.vp_timesteps, beta_schedule=config.vp_beta_schedule)
            self._vp_table = losses.vp_sigmas(sched.alphas_cumprod.float())

    def karras(self) -> torch.Tensor:
        c = self.config
        return losses.karras_sigmas(c.n_levels, c.sigma_min, c.sigma_max, c.rho)

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The consistency function f(x, sigma) -> clean normalized chunk."""
        c = self.config
        if self._vp_table is not None:
            if self._vp_table.device != sigma.device:  # once per device, not once per network call
                self._vp_table = self._vp_table.to(sigma.device)
            t = losses.sigma_to_timestep(sigma, self._vp_table)
            eps = self.net(x / torch.sqrt(1.0 + sigma**2).view(-1, 1, 1), t, cond)
            return losses.vp_eps_consistency_output(x, sigma, eps, c.sigma_data, c.sigma_min)
        _, _, c_in = losses.edm_scalings(sigma, c.sigma_data, c.sigma_min)
        raw = self.net(c_in.view(-1, 1, 1) * x, losses.c_noise(sigma), cond)
        return losses.consistency_output(x, sigma, raw, c.sigma_data, c.sigma_min)

    def bc_loss(self, x0: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """ConRFT's denoise-to-clean term on normalized actions x0 (an RL learner adds its Q term to this)."""
        sigmas = self.karras().to(x0.device)
        idx = torch.randint(0, len(sigmas), (x0.shape[0],), device=x0.device)
        sigma = sigmas[idx]
        x = x0 + sigma.view(-1, 1, 1) * torch.randn_like(x0)
        return losses.denoise_to_clean_loss(self.denoise(x, sigma, cond), x0, sigma, self.config.sigma_data)

    def compute_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        cond = self.encode_obs(batch)
        return self.bc_loss(self.action_norm.normalize(batch["action"].float()), cond)

    def step_sigmas(self, steps: int) -> torch.Tensor:
        """Noise levels visited by k-step sampling: k levels spread evenly over the Karras grid, from sigma_max."""
        grid = self.karras()
        idx = torch.linspace(0, len(grid) - 2, steps).round().long() if steps > 1 else torch.zeros(1, dtype=torch.long)
        return grid[idx]

    def sample_normalized(self, cond: torch.Tensor, generator: torch.Generator | None = None,
                          steps: int | None = None, **_: Any) -> torch.Tensor:
        """One step from x = sigma_max * z; each extra step re-noises the estimate to a lower level and denoises."""
        c = self.config
        steps = int(steps or c.inference_steps)
        sigmas = self.step_sigmas(steps).to(cond.device)
        b = cond.shape[0]
        shape = (b, c.horizon, c.action_dim)
        x = sigmas[0] * sample_noise(shape, generator, cond.device)
        x0 = self.denoise(x, sigmas[0].expand(b), cond).clamp(-1.0, 1.0)
        for sigma in sigmas[1:]:
            noise = sample_noise(shape, generator, cond.device)
            x = x0 + torch.sqrt(sigma**2 - c.sigma_min**2) * noise
            x0 = self.denoise(x, sigma.expand(b), cond).clamp(-1.0, 1.0)
        return x0
