"""DiffusionPolicy: epsilon-prediction DDPM on normalized action chunks, with diffusers schedulers."""
from __future__ import annotations

from typing import Any, ClassVar

import torch

from robolearn.policies import losses
from robolearn.policies.base import ChunkPolicy, sample_noise
from robolearn.policies.diffusion.configuration import DiffusionConfig


def make_scheduler(kind: str, cfg: DiffusionConfig):
    from diffusers import DDIMScheduler, DDPMScheduler

    common = dict(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        clip_sample=cfg.clip_sample,
        clip_sample_range=cfg.clip_sample_range,
        prediction_type=cfg.prediction_type,
    )
    if kind == "ddpm":
        return DDPMScheduler(variance_type="fixed_small", **common)
    if kind == "ddim":
        return DDIMScheduler(set_alpha_to_one=True, steps_offset=0, **common)
    raise ValueError(f"unknown sampler {kind!r}; use 'ddpm' or 'ddim'")


class DiffusionPolicy(ChunkPolicy):
    type: ClassVar[str] = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        self.train_scheduler = make_scheduler("ddpm", config)
        self._samplers: dict[tuple[str, int], Any] = {}

    def alphas_cumprod(self) -> torch.Tensor:
        """On CPU always: diffusers' add_noise moves the table to the training device as a side effect."""
        return self.train_scheduler.alphas_cumprod.float().cpu()

    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net(x_t, t, cond)

    def compute_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        cond = self.encode_obs(batch)
        x0 = self.action_norm.normalize(batch["action"].float())
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        x_t = self.train_scheduler.add_noise(x0, noise, t)
        return losses.epsilon_mse(self.predict_noise(x_t, t, cond), noise)

    def _sampler(self, kind: str, steps: int):
        key = (kind, steps)
        if key not in self._samplers:
            sched = make_scheduler(kind, self.config)
            sched.set_timesteps(steps)
            self._samplers[key] = sched
        return self._samplers[key]

    @torch.no_grad()
    def sample_normalized(self, cond: torch.Tensor, generator: torch.Generator | None = None,
                          sampler: str | None = None, steps: int | None = None) -> torch.Tensor:
        kind = sampler or self.config.sampler
        if steps is None:
            steps = self.config.num_train_timesteps if kind == "ddpm" else self.config.num_inference_steps
        sched = self._sampler(kind, int(steps))
        b = cond.shape[0]
        x = sample_noise((b, self.config.horizon, self.config.action_dim), generator, cond.device)
        # the scheduler indexes its CPU tables with t; the network wants t where cond is
        for t, t_dev in zip(sched.timesteps, sched.timesteps.to(cond.device)):
            eps = self.net(x, t_dev.expand(b), cond)
            x = sched.step(eps, t, x, generator=generator).prev_sample
        return x
