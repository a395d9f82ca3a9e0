"""The C++ critic operators (robolearn/rl/native_ops.py) against autograd and torch.optim, and which
critics and algorithms the ``native`` backend accepts.

The operators split the ensemble's members across threads and only then reduce per thread, so the
operator checks run with two torch threads (set inside each test, restored after) at a training-size
batch of 256 as well as at a small one. On a machine with a C++ compiler a failed build fails the suite.
"""
import copy
import shutil

import pytest
import torch

from robolearn.policies.features import EncoderConfig
from robolearn.rl import native_ops as native
from robolearn.rl.algorithm import AlgoSpec
from robolearn.rl.critic import BackendError
from robolearn.policies.q_ensemble import Critic
from robolearn.rl.sac import SAC, SACConfig


def _compiler():
    return shutil.which("c++") or shutil.which("g++")


def test_native_operators_build_where_a_compiler_exists():
    cxx = _compiler()
    if cxx is None:
        pytest.skip("no C++ compiler (c++ / g++) on PATH: the native backend cannot be built on this machine")
    why = native.load()
    assert why is None, f"a C++ compiler exists ({cxx}) but the native critic operators failed to build: {why}"
    assert hasattr(torch.ops.robolearn_rl, "critic_step")


@pytest.fixture
def ops():
    why = native.load()
    if why is not None:  # with a compiler, test_native_operators_build_where_a_compiler_exists fails instead
        pytest.skip(f"native critic operators unavailable: {why}")
    return native


@pytest.fixture
def two_threads():
    """Two threads: the members are split between them, as in training."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


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


@pytest.mark.parametrize("batch", [7, 256])
@pytest.mark.parametrize("hidden", [(16,), (16, 12), (8, 16, 8)])
def test_forward_equals_the_module_for_any_member_subset(ops, two_threads, hidden, batch):
    c = _critic(hidden=hidden)
    feat, act = torch.randn(batch, 5), torch.randn(batch, 3)
    x = torch.cat([feat, act], -1)
    full = c(feat, act).detach()
    assert torch.allclose(ops.forward(x, _params(c), torch.arange(4)), full, atol=1e-5)
    members = torch.tensor([3, 0])
    assert torch.allclose(ops.forward(x, _params(c), members), full[[3, 0]], atol=1e-5)


@pytest.mark.parametrize("batch", [9, 256])
def test_q_input_grad_is_the_per_member_action_jacobian(ops, two_threads, batch):
    c = _critic()
    feat, act = torch.randn(batch, 5), torch.randn(batch, 3, requires_grad=True)
    q = c(feat, act)
    jac = torch.stack([torch.autograd.grad(q[e].sum(), act, retain_graph=True)[0] for e in range(4)])
    q_n, jac_n = ops.q_input_grad(torch.cat([feat, act.detach()], -1), _params(c), 5)
    assert torch.allclose(q_n, q.detach(), atol=1e-5)
    assert jac_n.shape == (4, batch, 3)
    assert torch.allclose(jac_n, jac, atol=1e-5)


@pytest.mark.parametrize("batch,members", [(10, 4), (256, 4), (256, 5)])
@pytest.mark.parametrize("hidden", [(16,), (16, 12), (8, 16, 8)])
def test_critic_step_equals_autograd_adam_and_polyak(ops, two_threads, hidden, batch, members):
    """Three steps of the operator = three steps of mean-squared TD error + torch.optim.Adam + lerp, with
    the members split across two threads (5 members: an uneven split)."""
    assert torch.get_num_threads() == 2
    ref = _critic(members=members, hidden=hidden, seed=1)
    ref_target = copy.deepcopy(ref)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2, betas=(0.8, 0.95), eps=1e-6)
    mine = copy.deepcopy(ref)
    params, target = _params(mine), _params(copy.deepcopy(ref))
    m, v = [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params]
    step = torch.tensor(0.0)
    for i in range(3):
        g = torch.Generator().manual_seed(i)
        x, y = torch.randn(batch, 8, generator=g), torch.randn(batch, generator=g)
        q_ref = ref.net(x).squeeze(-1)
        loss_ref = ((q_ref - y) ** 2).mean()
        opt.zero_grad()
        loss_ref.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(ref_target.parameters()), list(ref.parameters()), 0.1)
        step += 1
        loss, q = ops.critic_step(x, y, params, m, v, target, step, 1e-2, 0.8, 0.95, 1e-6, 0.1)
        assert loss.item() == pytest.approx(loss_ref.item(), rel=1e-5)
        assert torch.allclose(q, q_ref.detach(), atol=1e-5)  # Q before the step
    for p_ref, p, t_ref, t, mm, vv in zip(ref.parameters(), params, ref_target.parameters(), target, m, v):
        assert torch.allclose(p, p_ref, atol=2e-5)
        assert torch.allclose(t, t_ref, atol=2e-5)
        assert torch.allclose(mm, opt.state[p_ref]["exp_avg"], atol=1e-6)
        assert torch.allclose(vv, opt.state[p_ref]["exp_avg_sq"], atol=1e-7)
    assert not torch.allclose(params[0], _params(_critic(members=members, hidden=hidden, seed=1))[0])  # it moved


def test_bad_inputs_are_named(ops):
    c = _critic()
    params = _params(c)
    with pytest.raises(RuntimeError, match="has 7 features, the ensemble takes 8"):
        ops.forward(torch.randn(4, 7), params, torch.arange(2))
    with pytest.raises(RuntimeError, match="member index 9 out of range"):
        ops.forward(torch.randn(4, 8), params, torch.tensor([9]))
    with pytest.raises(RuntimeError, match="contiguous float32"):
        ops.forward(torch.randn(8, 4).t(), params, torch.arange(2))
    with pytest.raises(RuntimeError, match="4 tensors per hidden layer"):
        ops.forward(torch.randn(4, 8), params[:-1], torch.arange(2))
    with pytest.raises(RuntimeError, match="in_start out of range"):
        ops.q_input_grad(torch.randn(4, 8), params, 8)
    with pytest.raises(RuntimeError, match="TD target"):
        ops.critic_step(torch.randn(4, 8), torch.randn(5), params, [torch.zeros_like(p) for p in params],
                        [torch.zeros_like(p) for p in params], _params(copy.deepcopy(c)), torch.tensor(1.0),
                        1e-3, 0.9, 0.999, 1e-8, 0.005)
    with pytest.raises(RuntimeError, match="optimizer state / target 0 must match"):
        ops.critic_step(torch.randn(4, 8), torch.randn(4), params, [torch.zeros(1) for _ in params],
                        [torch.zeros_like(p) for p in params], _params(copy.deepcopy(c)), torch.tensor(1.0),
                        1e-3, 0.9, 0.999, 1e-8, 0.005)


# Which critics and algorithms the native backend runs ---------------------------------------------------
SMALL = dict(hidden=(8, 8), num_critics=3, fused_adam=False)


def test_backend_auto_is_native_for_state_observations(ops):
    assert SAC(SACConfig(**SMALL), AlgoSpec(3, 2)).backend == "native"
    assert SAC(SACConfig(**SMALL, backend="native"), AlgoSpec(3, 2)).backend == "native"
    assert SAC(SACConfig(**SMALL, backend="eager"), AlgoSpec(3, 2)).backend == "eager"
    # auto falls back to eager where native cannot run, without a warning (nothing is wrong)
    images = AlgoSpec(3, 2, {"front": (16, 16, 3)})
    enc = EncoderConfig(channels=4, conv_layers=1, feature_dim=5)
    assert SAC(SACConfig(**SMALL, encoder=enc), images).backend == "eager"
    assert SAC(SACConfig(**SMALL, layer_norm=False), AlgoSpec(3, 2)).backend == "eager"


def test_native_on_an_image_spec_is_an_error_naming_backend_and_algorithm(ops):
    images = AlgoSpec(3, 2, {"front": (16, 16, 3)})
    enc = EncoderConfig(channels=4, conv_layers=1, feature_dim=5)
    with pytest.raises(BackendError, match=r"'native'.*'sac'.*encoder"):
        SAC(SACConfig(**SMALL, encoder=enc, backend="native"), images)
    with pytest.raises(BackendError, match=r"'native'.*'sac'.*LayerNorm"):
        SAC(SACConfig(**SMALL, layer_norm=False, backend="native"), AlgoSpec(3, 2))


class _CriticLossSAC(SAC):
    """An algorithm that declares an extra critic loss (as Cal-QL would): the C++ step does not implement it."""

    uses_critic_extra_loss = True


def test_an_extra_critic_loss_cannot_run_native(ops):
    with pytest.raises(BackendError, match=r"backend 'native' cannot run algorithm .*adds a loss to the critic"):
        _CriticLossSAC(SACConfig(**SMALL, backend="native"), AlgoSpec(3, 2))
    assert _CriticLossSAC(SACConfig(**SMALL), AlgoSpec(3, 2)).backend == "eager"  # auto: never a silent loss change


def test_the_backend_error_names_the_subclass_not_sac(ops):
    with pytest.raises(BackendError, match=r"'_criticlosssac'"):
        _CriticLossSAC(SACConfig(**SMALL, backend="native"), AlgoSpec(3, 2))


def test_a_failed_build_makes_auto_eager_with_a_warning_and_native_an_error(ops, monkeypatch):
    """Where the extension cannot be built (simulated: the build result is cached per process), ``auto`` says
    why and trains eagerly with the eager numbers; an explicit ``native`` is an error carrying the reason."""
    monkeypatch.setitem(native._state, "error", "RuntimeError: simulated: no C++ compiler")
    with pytest.warns(RuntimeWarning, match="simulated: no C\\+\\+ compiler"):
        agent = SAC(SACConfig(**SMALL), AlgoSpec(3, 2), seed=1)
    assert agent.backend == "eager"
    with pytest.raises(BackendError, match="simulated: no C\\+\\+ compiler"):
        SAC(SACConfig(**SMALL, backend="native"), AlgoSpec(3, 2))
    ref = SAC(SACConfig(**SMALL, backend="eager"), AlgoSpec(3, 2), seed=1)
    b = _batch(0)
    assert agent.update(b) == ref.update(b)


def _batch(seed, b=8):
    g = torch.Generator().manual_seed(seed)
    return {"obs": {"state": torch.randn(b, 3, generator=g)}, "next_obs": {"state": torch.randn(b, 3, generator=g)},
            "action": torch.rand(b, 2, generator=g) * 2 - 1, "reward": torch.randn(b, generator=g),
            "discount": torch.full((b,), 0.99)}


def test_native_update_after_loading_a_checkpoint_uses_the_loaded_state(ops):
    """The backend's cached Adam argument lists follow a checkpoint load (new optimizer state tensors)."""
    cfg = SACConfig(**SMALL, backend="native")
    a, b = SAC(cfg, AlgoSpec(3, 2), seed=1), SAC(cfg, AlgoSpec(3, 2), seed=2)
    ref = SAC(SACConfig(**SMALL, backend="eager"), AlgoSpec(3, 2), seed=1)
    assert a.backend == b.backend == "native"
    for i in range(3):
        a.update(_batch(i)), ref.update(_batch(i))
    b.update(_batch(7))  # b's cached lists point at its own (soon replaced) optimizer state
    b.load_state_tensors(a.state_tensors())
    mb, ma, mr = b.update(_batch(3)), a.update(_batch(3)), ref.update(_batch(3))
    for k in mr:
        assert mb[k] == pytest.approx(ma[k], rel=1e-6, abs=1e-7), k
        assert ma[k] == pytest.approx(mr[k], rel=1e-4, abs=1e-6), k
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sb["critic_opt.state.0.step"].item() == 4.0
    for k in sa:
        assert torch.allclose(sa[k].double(), sb[k].double(), rtol=1e-6, atol=1e-7), k
