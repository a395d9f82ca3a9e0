"""The shared critic's TD step (robolearn/rl/critic.py) against hand-computed values: the target uses only
the drawn members of the target ensemble at the hook's next action plus its bonus, the clip bounds it, an
extra critic loss adds exactly itself to the gradient, and ``q()`` on the native backend is the eager Q
with the eager action gradient."""
import copy

import pytest
import torch

from robolearn.rl import native_ops
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec
from robolearn.rl.critic import BackendError, SharedCritic

SPEC = AlgoSpec(3, 2)


def _critic(backend="eager", target_clip=None, seed=0, **kw):
    cfg = AlgoConfig(hidden=(8,), num_critics=3, critic_subset=2, backend=backend, target_clip=target_clip,
                     fused_adam=False, **kw)
    torch.manual_seed(seed)
    c = SharedCritic(cfg, SPEC, torch.device("cpu"), algo_name="critic-test")
    with torch.no_grad():  # non-trivial LayerNorm affine in the online and target nets
        for net in (c.net, c.target):
            ln = net.net.net[1]
            ln.weight.normal_(1.0, 0.3)
            ln.bias.normal_(0.0, 0.3)
    return c


def _need_native():
    why = native_ops.load()
    if why is not None:  # tests/test_rl_native_ops.py fails the suite for this when a compiler exists
        pytest.skip(f"native operators unavailable: {why}")


def _data(b=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(obs={"state": torch.randn(b, 3, generator=g)}, action=torch.rand(b, 2, generator=g) * 2 - 1,
                reward=torch.randn(b, generator=g), discount=torch.rand(b, generator=g),
                next_obs={"state": torch.randn(b, 3, generator=g)}, next_action=torch.rand(b, 2, generator=g) * 2 - 1,
                bonus=torch.randn(b, generator=g))


class _Hook:
    """A next-action hook that returns fixed values and records the features it was given."""

    def __init__(self, action, bonus):
        self.action, self.bonus, self.seen = action, bonus, None

    def __call__(self, next_feat):
        self.seen = next_feat.clone()
        return self.action, self.bonus


def test_td_target_is_reward_plus_discount_times_min_over_drawn_members_plus_bonus():
    c = _critic()
    d = _data()
    with torch.no_grad():  # target Q_i(s', a') = c_i exactly: zero last-layer weights, per-member bias
        c.target.net.net[3].weight.zero_()
        c.target.net.net[3].bias.copy_(torch.tensor([2.0, 0.5, -3.0]).view(3, 1, 1))
    r, disc, bonus = d["reward"], d["discount"], d["bonus"]
    hook = _Hook(d["next_action"], bonus)
    y = c.td_target(r, disc, d["next_obs"], hook, torch.tensor([0, 1]))
    assert torch.allclose(y, r + disc * (0.5 + bonus), atol=1e-6)  # member 2 (-3) was not drawn
    y = c.td_target(r, disc, d["next_obs"], hook, torch.tensor([2, 0]))
    assert torch.allclose(y, r + disc * (-3.0 + bonus), atol=1e-6)
    y = c.td_target(r, disc, d["next_obs"], _Hook(d["next_action"], None), torch.tensor([1, 0]))
    assert torch.allclose(y, r + disc * 0.5, atol=1e-6)  # no bonus: plain bootstrap
    assert not y.requires_grad


def test_td_target_with_random_target_weights_equals_per_member_modules():
    """Against an independent evaluation: each target member as a plain nn.Sequential, at the hook's action,
    on the normalised next state (the hook receives exactly those features)."""
    c = _critic(seed=3)
    d = _data(b=6, seed=1)
    c.encoder.set_state_stats(torch.randn(20, 3) * 2 + 1)
    with torch.no_grad():  # the undrawn member 1 is the lowest: a min over all members would pick it
        c.target.net.net[3].bias[1] -= 5.0
    members = torch.tensor([2, 0])
    hook = _Hook(d["next_action"], d["bonus"])
    y = c.td_target(d["reward"], d["discount"], d["next_obs"], hook, members)
    norm = c.encoder.state_norm
    feat = 2 * (d["next_obs"]["state"] - norm.min) / (norm.max - norm.min) - 1
    assert torch.allclose(hook.seen, feat, atol=1e-6)
    assert not torch.allclose(feat, d["next_obs"]["state"], atol=1e-2)  # normalisation is not the identity here
    x = torch.cat([feat, d["next_action"]], -1)
    with torch.no_grad():
        per_member = torch.stack([c.target.net.member(i)(x).squeeze(-1) for i in range(3)])
    expected = d["reward"] + d["discount"] * (per_member[[2, 0]].min(0).values + d["bonus"])
    assert torch.allclose(y, expected, atol=1e-5)
    everyone = d["reward"] + d["discount"] * (per_member.min(0).values + d["bonus"])
    assert not torch.allclose(y, everyone, atol=1e-4)  # the undrawn member would have changed it
    # the target network, not the online one
    online = torch.stack([c.net.net.member(i)(x).squeeze(-1) for i in range(3)]).detach()
    assert not torch.allclose(per_member, online, atol=1e-3)


def test_target_clip_clamps_the_td_target():
    clipped, free = _critic(target_clip=(-0.25, 0.4), seed=5), _critic(seed=5)
    d = _data(b=64, seed=2)
    members = torch.tensor([0, 2])
    y_free = free.td_target(d["reward"], d["discount"], d["next_obs"], _Hook(d["next_action"], d["bonus"]), members)
    y = clipped.td_target(d["reward"], d["discount"], d["next_obs"], _Hook(d["next_action"], d["bonus"]), members)
    assert (y_free < -0.25).any() and (y_free > 0.4).any()  # the clip has work to do
    assert torch.equal(y, y_free.clamp(-0.25, 0.4))


def test_extra_loss_adds_exactly_itself_and_its_metrics_are_returned():
    a, ref, plain = _critic(seed=7), _critic(seed=7), _critic(seed=7)
    for p, q in zip(a.params, ref.params):
        assert torch.equal(p, q)
    d = _data(b=8, seed=3)
    members = torch.tensor([1, 2])
    seen = {}

    def extra(feat, q):
        seen["feat"], seen["q_shape"], seen["q_grad"] = feat.detach().clone(), tuple(q.shape), q.requires_grad
        loss = 0.3 * (q - 1.0).pow(2).mean()
        return loss, {"cql_term": float(loss.detach())}

    target_before = [t.clone() for t in a._target_params]
    metrics, feat = a.update(d["obs"], d["action"], d["reward"], d["discount"], d["next_obs"],
                             _Hook(d["next_action"], d["bonus"]), members, extra_loss=extra)
    assert seen["q_shape"] == (3, 8) and seen["q_grad"]
    assert torch.allclose(seen["feat"], feat) and not feat.requires_grad

    # by hand on an identical critic: TD loss + the extra term, its gradient
    y = ref.td_target(d["reward"], d["discount"], d["next_obs"], _Hook(d["next_action"], d["bonus"]), members)
    q = ref.net(ref.encode(d["obs"]), d["action"])
    td = ((q - y.unsqueeze(0)) ** 2).mean()
    cql = 0.3 * (q - 1.0).pow(2).mean()
    grads = torch.autograd.grad(td + cql, list(ref.net.parameters()), retain_graph=True)
    assert metrics["critic_loss"] == pytest.approx(float((td + cql).detach()), rel=1e-6)
    assert metrics["cql_term"] == pytest.approx(float(cql.detach()), rel=1e-6)
    assert metrics["q_mean"] == pytest.approx(float(q.detach().mean()), rel=1e-5, abs=1e-7)
    for p, g in zip(a.net.parameters(), grads):
        assert torch.allclose(p.grad, g, atol=1e-6)
    # without the hook the gradient is the TD loss's alone, and differs
    m_plain, _ = plain.update(d["obs"], d["action"], d["reward"], d["discount"], d["next_obs"],
                              _Hook(d["next_action"], d["bonus"]), members)
    assert "cql_term" not in m_plain
    assert m_plain["critic_loss"] == pytest.approx(float(td.detach()), rel=1e-6)
    td_grads = torch.autograd.grad(td, list(ref.net.parameters()))
    last_w = list(plain.net.parameters())[-2]
    assert torch.allclose(last_w.grad, td_grads[-2], atol=1e-6)
    assert not torch.allclose(last_w.grad, grads[-2], atol=1e-4)
    # one Adam step on the online net, and the target moved by exactly tau towards it
    for t0, t1, p in zip(target_before, a._target_params, a._net_params):
        assert torch.allclose(t1, t0 + a.cfg.tau * (p - t0), atol=1e-7)
    assert a.opt.state[a._net_params[0]]["step"].item() == 1.0


def test_native_q_equals_eager_q_and_its_action_gradient_is_autograds():
    _need_native()
    eager, native = _critic("eager", seed=11), _critic("native", seed=11)
    assert native.backend == "native" and eager.backend == "eager"
    native.net.load_state_dict(eager.net.state_dict())  # the same weights, whatever the backend's init did
    native.target.load_state_dict(eager.target.state_dict())
    g = torch.Generator().manual_seed(4)
    feat = torch.randn(40, 3, generator=g)
    a_e = (torch.rand(40, 2, generator=g) * 2 - 1).requires_grad_(True)
    a_n = a_e.detach().clone().requires_grad_(True)
    q_e, q_n = eager.q(feat, a_e), native.q(feat, a_n)
    assert q_n.shape == (3, 40)
    assert torch.allclose(q_n, q_e.detach(), atol=1e-5)
    w = torch.randn(3, 40, generator=g)  # a weighted sum, so each member's Jacobian counts separately
    (g_e,) = torch.autograd.grad((w * q_e).sum(), a_e)
    (g_n,) = torch.autograd.grad((w * q_n).sum(), a_n)
    assert torch.allclose(g_n, g_e, atol=1e-5)
    assert g_e.abs().max() > 1e-3  # not a vacuous comparison of zeros
    assert all(p.grad is None for p in native.net.parameters())  # actor losses never train the critic
    # the target's subset-min runs the drawn members only, with the eager numbers
    members = torch.tensor([2, 1])
    assert torch.allclose(native.target_min(feat, a_n.detach(), members),
                          eager.target_min(feat, a_e.detach(), members), atol=1e-5)


def test_native_backend_refuses_an_extra_critic_loss():
    _need_native()
    c = _critic("native")
    d = _data()
    with pytest.raises(BackendError, match="native"):
        c.update(d["obs"], d["action"], d["reward"], d["discount"], d["next_obs"],
                 _Hook(d["next_action"], None), torch.tensor([0, 1]),
                 extra_loss=lambda feat, q: (q.mean(), {}))
    with pytest.raises(BackendError, match="critic-test"):  # the algorithm is named when it declares the loss
        SharedCritic(copy.deepcopy(c.cfg), SPEC, torch.device("cpu"), algo_name="critic-test", extra_loss=True)
