"""Consistency distillation from a diffusion teacher: noise grid, warm start, resume-safe training."""
import numpy as np
import pytest
import torch

from robolearn.train import checkpoint as ckpt
from robolearn.train.bc import recipe_from_dict, train_bc
from robolearn.train.distill import DistillObjective, distill, teacher_grid

from test_bc_train import POLICY, _episodes, _recipe

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "dp"
    train_bc(_recipe("diffusion"), _episodes(), out, steps=4, progress=False)
    return out


def _cm_recipe(**policy):
    return recipe_from_dict({"type": "consistency", "policy": {**POLICY, **policy},
                             "train": {"steps": 2, "batch_size": 8, "lr": 1e-12, "warmup_steps": 0,
                                       "log_every": 1, "checkpoint_every": 2, "ema": False}})


def test_teacher_grid_maps_ddpm_steps_to_ve_sigmas(teacher_dir):
    teacher = ckpt.load_policy(teacher_dir)
    sig, steps = teacher_grid(teacher, 0.002, 80.0)
    assert sig[0].item() == pytest.approx(0.002) and steps[0].item() == -1
    assert torch.all(sig[1:] > sig[:-1]) and sig[-1].item() <= 80.0
    ab = teacher.alphas_cumprod()
    t = steps[5].item()
    assert sig[5].item() == pytest.approx(((1 - ab[t]) / ab[t]).sqrt().item(), rel=1e-6)
    with pytest.raises(ValueError, match="sigma_min"):
        teacher_grid(teacher, 0.5, 80.0)
    coarse, coarse_steps = teacher_grid(teacher, 0.002, 80.0, levels=18)
    assert len(coarse) == 18 and coarse_steps[1].item() == 0 and coarse_steps[-1].item() == steps[-1].item()
    assert torch.all(coarse[1:] > coarse[:-1])


def test_teacher_step_is_ddim_in_ve_coordinates(teacher_dir):
    """One teacher step equals diffusers' DDIM step between the same two DDPM timesteps (rescaled to VE)."""
    from robolearn.policies.consistency.configuration import ConsistencyConfig
    from robolearn.policies.consistency.modeling import ConsistencyPolicy
    from robolearn.policies.diffusion.modeling import make_scheduler
    from robolearn.train.distill import student_config

    teacher = ckpt.load_policy(teacher_dir)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(), 80.0))
    obj = DistillObjective(teacher, student)
    n = 30  # grid index -> DDPM timestep steps[n]; the level below is steps[n-1] = steps[n] - 1
    t_hi, t_lo = obj.steps[n].item(), obj.steps[n - 1].item()
    g = torch.Generator().manual_seed(0)
    x_vp = torch.randn(2, 8, 2, generator=g)
    cond = teacher.encode_obs({"state": torch.randn(2, 2, 4, generator=g)})
    ab = teacher.alphas_cumprod()
    x_ve = x_vp / ab[t_hi].sqrt()
    out_ve = obj.teacher_step(x_ve, torch.tensor([n, n]), cond)
    eps = teacher.net(x_vp, torch.tensor([t_hi, t_hi]), cond)
    x0 = ((x_vp - (1 - ab[t_hi]).sqrt() * eps) / ab[t_hi].sqrt()).clamp(-1, 1)
    eps_c = (x_vp - ab[t_hi].sqrt() * x0) / (1 - ab[t_hi]).sqrt()
    expected_vp = ab[t_lo].sqrt() * x0 + (1 - ab[t_lo]).sqrt() * eps_c  # DDIM (eta=0) to t_lo
    assert torch.allclose(out_ve * ab[t_lo].sqrt(), expected_vp, atol=1e-5)
    assert make_scheduler("ddim", teacher.config).config.clip_sample


@pytest.mark.parametrize("warm", [True, False])
def test_distill_warm_start_and_checkpoint(tmp_path, teacher_dir, warm, device):
    out = tmp_path / "cp"
    res = distill(teacher_dir, _cm_recipe(warm_start=warm, parameterization="vp_eps"), _episodes(), out,
                  progress=False, device=device)
    assert res["step"] == 2
    assert {p.device.type for p in res["policy"].parameters()} == {device.type}
    name, cfg, meta = ckpt.read_config(out)
    teacher = ckpt.load_policy(teacher_dir)
    assert name == "consistency" and cfg.objective == "distill" and meta["teacher"] == str(teacher_dir)
    assert cfg.parameterization == "vp_eps" and cfg.vp_timesteps == teacher.config.num_train_timesteps
    assert cfg.down_dims == teacher.config.down_dims and cfg.horizon == teacher.config.horizon
    sig, _ = teacher_grid(teacher, cfg.sigma_min, 80.0)
    assert cfg.sigma_max == pytest.approx(sig[-1].item())
    student = ckpt.load_policy(out, expected_type="consistency")
    w_s = student.net.final[1].weight
    w_t = teacher.net.final[1].weight
    assert torch.allclose(w_s, w_t, atol=1e-6) == warm  # lr ~ 0: warm-started weights stay the teacher's
    assert torch.equal(student.action_norm.max, teacher.action_norm.max)
    chunk = student.act({"state": np.zeros(4, np.float32)})
    assert chunk.shape == (4, 2) and np.all(np.isfinite(chunk))


@pytest.mark.parametrize("target", ["consistency", "trajectory"])
def test_distill_objectives_run_on_the_device(teacher_dir, target, device):
    """Grid, teacher, student and batch on one device; the loss trains the student and leaves the teacher alone."""
    from robolearn.policies.consistency.configuration import ConsistencyConfig
    from robolearn.policies.consistency.modeling import ConsistencyPolicy
    from robolearn.train.distill import OBJECTIVES, student_config

    teacher = ckpt.load_policy(teacher_dir, device=device)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(distill_levels=6), 80.0))
    with pytest.raises(ValueError, match="teacher is on .* but the student is on"):
        OBJECTIVES[target](teacher, student.to("meta") if device.type == "cpu" else student)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(distill_levels=6), 80.0)).to(device)
    obj = OBJECTIVES[target](teacher, student)
    assert obj.sigmas.device.type == obj.steps.device.type == device.type
    g = torch.Generator().manual_seed(0)
    batch = {"state": torch.randn(4, 2, 4, generator=g).to(device),
             "action": (torch.rand(4, 8, 2, generator=g) * 2 - 1).to(device)}
    loss = obj(student, batch)
    loss.backward()
    assert loss.device.type == device.type and torch.isfinite(loss) and loss.item() > 0
    assert student.net.final[1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_distill_needs_a_diffusion_teacher(tmp_path):
    cm = tmp_path / "cm"
    train_bc(_recipe("consistency"), _episodes(), cm, steps=2, progress=False)
    with pytest.raises(ckpt.CheckpointError, match="expected a 'diffusion'"):
        distill(cm, _cm_recipe(), _episodes(), tmp_path / "out", progress=False)


def test_warm_started_student_starts_at_teacher_x0_estimate(teacher_dir):
    """vp_eps parameterization: at a teacher level sigma_t, f(x) = c_skip x + (1 - c_skip)(teacher's x0 estimate)."""
    from robolearn.policies.consistency.configuration import ConsistencyConfig
    from robolearn.policies.consistency.modeling import ConsistencyPolicy
    from robolearn.train.distill import student_config

    teacher = ckpt.load_policy(teacher_dir)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(parameterization="vp_eps"), 80.0)).eval()
    student.load_state_dict(teacher.state_dict())
    g = torch.Generator().manual_seed(0)
    cond = teacher.encode_obs({"state": torch.randn(2, 2, 4, generator=g)})
    t = 40
    ab = teacher.alphas_cumprod()[t]
    sigma = ((1 - ab) / ab).sqrt()
    x = torch.randn(2, 8, 2, generator=g) * sigma
    eps = teacher.net(x * ab.sqrt(), torch.tensor([t, t]), cond)
    c_skip = 0.25 / ((sigma - 0.002) ** 2 + 0.25)
    expected = c_skip * x + (1 - c_skip) * (x - sigma * eps)
    assert torch.allclose(student.denoise(x, sigma.expand(2), cond), expected, atol=1e-5)


def test_trajectory_target_is_the_teachers_sequential_solve(teacher_dir):
    """The CTM s=0 target equals stepping the teacher down the grid one level at a time, per sample."""
    from robolearn.policies.consistency.configuration import ConsistencyConfig
    from robolearn.policies.consistency.modeling import ConsistencyPolicy
    from robolearn.train.distill import TrajectoryDistillObjective, student_config

    teacher = ckpt.load_policy(teacher_dir)
    student = ConsistencyPolicy(student_config(teacher.config, ConsistencyConfig(distill_levels=6), 80.0))
    obj = TrajectoryDistillObjective(teacher, student)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 8, 2, generator=g) * 5
    cond = teacher.encode_obs({"state": torch.randn(3, 2, 4, generator=g)})
    n = torch.tensor([5, 2, 0])
    out = obj.teacher_solve(x, n, cond)
    for i in range(3):
        xi = x[i:i + 1]
        for level in range(int(n[i]), 0, -1):
            xi = obj.teacher_step(xi, torch.tensor([level]), cond[i:i + 1])
        torch.testing.assert_close(out[i:i + 1], xi)
    torch.testing.assert_close(out[2], x[2])  # already at the boundary: unchanged
    # the objective is differentiable in the student only
    batch = {"state": torch.randn(4, 2, 4, generator=g), "action": torch.rand(4, 8, 2, generator=g) * 2 - 1}
    loss = obj(student, batch)
    loss.backward()
    assert loss.item() > 0 and all(p.grad is None for p in teacher.parameters())


def test_unknown_distill_target_is_rejected():
    from robolearn.policies.consistency.configuration import ConsistencyConfig

    with pytest.raises(ValueError, match="distill_target"):
        ConsistencyConfig(distill_target="progressive")
