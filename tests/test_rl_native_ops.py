"""The C++ learner operators (robolearn/rl/native_ops.py) against autograd and torch.optim."""
import copy

import pytest
import torch

from robolearn.rl import native_ops as native
from robolearn.rl.encoders import EncoderConfig
from robolearn.rl.networks import Critic
from robolearn.rl.sac import SACAgent, SACConfig

torch.set_num_threads(2)  # two threads: members are split between them, as in training

pytestmark = pytest.mark.skipif(native.load() is not None,
                                reason=f"native learner operators cannot be built here: {native.load()}")


def _critic(members=4, feat=5, act=3, hidden=(16, 12), seed=0):
    torch.manual_seed(seed)
    c = Critic(feat, act, hidden, members, True)
    with torch.no_grad():  # non-trivial LayerNorm affine so a wrong gamma/beta gradient would show
        for name, p in c.named_parameters():
            if p.shape[1] == 1 and "net.net.0" not in name:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.3)
    return c


def _params(c):
    return [p.detach() for p in c.parameters()]


@pytest.mark.parametrize("hidden", [(16,), (16, 12), (8, 16, 8)])
def test_forward_equals_the_module_for_any_member_subset(hidden):
    c = _critic(hidden=hidden)
    feat, act = torch.randn(7, 5), torch.randn(7, 3)
    x = torch.cat([feat, act], -1)
    full = c(feat, act).detach()
    assert torch.allclose(native.forward(x, _params(c), torch.arange(4)), full, atol=1e-5)
    members = torch.tensor([3, 0])
    assert torch.allclose(native.forward(x, _params(c), members), full[[3, 0]], atol=1e-5)


def test_q_input_grad_is_the_per_member_action_jacobian():
    c = _critic()
    feat, act = torch.randn(9, 5), torch.randn(9, 3, requires_grad=True)
    q = c(feat, act)
    jac = torch.stack([torch.autograd.grad(q[e].sum(), act, retain_graph=True)[0] for e in range(4)])
    q_n, jac_n = native.q_input_grad(torch.cat([feat, act.detach()], -1), _params(c), 5)
    assert torch.allclose(q_n, q.detach(), atol=1e-5)
    assert jac_n.shape == (4, 9, 3)
    assert torch.allclose(jac_n, jac, atol=1e-5)


@pytest.mark.parametrize("hidden", [(16,), (16, 12), (8, 16, 8)])
def test_critic_step_equals_autograd_adam_and_polyak(hidden):
    """Three steps of the operator = three steps of mean-squared TD error + torch.optim.Adam + lerp."""
    ref = _critic(hidden=hidden, seed=1)
    ref_target = copy.deepcopy(ref)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, betas=(0.8, 0.95), eps=1e-6)
    mine = copy.deepcopy(ref)
    params, target = _params(mine), _params(copy.deepcopy(ref))
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    step = torch.tensor(0.0)
    for i in range(3):
        g = torch.Generator().manual_seed(i)
        x, y = torch.randn(10, 8, generator=g), torch.randn(10, generator=g)
        q_ref = ref.net(x).squeeze(-1)
        loss_ref = ((q_ref - y) ** 2).mean()
        opt.zero_grad()
        loss_ref.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ref_target.parameters()), list(ref.parameters()), 0.1)
        step += 1
        loss, q = native.critic_step(x, y, params, m, v, target, step, 1e-2, 0.8, 0.95, 1e-6, 0.1)
        assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
        assert torch.allclose(q, q_ref.detach(), atol=1e-5)  # Q before the step
    for p_ref, p, t_ref, t, mm, vv in zip(ref.parameters(), params, ref_target.parameters(), target, m, v):
        assert torch.allclose(p, p_ref, atol=2e-5)
        assert torch.allclose(t, t_ref, atol=2e-5)
        assert torch.allclose(mm, opt.state[p_ref]["exp_avg"], atol=1e-6)
        assert torch.allclose(vv, opt.state[p_ref]["exp_avg_sq"], atol=1e-7)


def test_bad_inputs_are_named():
    c = _critic()
    params = _params(c)
    with pytest.raises(RuntimeError, match="has 7 features, the ensemble takes 8"):
        native.forward(torch.randn(4, 7), params, torch.arange(2))
    with pytest.raises(RuntimeError, match="member index 9 out of range"):
        native.forward(torch.randn(4, 8), params, torch.tensor([9]))
    with pytest.raises(RuntimeError, match="contiguous float32"):
        native.forward(torch.randn(8, 4).t(), params, torch.arange(2))
    with pytest.raises(RuntimeError, match="4 tensors per hidden layer"):
        native.forward(torch.randn(4, 8), params[:-1], torch.arange(2))
    with pytest.raises(RuntimeError, match="TD target"):
        native.critic_step(torch.randn(4, 8), torch.randn(5), params, [torch.zeros_like(p) for p in params],
                           [torch.zeros_like(p) for p in params], _params(copy.deepcopy(c)), torch.tensor(1.0),
                           1e-3, 0.9, 0.999, 1e-8, 0.005)


def test_which_critics_can_use_the_operators():
    state = SACAgent(SACConfig(hidden=(8, 8), num_critics=2), 3, 2)
    assert native.supported(state) is None
    no_ln = SACAgent(SACConfig(hidden=(8, 8), num_critics=2, layer_norm=False), 3, 2)
    assert "LayerNorm" in native.supported(no_ln)
    images = SACAgent(SACConfig(hidden=(8, 8), num_critics=2,
                                encoder=EncoderConfig(channels=4, conv_layers=1, feature_dim=5)),
                      3, 2, image_shapes={"front": (12, 12, 3)})
    assert "encoder" in native.supported(images)


def test_without_the_operators_the_update_falls_back_to_torch_compile(monkeypatch):
    """A machine that cannot build the extension (no compiler, no exported BLAS) warns once and keeps the
    functional update, with the reference numbers."""
    from robolearn.rl.fused import FusedUpdate

    monkeypatch.setitem(native._state, "error", "RuntimeError: simulated: no C++ compiler")
    cfg = SACConfig(hidden=(8, 8), num_critics=3, batch_size=8, fused_adam=False)
    agent = SACAgent(cfg, 3, 2, seed=1)
    with pytest.warns(RuntimeWarning, match="simulated: no C\\+\\+ compiler"):
        agent._fused = FusedUpdate(agent, compile=False)
    assert not agent._fused.native
    ref = SACAgent(cfg, 3, 2, seed=1)
    g = torch.Generator().manual_seed(0)
    batch = {"obs": {"state": torch.randn(8, 3, generator=g)}, "next_obs": {"state": torch.randn(8, 3, generator=g)},
             "action": torch.rand(8, 2, generator=g) * 2 - 1, "reward": torch.randn(8, generator=g),
             "discount": torch.full((8,), 0.99)}
    mf, mr = agent.update(batch), ref.update(batch)
    for k in mr:
        assert mf[k] == pytest.approx(mr[k], rel=1e-5, abs=1e-6), k


def test_native_update_after_loading_a_checkpoint_uses_the_loaded_state():
    """The operator's cached argument lists follow a checkpoint load (new optimizer state tensors)."""
    from robolearn.rl.fused import FusedUpdate

    cfg = SACConfig(hidden=(8, 8), num_critics=3, batch_size=8, fused_adam=False)

    def batch(seed):
        g = torch.Generator().manual_seed(seed)
        return {"obs": {"state": torch.randn(8, 3, generator=g)}, "next_obs": {"state": torch.randn(8, 3, generator=g)},
                "action": torch.rand(8, 2, generator=g) * 2 - 1, "reward": torch.randn(8, generator=g),
                "discount": torch.full((8,), 0.99)}

    a, b, ref = (SACAgent(cfg, 3, 2, seed=s) for s in (1, 2, 1))
    for agent in (a, b):
        agent._fused = FusedUpdate(agent, compile=False, native=True)
        assert agent._fused.native
    for i in range(3):
        a.update(batch(i)), ref.update(batch(i))
    b.update(batch(7))  # b's cached lists point at its own (soon replaced) optimizer state
    b.load_state_tensors(a.state_tensors())
    mb, ma, mr = b.update(batch(3)), a.update(batch(3)), ref.update(batch(3))
    for k in mr:
        assert mb[k] == pytest.approx(ma[k], rel=1e-6, abs=1e-7), k
        assert ma[k] == pytest.approx(mr[k], rel=1e-5, abs=1e-6), k
    assert b.state_tensors()["critic_opt.state.0.step"].item() == 4.0
