"""EXPO: the on-the-fly selection (argmax of Q over base and edited candidates) acts and backs up the same
way, edits stay within beta, the edit loss has the official code's terms, the base keeps its imitation
loss with a lagging EMA copy, and the exported policy acts as the algorithm does."""
import math

import numpy as np
import pytest
import torch

from robolearn.policies import registry as policy_registry
from robolearn.policies.expo.modeling import candidate_set
from robolearn.rl.algorithm import AlgoSpec
from robolearn.rl.expo import (EXPO, EXPOConfig, edit_actions, edit_log_prob, edit_policy_loss, select_best,
                               temperature_target)
from robolearn.train.checkpoint import load_policy, save_policy

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

S, A, N_OBS, H = 3, 2, 2, 8




def tiny_base(state_dim=S, action_dim=A, seed=0):
    torch.manual_seed(seed)
    cfg = policy_registry.config_class("consistency")(
        state_dim=state_dim, action_dim=action_dim, n_obs_steps=N_OBS, horizon=H, n_action_steps=4,
        down_dims=(8, 16), n_groups=4, step_embed_dim=8, state_hidden=(16,), state_feature_dim=8)
    pol = policy_registry.policy_class("consistency")(cfg)
    pol.set_normalization(-np.ones(state_dim), np.ones(state_dim), -np.ones(action_dim), np.ones(action_dim))
    return pol


def make_algo(**kw):
    cfg = EXPOConfig(**{"hidden": (16, 16), "edit_hidden": (16, 16), "num_critics": 4, "num_samples": 4,
                        "n_edit": 4, "fused_adam": False, "backend": "eager", **kw})
    return EXPO(cfg, AlgoSpec(S, A), base=tiny_base())


def bias_edits(algo, direction: float):
    """Edit head whose mean is a large constant: tanh(mean) = direction (+-1) in every dimension."""
    last = algo.edit.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        last.bias[:A] = 20.0 * direction


def batch(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g) * 2 - 1  # noqa: E731
    return {"obs": {"state": r(b, S)}, "next_obs": {"state": r(b, S)}, "action": r(b, A) * 0.9,
            "reward": torch.rand(b, generator=g), "discount": torch.full((b,), 0.9),
            "obs_history": {"state": r(b, N_OBS, S)}, "next_obs_history": {"state": r(b, N_OBS, S)},
            "action_chunk": r(b, H, A) * 0.9}


# Pure pieces ---------------------------------------------------------------------------------------
def test_select_best_takes_the_argmax_per_row_and_ties_go_to_the_first():
    cands = torch.tensor([[[0.1], [0.2], [0.3]], [[-1.0], [0.0], [1.0]]])
    q = torch.tensor([[0.5, 2.0, 1.0], [3.0, 3.0, -1.0]])
    best, idx = select_best(cands, q)
    assert idx.tolist() == [1, 0]
    assert torch.equal(best, torch.tensor([[0.2], [-1.0]]))
    with pytest.raises(ValueError, match="q_values"):
        select_best(cands, q[:, :2])


def test_edits_stay_within_beta_of_the_base_action_and_inside_the_box():
    beta = 0.05
    a = torch.tensor([[0.5, 0.99], [-0.2, -0.98]])
    mean, log_std = torch.zeros(2, 2), torch.zeros(2, 2)
    noise = torch.full((2, 2), math.atanh(0.6))  # tanh(u) = 0.6 exactly
    edited, logp = edit_actions(a, mean, log_std, beta, noise)
    assert torch.allclose(edited, torch.tensor([[0.53, 1.0], [-0.17, -0.95]]), atol=1e-6)  # 0.99 + 0.03 clipped
    assert logp.shape == (2,)
    det, no_logp = edit_actions(a, torch.full((2, 2), -30.0), log_std, beta)  # deterministic: tanh(mean) = -1
    assert no_logp is None and torch.allclose(det, torch.tensor([[0.45, 0.94], [-0.25, -1.0]]), atol=1e-6)
    g = torch.Generator().manual_seed(0)
    base = torch.rand(4096, 3, generator=g) * 2 - 1
    wild, _ = edit_actions(base, 10 * torch.randn(4096, 3, generator=g), torch.full((4096, 3), 2.0), beta,
                           10 * torch.randn(4096, 3, generator=g))
    assert (wild - base).abs().max() <= beta + 1e-6 and wild.abs().max() <= 1.0


def test_edit_loss_terms_match_hand_computed_values():
    beta, a_dim = 0.05, 2
    log_beta = math.log(0.05)  # -2.995732
    assert edit_log_prob(torch.tensor([-1.0]), beta, a_dim).item() == pytest.approx(-1.0 - 2 * log_beta)
    q = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # members x batch: mean over members = [2, 3]
    logp = torch.tensor([-1.0, 0.0])
    expected = ((0.5 * (-1.0 - 2 * log_beta) - 2.0) + (0.5 * (0.0 - 2 * log_beta) - 3.0)) / 2  # = 0.245732
    assert edit_policy_loss(q, logp, 0.5, beta, a_dim).item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.245732, abs=1e-6)
    assert temperature_target(7, 0.5, beta, adjust=False) == -3.5
    assert temperature_target(7, 0.5, beta, adjust=True) == pytest.approx(-3.5 + 7 * log_beta)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="n_edit"):
        EXPOConfig(num_samples=4, n_edit=5)
    with pytest.raises(ValueError, match="backup_base"):
        EXPOConfig(backup_base="target")
    with pytest.raises(ValueError, match="beta"):
        EXPOConfig(beta=0.0)


# Selection in acting and in the backup ---------------------------------------------------------------
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_acting_picks_the_argmax_of_q_over_base_and_edited_candidates(sign):
    """Q = sign * sum(a), edits push +beta: with sign +1 the best is an edited candidate, with -1 a base one."""
    algo = make_algo(beta=0.2)
    bias_edits(algo, +1.0)
    algo._target_q_fn = lambda members: (lambda f, a: sign * a.sum(-1))
    obs = {"state": np.array([0.1, -0.2, 0.3], np.float32)}
    algo.reset()
    action = algo.act(obs, generator=torch.Generator().manual_seed(5))
    # the same candidates, drawn again from the same seed
    hist = {"state": torch.tensor(obs["state"]).repeat(N_OBS, 1)[None]}
    feat = algo.critic.encoder({"state": torch.tensor(obs["state"])[None]})
    cands = candidate_set(algo.base_ema.policy, algo.edit, feat, hist, 4, 4, 0.2, torch.Generator().manual_seed(5),
                          deterministic_edit=False)[0]
    assert cands.shape == (8, A)
    sums = cands.sum(-1) * sign
    k = int(sums.argmax())
    assert np.allclose(action, cands[k].numpy(), atol=1e-6)
    assert (k >= 4) == (sign > 0)  # edited candidates are the last n_edit
    if sign > 0:
        base_k = k - 4
        assert torch.all(cands[k] >= cands[base_k] - 1e-6)


def test_the_td_backup_uses_the_same_selection_with_the_online_base():
    algo = make_algo()
    with torch.no_grad():  # online base and EMA differ, so the test sees which one proposes
        for p in algo.base.policy.parameters():
            p.add_(0.3)
    known_q = lambda members: (lambda f, a: -(a - 0.25).pow(2).sum(-1))  # noqa: E731
    algo._target_q_fn = known_q
    b = batch(5)
    feat = algo.critic.encoder(b["next_obs"])
    state = algo.generator.get_state()
    a_next, bonus = algo.next_action(b["next_obs_history"])(feat)
    assert bonus is None  # no entropy term in the backup
    g = torch.Generator().manual_seed(0)
    g.set_state(state)
    cands = candidate_set(algo.base.policy, algo.edit, feat, b["next_obs_history"], 4, 4, algo.cfg.beta, g,
                          deterministic_edit=False)
    expected, idx = select_best(cands, -(cands - 0.25).pow(2).sum(-1))
    assert torch.allclose(a_next, expected)
    # ...and it is the argmax of the known Q among all 2N candidates, row by row
    for r in range(5):
        vals = [-(c - 0.25).pow(2).sum().item() for c in cands[r]]
        assert int(np.argmax(vals)) == int(idx[r])
    # the TD target bootstraps from that action
    reward, discount = b["reward"], b["discount"]
    algo.generator.set_state(state)
    members = torch.tensor([0, 2])
    y = algo.critic.td_target(reward, discount, b["next_obs"], algo.next_action(b["next_obs_history"]), members)
    assert torch.allclose(y, reward + discount * algo.critic.target_min(feat, expected, members), atol=1e-6)


# Training ------------------------------------------------------------------------------------------
def test_the_base_keeps_training_with_its_bc_loss_and_the_ema_copy_lags():
    algo = make_algo(base_lr=3e-3, base_tau=0.1)
    b = batch(16)
    base0 = [p.detach().clone() for p in algo.base_params]
    ema0 = [p.detach().clone() for p in algo.ema_params]
    algo.update(b, update_actor=False)  # critic-only steps leave the base alone
    assert all(torch.equal(p, q) for p, q in zip(algo.base_params, base0))

    def bc_now():
        torch.manual_seed(123)  # the same noise levels and noise for both evaluations
        with torch.no_grad():
            return algo.base.bc_loss(b["obs_history"], b["action_chunk"]).item()

    before = bc_now()
    m = algo.update(b, update_actor=True)
    assert math.isfinite(m["base_bc_loss"]) and math.isfinite(m["edit_loss"])
    moved = max((p - q).abs().max().item() for p, q in zip(algo.base_params, base0))
    assert moved > 1e-4
    # EMA: ema <- (1 - tau) ema + tau base, exactly
    for e, e0, p in zip(algo.ema_params, ema0, algo.base_params):
        assert torch.allclose(e, 0.9 * e0 + 0.1 * p, atol=1e-6)
    for _ in range(30):
        algo.update(b, update_actor=True)
    assert bc_now() < before
    lag = sum((e - p).abs().sum().item() for e, p in zip(algo.ema_params, algo.base_params))
    assert lag > 0  # the EMA trails the base
    assert not any(p.requires_grad for p in algo.ema_params)


def test_exported_policy_reproduces_the_deterministic_action_and_loads(tmp_path):
    algo = make_algo()
    for i in range(3):
        algo.update(batch(8, seed=i))
    path = save_policy(algo.policy(), tmp_path / "expo")
    pol = load_policy(path)
    assert pol.type == "expo" and pol.config.base_type == "consistency" and pol.config.num_samples == 4
    assert pol.config.base.horizon == H
    g_algo, g_pol = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    algo.reset()
    pol.reset()
    rng = np.random.default_rng(0)
    for _ in range(4):  # several steps: the observation histories must match too
        obs = {"state": rng.uniform(-1, 1, S).astype(np.float32)}
        a = algo.act(obs, deterministic=True, generator=g_algo)
        p = pol.select_action(obs, generator=g_pol, steps=1)
        assert p.shape == (A,) and np.allclose(a, p, atol=1e-6)
    # deterministic given the generator: the same seed gives the same action
    pol.reset()
    obs = {"state": np.zeros(S, np.float32)}
    x = pol.select_action(obs, generator=torch.Generator().manual_seed(1))
    pol.reset()
    assert np.array_equal(x, pol.select_action(obs, generator=torch.Generator().manual_seed(1)))


def test_expo_trains_through_the_shared_trainer(tmp_path):
    from test_online_loop import TrackEnv

    from robolearn.train.online import OnlineTrainer
    from robolearn.train.rl_config import build_config

    save_policy(tiny_base(2, 1), tmp_path / "base", meta={"env": "toy/track"})
    cfg = build_config("expo", overrides={
        "agent": {"hidden": [16, 16], "edit_hidden": [16, 16], "num_critics": 4, "num_samples": 4, "n_edit": 4,
                  "fused_adam": False, "discount": 0.5},
        "train": {"steps": 200, "warmup_steps": 50, "batch_size": 16, "actor_every": 2, "eval_every": 200,
                  "eval_episodes": 2, "checkpoint_every": 10_000, "log_every": 25}})
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", env_factory=lambda n, **k: TrackEnv(4),
                       base=str(tmp_path / "base"))
    summary = tr.run(progress=False)
    assert summary["env_step"] == 200 and tr.algo.num_updates == 151
    from robolearn.train.logging import read_scalars

    rows = read_scalars(tmp_path / "run")
    logged = {r["tag"] for r in rows}
    assert {"train/critic_loss", "train/edit_loss", "train/base_bc_loss", "train/q_mean"} <= logged
    assert all(math.isfinite(r["value"]) for r in rows)
    assert math.isfinite(summary["eval/q_mean"]) and math.isfinite(summary["eval/mc_return"])
    pol = load_policy(tmp_path / "run")
    assert pol.type == "expo" and pol.meta["algo"] == "expo"
    a = pol.select_action({"state": np.array([0.5, 0.1], np.float32)}, generator=torch.Generator().manual_seed(0))
    assert a.shape == (1,) and abs(a[0]) <= 1.0


def test_online_chunks_are_projected_onto_the_base_action_box_before_its_bc_step():
    """A dimension the demos hold constant has a ~1e-4 wide box: an edit there must not blow up the BC loss."""
    algo = make_algo()
    norm = algo.base.policy.action_norm
    with torch.no_grad():
        norm.min.copy_(torch.tensor([-1.0, -5e-5]))
        norm.max.copy_(torch.tensor([1.0, 5e-5]))
    b = batch(8)
    b["action_chunk"][..., 1] = 0.05  # an edited action in the constant dimension
    torch.manual_seed(7)
    with torch.no_grad():
        raw = algo.base.bc_loss(b["obs_history"], b["action_chunk"]).item()
    projected = b["action_chunk"].clone()
    projected[..., 1] = 5e-5
    torch.manual_seed(7)
    with torch.no_grad():
        expected = algo.base.bc_loss(b["obs_history"], projected).item()
    torch.manual_seed(7)
    assert algo.base_step(b) == pytest.approx(expected, rel=1e-5)
    assert raw > 1000 * expected
