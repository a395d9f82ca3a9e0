"""A tiny policy overfits a tiny dataset: sampled chunks must match the demonstrated ones per observation."""
import pytest
import torch

from robolearn.device import make_generator
from robolearn.policies.consistency.configuration import ConsistencyConfig
from robolearn.policies.diffusion.configuration import DiffusionConfig
from robolearn.policies.registry import policy_class

torch.set_num_threads(1)
TINY = dict(state_dim=2, action_dim=2, down_dims=(16, 32), n_groups=4, step_embed_dim=32, state_hidden=(32,),
            state_feature_dim=16, horizon=8, n_action_steps=4)


def _data():
    state = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    obs = state[:, None, :].repeat(1, 2, 1)  # (4, n_obs=2, 2)
    t = torch.linspace(0, 1, 8)
    # four distinct smooth chunks (4, 8, 2) in action units within [-0.9, 0.9]
    act = torch.stack([torch.stack([0.9 * torch.sin(3 * t + k), 0.9 * torch.cos(2 * t - k)], -1) for k in range(4)])
    return obs, act


@pytest.mark.parametrize("kind,steps,sample_kw,max_mean_err", [
    ("diffusion", 350, {"sampler": "ddim", "steps": 10}, 0.15),
    ("consistency", 150, {"steps": 1}, 0.08),
])
def test_tiny_policy_overfits(kind, steps, sample_kw, max_mean_err, device):
    torch.manual_seed(0)
    cfg = (DiffusionConfig if kind == "diffusion" else ConsistencyConfig)(**TINY)
    policy = policy_class(kind)(cfg).to(device)
    policy.set_normalization(-torch.ones(2), torch.ones(2), -torch.ones(2), torch.ones(2))
    obs, act = (t.to(device) for t in _data())
    g = make_generator(device, 0)
    before = (policy.eval().sample_actions({"state": obs}, generator=g, **sample_kw) - act).abs().mean().item()
    opt = torch.optim.Adam(policy.parameters(), lr=3e-3)
    batch = {"state": obs.repeat(4, 1, 1), "action": act.repeat(4, 1, 1)}
    policy.train()
    for _ in range(steps):
        loss = policy.compute_loss(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    policy.eval()
    errs = [(policy.sample_actions({"state": obs}, generator=g, **sample_kw) - act).abs().mean().item() for _ in range(2)]
    assert before > 0.4, before
    assert max(errs) < max_mean_err, f"{kind}: mean abs errors {errs} after overfitting (untrained {before:.3f})"
