"""The batched critic ensemble computes exactly what E separate modules would."""
import torch

from robolearn.policies.q_ensemble import Critic, EnsembleMLP, LoopCritic

torch.set_num_threads(1)


def test_batched_ensemble_equals_per_member_modules():
    torch.manual_seed(0)
    net = EnsembleMLP(members=5, in_dim=7, hidden=(16, 12), out_dim=3, layer_norm=True)
    with torch.no_grad():  # non-trivial LayerNorm affine so a member mix-up would show
        for m in net.modules():
            if hasattr(m, "weight") and m.weight.dim() == 3 and m.weight.shape[1] == 1:
                m.weight.normal_()
                m.bias.normal_()
    x = torch.randn(9, 7)
    out = net(x)
    assert out.shape == (5, 9, 3)
    for i in range(5):
        assert torch.allclose(out[i], net.member(i)(x), atol=1e-5)
    # per-member inputs (E, B, in) take the baddbmm path and must agree too
    xs = torch.randn(5, 9, 7)
    out2 = net(xs)
    for i in range(5):
        assert torch.allclose(out2[i], net.member(i)(xs[i]), atol=1e-5)


def test_batched_ensemble_gradients_equal_per_member():
    torch.manual_seed(1)
    critic = Critic(feature_dim=4, action_dim=2, hidden=(8, 8), members=3, layer_norm=True)
    loop = LoopCritic(critic)
    f, a = torch.randn(6, 4), torch.randn(6, 2)
    q_b, q_l = critic(f, a), loop(f, a)
    assert q_b.shape == (3, 6)
    assert torch.allclose(q_b, q_l, atol=1e-5)
    q_b.pow(2).sum().backward()
    q_l.pow(2).sum().backward()
    first = critic.net.net[0]
    for i, m in enumerate(loop.members):
        assert torch.allclose(first.weight.grad[i], m[0].weight.grad.T, atol=1e-4)
        assert torch.allclose(first.bias.grad[i, 0], m[0].bias.grad, atol=1e-4)


def test_members_are_initialised_differently():
    net = EnsembleMLP(4, 3, (8,), 1)
    w = net.net[0].weight
    assert not torch.allclose(w[0], w[1])
