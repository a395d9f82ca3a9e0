"""SAC / RLPD losses and targets against hand-computed values."""
import math

import pytest
import torch

from robolearn.rl import losses

torch.set_num_threads(1)


def test_td_target_without_entropy():
    r = torch.tensor([1.0, 0.0, -0.5])
    disc = torch.tensor([0.9, 0.0, 0.81])  # gamma, terminal, gamma^2 (2-step)
    nq = torch.tensor([2.0, 5.0, 1.0])
    y = losses.td_target(r, disc, nq)
    # 1 + 0.9*2 = 2.8 ; 0 + 0 = 0 ; -0.5 + 0.81*1 = 0.31
    assert torch.allclose(y, torch.tensor([2.8, 0.0, 0.31]))


def test_td_target_with_entropy_backup():
    r = torch.tensor([1.0])
    y = losses.td_target(r, torch.tensor([0.5]), torch.tensor([3.0]), torch.tensor([-2.0]), alpha=0.1)
    # 1 + 0.5 * (3 - 0.1 * -2) = 1 + 0.5 * 3.2 = 2.6
    assert torch.allclose(y, torch.tensor([2.6]))


def test_subset_min_uses_only_drawn_members():
    q = torch.tensor([[5.0, 1.0], [3.0, 4.0], [-9.0, -9.0], [4.0, 2.0]])
    assert torch.equal(losses.subset_min(q, torch.tensor([0, 1])), torch.tensor([3.0, 1.0]))
    assert torch.equal(losses.subset_min(q, torch.tensor([3, 0])), torch.tensor([4.0, 1.0]))
    # member 2 holds the global min and must be ignored unless drawn
    assert torch.equal(losses.subset_min(q, torch.tensor([1, 3])), torch.tensor([3.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        losses.subset_min(q[0], torch.tensor([0]))


def test_critic_loss_mean_over_members_and_batch():
    q = torch.tensor([[1.0, 2.0], [3.0, 0.0]], requires_grad=True)
    target = torch.tensor([2.0, 2.0], requires_grad=True)
    loss = losses.critic_loss(q, target)
    # errors: (-1, 0, 1, -2) -> squares 1, 0, 1, 4 -> mean 1.5
    assert loss.item() == pytest.approx(1.5)
    loss.backward()
    assert target.grad is None  # no gradient flows into the target
    assert torch.allclose(q.grad, torch.tensor([[-0.5, 0.0], [0.5, -1.0]]))  # 2*err/4


def test_actor_loss_hand_computed():
    q = torch.tensor([[1.0, 4.0], [3.0, 2.0]])     # member means: 2, 3
    logp = torch.tensor([-1.0, 0.5])
    loss = losses.actor_loss(q, logp, alpha=0.2)
    # ((0.2*-1 - 2) + (0.2*0.5 - 3)) / 2 = (-2.2 - 2.9) / 2 = -2.55
    assert loss.item() == pytest.approx(-2.55)
    # TD3+BC normalization: Q term / mean|Q| = / 2.5 (no gradient through the scale)
    qg = q.clone().requires_grad_(True)
    norm = losses.actor_loss(qg, logp, alpha=0.2, q_normalize=True)
    # ((-0.2 - 2/2.5) + (0.1 - 3/2.5)) / 2 = (-1.0 - 1.1) / 2 = -1.05
    assert norm.item() == pytest.approx(-1.05)
    norm.backward()
    assert torch.allclose(qg.grad, torch.full((2, 2), -1 / (2 * 2 * 2.5)))  # -1/(E*B*scale)


def test_temperature_loss_and_gradient_sign():
    log_alpha = torch.tensor(math.log(0.5), requires_grad=True)
    logp = torch.tensor([1.0, 3.0])  # entropy estimate -2, below target -1 -> alpha must grow
    loss = losses.temperature_loss(log_alpha, logp, target_entropy=-1.0)
    assert loss.item() == pytest.approx(0.5 * (-2.0 + 1.0))
    loss.backward()
    # d/dlog_alpha = alpha * (entropy - target) = 0.5 * -1 -> descent increases log_alpha
    assert log_alpha.grad.item() == pytest.approx(-0.5)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean = torch.tensor([[0.3, -1.0]])
    log_std = torch.tensor([[math.log(0.5), 0.0]])
    noise = torch.tensor([[1.0, -0.5]])
    a, logp = losses.tanh_gaussian_sample(mean, log_std, noise)
    u = [0.3 + 0.5 * 1.0, -1.0 + 1.0 * -0.5]
    stds, eps = [0.5, 1.0], [1.0, -0.5]
    expected = 0.0
    for ui, s, e in zip(u, stds, eps):
        expected += -0.5 * e * e - math.log(s) - 0.5 * math.log(2 * math.pi) - math.log(1 - math.tanh(ui) ** 2)
    assert torch.allclose(a, torch.tanh(torch.tensor([u])))
    assert logp.item() == pytest.approx(expected, rel=1e-5)


def test_tanh_log_prob_stable_at_saturation():
    _, logp = losses.tanh_gaussian_sample(torch.tensor([[20.0]]), torch.tensor([[-5.0]]), torch.tensor([[0.0]]))
    assert torch.isfinite(logp).all()


def test_polyak_moves_target_by_tau():
    t, s = [torch.zeros(3)], [torch.ones(3)]
    losses.polyak_(t, s, 0.25)
    assert torch.allclose(t[0], torch.full((3,), 0.25))


def test_bc_loss_only_on_masked_rows():
    pred = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.5, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.5, 1.0]])
    mask = torch.tensor([True, False, True])
    # rows 0 and 2: squared errors 1 and 1 -> mean 1; row 1 (error 2) is not a demo row
    assert losses.bc_loss(pred, target, mask).item() == pytest.approx(1.0)
    assert losses.bc_loss(pred, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_td_target_clip_bounds_the_bootstrap():
    r = torch.tensor([0.0, 1.0, 0.0])
    d = torch.tensor([0.97, 0.0, 0.97])
    next_q = torch.tensor([2.0, 5.0, -0.5])  # an over-estimating critic (and one below the range)
    y = losses.td_target(r, d, next_q, clip=(0.0, 1.0))
    assert torch.allclose(y, torch.tensor([1.0, 1.0, 0.0]))  # 1.94 -> 1, terminal 1, -0.485 -> 0
    assert torch.allclose(losses.td_target(r, d, next_q), torch.tensor([1.94, 1.0, -0.485]))
