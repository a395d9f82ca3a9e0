"""Consistency distillation of a DDPM Diffusion Policy teacher into a ConsistencyPolicy.

Variant (simple and exact for our teacher): consistency distillation (Song et al. 2023) on the
teacher's own noise levels. A DDPM step t is the VE level sigma_t = sqrt((1 - abar_t) / abar_t)
(x_t / sqrt(abar_t) = x0 + sigma_t eps), so the grid is [sigma_min, sigma_0, ..., sigma_k] with
sigma_k <= sigma_max. Each update: pick adjacent levels s_n < s_{n+1}, noise a demo chunk to
s_{n+1}, take ONE deterministic teacher DDIM step to s_n (with the teacher's clip_sample), and pull
f(x_{n+1}, s_{n+1}) towards stop-grad f(x_hat_n, s_n) with a pseudo-Huber loss; plus CTM's denoising
term dsm_weight * ||f(x_{n+1}, s_{n+1}) - x0||^2.

Parameterization (recipe field): 'edm' (bounded c_out; default) or 'vp_eps', which keeps the teacher's
network conventions (f = c_skip x + (1 - c_skip)(x - sigma eps_net)) so that a warm start from the
teacher weights begins exactly at the teacher's one-step x0 estimate. Measured here (docs/results_bc.md):
'vp_eps' + warm start failed at one step (errors in eps are multiplied by sigma up to ~64), and 'edm'
warm-started from the (differently parameterized) teacher weights did worse than a fresh 'edm' student.
"""
from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import torch

from robolearn.device import resolve_device
from robolearn.policies import losses
from robolearn.policies.configuration import PolicyConfig
from robolearn.policies.consistency.configuration import ConsistencyConfig
from robolearn.policies.consistency.modeling import ConsistencyPolicy


def student_config(teacher_cfg: PolicyConfig, recipe_cfg: ConsistencyConfig, sigma_max: float) -> ConsistencyConfig:
    """Architecture and horizons from the teacher; consistency settings from the recipe."""
    shared = {f.name: getattr(teacher_cfg, f.name) for f in fields(PolicyConfig)}
    own = {f.name: getattr(recipe_cfg, f.name) for f in fields(ConsistencyConfig) if f.name not in shared}
    own.update(objective="distill", sigma_max=float(sigma_max),
               vp_timesteps=int(teacher_cfg.num_train_timesteps), vp_beta_schedule=str(teacher_cfg.beta_schedule))
    return ConsistencyConfig(**shared, **own)


def teacher_grid(teacher, sigma_min: float, sigma_max: float, levels: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmas ascending, teacher timestep per sigma; -1 for the sigma_min boundary level).

    ``levels`` > 0 keeps levels - 1 teacher steps spread evenly (a coarser grid: consistency propagates
    from the boundary in fewer updates, and one teacher DDIM jump per pair stays accurate)."""
    sig = losses.vp_sigmas(teacher.alphas_cumprod())
    keep = torch.nonzero(sig <= sigma_max).flatten()
    if levels and 1 < levels - 1 < len(keep):
        keep = keep[torch.linspace(0, len(keep) - 1, levels - 1).round().long()]
    if len(keep) == 0:
        raise ValueError(f"no teacher noise level is <= sigma_max={sigma_max} (smallest {float(sig.min()):.3g})")
    if float(sig[keep[0]]) <= sigma_min:
        raise ValueError(f"sigma_min={sigma_min} must be below the teacher's smallest level {float(sig[keep[0]]):.3g}")
    sigmas = torch.cat([torch.tensor([sigma_min]), sig[keep]])
    steps = torch.cat([torch.tensor([-1]), keep])
    return sigmas, steps


class DistillObjective:
    def __init__(self, teacher, student: ConsistencyPolicy):
        """Teacher and student must already be on the training device: the noise grid is put there too."""
        if teacher.device != student.device:
            raise ValueError(f"teacher is on {teacher.device} but the student is on {student.device}")
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        c = student.config
        sigmas, steps = teacher_grid(teacher, c.sigma_min, c.sigma_max, c.distill_levels)
        self.sigmas, self.steps = sigmas.to(student.device), steps.to(student.device)
        self.huber_c = c.huber_c or losses.default_huber_c(c.horizon * c.action_dim)
        self.dsm_weight = c.dsm_weight
        self.clip = bool(getattr(teacher.config, "clip_sample", True))

    @torch.no_grad()
    def teacher_step(self, x_hi: torch.Tensor, n_hi: torch.Tensor, cond_t: torch.Tensor) -> torch.Tensor:
        s_hi, s_lo = self.sigmas[n_hi], self.sigmas[n_hi - 1]
        x_vp = x_hi / torch.sqrt(1.0 + s_hi**2).view(-1, 1, 1)
        eps = self.teacher.net(x_vp, self.steps[n_hi], cond_t)
        x0_hat = x_hi - s_hi.view(-1, 1, 1) * eps
        if self.clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        return losses.ddim_ve_step(x_hi, x0_hat, s_hi, s_lo)

    def __call__(self, student: ConsistencyPolicy, batch: dict[str, Any]) -> torch.Tensor:
        cond = student.encode_obs(batch)
        with torch.no_grad():
            cond_t = self.teacher.encode_obs(batch)
        x0 = student.action_norm.normalize(batch["action"].float())
        n_hi = torch.randint(1, len(self.sigmas), (x0.shape[0],), device=x0.device)
        s_hi = self.sigmas[n_hi]
        x_hi = x0 + s_hi.view(-1, 1, 1) * torch.randn_like(x0)
        x_lo = self.teacher_step(x_hi, n_hi, cond_t)
        with torch.no_grad():
            target = student.denoise(x_lo, self.sigmas[n_hi - 1], cond.detach())
        pred = student.denoise(x_hi, s_hi, cond)
        return losses.consistency_distill_loss(pred, target, x0, self.huber_c, self.dsm_weight)


class TrajectoryDistillObjective(DistillObjective):
    """CTM's jump from the top level straight to clean data, with the teacher's full solve as target.

    Noise a demo chunk to a random grid level, run the teacher's deterministic DDIM solve down the
    (coarse) grid to sigma_min, and regress the student's one-jump estimate onto it (pseudo-Huber),
    plus the same denoising term. One-step acting starts at the top level, where the regression is
    exactly "reproduce the teacher's sampler from this noise".
    """

    @torch.no_grad()
    def teacher_solve(self, x: torch.Tensor, n: torch.Tensor, cond_t: torch.Tensor) -> torch.Tensor:
        n = n.clone()
        while bool((n > 0).any()):
            active = n > 0
            x_next = self.teacher_step(x[active], n[active], cond_t[active])
            x = x.clone()
            x[active] = x_next
            n[active] -= 1
        return x

    def __call__(self, student: ConsistencyPolicy, batch: dict[str, Any]) -> torch.Tensor:
        cond = student.encode_obs(batch)
        with torch.no_grad():
            cond_t = self.teacher.encode_obs(batch)
        x0 = student.action_norm.normalize(batch["action"].float())
        top = len(self.sigmas) - 1
        # half the batch at the top level (what one-step acting uses), half anywhere on the grid
        n_hi = torch.randint(1, len(self.sigmas), (x0.shape[0],), device=x0.device)
        n_hi[: x0.shape[0] // 2] = top
        s_hi = self.sigmas[n_hi]
        x_hi = x0 + s_hi.view(-1, 1, 1) * torch.randn_like(x0)
        target = self.teacher_solve(x_hi, n_hi, cond_t)
        pred = student.denoise(x_hi, s_hi, cond)
        return losses.consistency_distill_loss(pred, target, x0, self.huber_c, self.dsm_weight)


OBJECTIVES = {"consistency": DistillObjective, "trajectory": TrajectoryDistillObjective}


def distill(teacher_path: str | Path, recipe, episodes, out: str | Path, *, steps: int | None = None,
            resume: bool = False, data_path: str | None = None, progress: bool = True,
            device: str | torch.device = "cpu") -> dict[str, Any]:
    from robolearn.train import checkpoint as ckpt
    from robolearn.train.bc import ChunkDataset, _plain, run_training

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    teacher = ckpt.load_policy(teacher_path, expected_type="diffusion", device=dev)
    if recipe.type != "consistency":
        raise ValueError(f"distill needs a consistency recipe, got type {recipe.type!r}")
    rc = recipe.policy
    sigmas, _ = teacher_grid(teacher, rc.sigma_min, rc.sigma_max, rc.distill_levels)
    torch.manual_seed(recipe.train.seed)  # a fresh student is initialised on CPU: the same weights on any device
    student = ConsistencyPolicy(student_config(teacher.config, rc, float(sigmas[-1])))
    own = student.state_dict()
    src = teacher.state_dict()
    keep = [k for k in own if k in src and (rc.warm_start or k.startswith(ckpt.NORM_PREFIXES))]
    student.load_state_dict({**own, **{k: src[k] for k in keep}})
    student.to(dev)
    tc = teacher.config
    episodes = list(episodes)
    dataset = ChunkDataset(episodes, tc.n_obs_steps, tc.horizon, tc.cameras)
    if dataset.state_dim != tc.state_dim or dataset.action_dim != tc.action_dim:
        raise ValueError(
            f"data dims (state {dataset.state_dim}, action {dataset.action_dim}) differ from the teacher's "
            f"({tc.state_dim}, {tc.action_dim})"
        )
    meta = {"data": data_path, "trainer": "distill", "teacher": str(teacher_path), "train": _plain(recipe.train)}
    envs = sorted({str(ep.meta["env"]) for ep in episodes if isinstance(getattr(ep, "meta", None), dict)
                   and ep.meta.get("env")})
    env = envs[0] if len(envs) == 1 else ckpt.read_config(teacher_path)[2].get("env")
    if env:  # the student acts in the teacher's env: eval / serve / collect check it as for a BC run
        meta["env"] = env
    objective = OBJECTIVES[student.config.distill_target](teacher, student)
    return run_training(student, objective, dataset, recipe.train, out,
                        steps=steps, resume=resume, meta=meta, progress=progress, device=dev)
