"""ConRFT: the Cal-QL penalty with its Monte-Carlo floor and the combined actor loss against hand-computed
values, the two stages (offline: BC only + Cal-QL; online: the online weights, plain TD), the Q gradient
reaching the consistency network, the exported checkpoint, and a short run through the shared trainer."""
import math

import numpy as np
import pytest
import torch

from robolearn.policies import registry as policy_registry
from robolearn.rl import calql
from robolearn.rl.algorithm import AlgoSpec
from robolearn.rl.conrft import ConRFT, ConRFTConfig, actor_loss
from robolearn.train.checkpoint import load_policy, save_policy
from robolearn.train.online import OnlineTrainer
from robolearn.train.rl_config import build_config
from test_online_loop import TrackEnv

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

B = 8




def tiny_consistency(seed: int = 0):
    """An untrained 2-state / 1-action consistency policy (horizon 4, chunks of 2): a stand-in BC base."""
    torch.manual_seed(seed)
    cfg = policy_registry.config_class("consistency")(
        state_dim=2, action_dim=1, n_obs_steps=2, horizon=4, n_action_steps=2, down_dims=(8, 16), n_groups=4,
        step_embed_dim=8, state_hidden=(16,), state_feature_dim=8)
    pol = policy_registry.policy_class("consistency")(cfg)
    pol.set_normalization(-np.ones(2), np.ones(2), -np.ones(1), np.ones(1))
    return pol


def make_algo(base=None, seed=0, **agent):
    cfg = ConRFTConfig(hidden=(32, 32), fused_adam=False, **agent)
    return ConRFT(cfg, AlgoSpec(2, 1), seed=seed, base=base if base is not None else tiny_consistency())


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.rand(*s, generator=g) * 2 - 1  # noqa: E731
    return {"obs": {"state": r(B, 2)}, "next_obs": {"state": r(B, 2)}, "action": r(B, 1),
            "reward": torch.rand(B, generator=g), "discount": torch.full((B,), 0.98),
            "mc_return": torch.rand(B, generator=g), "obs_history": {"state": r(B, 2, 2)},
            "next_obs_history": {"state": r(B, 2, 2)}, "action_chunk": r(B, 4, 1),
            "is_demo": torch.arange(B) < B // 2}


# Pure functions ----------------------------------------------------------------------------------
def test_calql_penalty_floors_sampled_q_at_the_mc_return():
    q_samples = torch.tensor([[[0.0, 2.0], [1.0, -1.0]]], requires_grad=True)  # (E=1, B=2, N=2)
    q_data = torch.tensor([[1.0, 0.5]])
    mc = torch.tensor([0.5, 0.0])
    # row 0: 0.0 -> floored to 0.5; set {0.5, 2.0, Q_data 1.0}. row 1: -1.0 -> 0.0; set {1.0, 0.0, 0.5}
    d0 = math.log((math.exp(0.5) + math.exp(2.0) + math.exp(1.0)) / 3) - 1.0
    d1 = math.log((math.exp(1.0) + math.exp(0.0) + math.exp(0.5)) / 3) - 0.5
    diff = calql.calql_q_diff(q_samples, q_data, mc)
    assert torch.allclose(diff, torch.tensor([[d0, d1]]), atol=1e-6)
    loss, metrics = calql.calql_loss(q_samples, q_data, mc, alpha=0.1)
    assert loss.item() == pytest.approx(0.1 * (d0 + d1) / 2, abs=1e-6)
    assert metrics["calql_bound_rate"] == pytest.approx(0.5)  # 2 of the 4 sampled values were lifted
    loss.backward()  # the floored entries carry no gradient: the floor, not the critic, sets them
    g = q_samples.grad[0]
    assert g[0, 0] == 0 and g[1, 1] == 0 and g[0, 1] > 0 and g[1, 0] > 0
    # temperature T: T * log mean exp(x / T)
    t = 0.5
    d0_t = t * math.log((math.exp(0.5 / t) + math.exp(2.0 / t) + math.exp(1.0 / t)) / 3) - 1.0
    assert calql.calql_q_diff(q_samples, q_data, mc, t)[0, 0].item() == pytest.approx(d0_t, abs=1e-5)
    # without the floor (mc far below) the penalty is plain CQL; with everything at Q_data it is 0
    low = torch.full((2,), -100.0)
    assert calql.calql_q_diff(q_samples, q_data, low)[0, 1].item() == pytest.approx(
        math.log((math.exp(1.0) + math.exp(-1.0) + math.exp(0.5)) / 3) - 0.5, abs=1e-6)
    flat = torch.tensor([[[1.0, 1.0], [0.5, 0.5]]])
    assert torch.allclose(calql.calql_q_diff(flat, q_data, low), torch.zeros(1, 2), atol=1e-6)


def test_actor_loss_is_beta_bc_plus_eta_minus_mean_q():
    bc = torch.tensor(2.0)
    q = torch.tensor([[1.0, 3.0], [2.0, 4.0]])  # mean 2.5
    assert actor_loss(bc, q, 0.1, 1.0).item() == pytest.approx(0.1 * 2.0 - 2.5)
    assert actor_loss(bc, None, 1.0, 0.0).item() == pytest.approx(2.0)   # the offline stage: BC only
    assert actor_loss(None, q, 0.0, 1.0).item() == pytest.approx(-2.5)
    assert actor_loss(bc, q, 0.5, 2.0).item() == pytest.approx(1.0 - 5.0)
    with pytest.raises(ValueError):
        actor_loss(None, q, 0.1, 1.0)


def test_normalised_q_term_divides_by_mean_abs_q_without_gradient():
    bc = torch.tensor(2.0)
    q = torch.tensor([[1.0, -3.0], [2.0, 4.0]], requires_grad=True)  # mean 1.0, mean |q| 2.5
    loss = actor_loss(bc, q, 1.0, 0.5, q_normalize=True)
    assert loss.item() == pytest.approx(2.0 - 0.5 * 1.0 / 2.5)
    loss.backward()  # d/dq of -0.5 * mean(q) / 2.5: the divisor carries no gradient
    assert torch.allclose(q.grad, torch.full_like(q, -0.5 / 4 / 2.5))


def test_anchor_term_adds_its_weight_and_needs_the_term():
    bc, q = torch.tensor(2.0), torch.tensor([[1.0, 3.0]])  # mean 2.0
    assert actor_loss(bc, q, 1.0, 0.1, anchor=torch.tensor(0.5), anchor_weight=4.0).item() == \
        pytest.approx(2.0 - 0.2 + 2.0)
    with pytest.raises(ValueError, match="anchor"):
        actor_loss(bc, q, 1.0, 0.1, anchor_weight=1.0)


def test_online_anchor_is_zero_at_the_start_and_pulls_back_after_the_policy_moves():
    base, batch = tiny_consistency(), make_batch()
    algo = make_algo(base, anchor_weight=1.0, actor_lr=1e-2)
    m = algo.update(batch)  # the first actor step: the policy is still the frozen start, same noise
    assert m["anchor"] == pytest.approx(0.0, abs=1e-10)
    assert m["actor_loss"] == pytest.approx(0.1 * m["bc_loss"] - m["actor_q"], abs=1e-6)
    m = algo.update(batch)  # after one step at lr 1e-2 the samples differ: a positive pull back
    assert m["anchor"] > 1e-8
    assert m["actor_loss"] == pytest.approx(0.1 * m["bc_loss"] - m["actor_q"] + m["anchor"], abs=1e-6)
    with pytest.raises(ValueError, match="anchor_weight"):
        ConRFTConfig(anchor_weight=-1.0)
    assert make_algo(base).anchor_policy is None  # off by default: no frozen copy held


def test_config_names_bad_fields():
    with pytest.raises(ValueError, match="bc_rows"):
        ConRFTConfig(bc_rows="online")
    with pytest.raises(ValueError, match="cql_n_actions"):
        ConRFTConfig(cql_n_actions=0)
    with pytest.raises(ValueError, match="online_bc_weight and online_q_weight"):
        ConRFTConfig(online_bc_weight=0.0, online_q_weight=0.0)
    assert ConRFTConfig(actor_lr="3e-5").actor_lr == 3e-5  # YAML 1.1 reads 3e-5 as a string
    with pytest.raises(ValueError, match="actor_lr"):
        ConRFTConfig(actor_lr="fast")
    assert ConRFTConfig().stage_weights(True) == (1.0, 0.0) and ConRFTConfig().stage_weights(False) == (0.1, 1.0)


def test_base_must_be_a_consistency_policy():
    diff_cfg = policy_registry.config_class("diffusion")(state_dim=2, action_dim=1, horizon=4, n_action_steps=2,
                                                        down_dims=(8, 16), n_groups=4, step_embed_dim=8,
                                                        state_hidden=(16,), state_feature_dim=8)
    with pytest.raises(TypeError, match="consistency"):
        make_algo(base=policy_registry.policy_class("diffusion")(diff_cfg))


# The two stages ----------------------------------------------------------------------------------
def test_offline_stage_adds_calql_and_trains_bc_only_online_stage_is_plain_td_with_online_weights():
    base, batch = tiny_consistency(), make_batch()
    off, on = make_algo(base), make_algo(base)
    assert off.backend == "eager"  # the Cal-QL extra loss rules the native critic out under auto
    torch.manual_seed(5)
    m_off = off.offline_update(batch)
    torch.manual_seed(5)
    m_on = on.update(batch)
    # same initial weights and draws: the critic losses differ by exactly alpha * Cal-QL
    assert m_off["calql_loss"] != 0 and "calql_loss" not in m_on
    assert m_off["critic_loss"] - m_on["critic_loss"] == pytest.approx(m_off["calql_loss"], abs=1e-5)
    assert m_off["td_loss"] == pytest.approx(m_on["critic_loss"], abs=1e-5)
    # the stage weights: offline beta 1, eta 0 (loss = BC); online 0.1 * BC - mean Q
    assert (m_off["bc_weight"], m_off["q_weight"]) == (1.0, 0.0) and "actor_q" not in m_off
    assert m_off["actor_loss"] == pytest.approx(m_off["bc_loss"])
    assert (m_on["bc_weight"], m_on["q_weight"]) == (0.1, 1.0)
    assert m_on["actor_loss"] == pytest.approx(0.1 * m_on["bc_loss"] - m_on["actor_q"], abs=1e-6)


def test_offline_actor_step_does_not_depend_on_the_critic():
    """eta = 0 offline: scaling the critic's weights changes nothing in the actor's update."""
    base, batch = tiny_consistency(), make_batch()
    a, b = make_algo(base), make_algo(base)
    with torch.no_grad():
        for p in b.critic.net.parameters():
            p.mul_(3.0)
    for algo in (a, b):
        torch.manual_seed(7)
        algo.offline_update(batch)
    for pa, pb in zip(a.actor_params, b.actor_params):
        assert torch.equal(pa, pb)
    # while online (eta = 1) it does
    for algo in (a, b):
        torch.manual_seed(7)
        algo.update(batch)
    assert any(not torch.allclose(pa, pb) for pa, pb in zip(a.actor_params, b.actor_params))


def test_q_gradient_moves_the_consistency_network_towards_higher_q():
    algo = make_algo(online_bc_weight=0.0, online_q_weight=1.0, actor_lr=3e-3, critic_lr=1e-12)
    batch = make_batch()
    before = [p.detach().clone() for p in algo.actor_params]

    def q_of_pi():
        with torch.no_grad():
            algo.generator.manual_seed(123)
            a = algo.pi(batch["obs_history"])[:, 0]
            return algo.critic.q(algo.critic.encode(batch["obs"]), a).mean().item()

    algo.update(batch, update_actor=False)
    assert all(torch.equal(p, q) for p, q in zip(before, algo.actor_params))  # critic-only step
    q0 = q_of_pi()
    for _ in range(15):
        algo.update(batch)
    net_moved = [not torch.equal(p, q) for (name, _), p, q in
                 zip(algo.module.named_parameters(), before, algo.actor_params) if name.startswith("net.")]
    assert sum(net_moved) > len(net_moved) // 2  # the U-Net itself, not only the observation encoder
    assert q_of_pi() > q0 + 1e-3


def test_eval_episode_in_the_middle_of_a_training_chunk_leaves_the_training_queue_alone():
    algo = make_algo()
    obs = {"state": np.array([0.3, -0.2], np.float32)}
    algo.reset()
    algo.act(obs)                                        # a new chunk of 2: one action left
    left = float(algo._contexts["train"][1][0][0])
    algo.reset()                                         # the trainer's evaluation starts an episode
    algo.act(obs, deterministic=True)
    algo.act(obs, deterministic=True)
    assert float(algo.act({"state": np.array([0.9, 0.9], np.float32)})[0]) == left


def test_exported_policy_is_a_consistency_checkpoint_with_the_actors_chunks(tmp_path):
    algo = make_algo()
    batch = make_batch()
    for _ in range(3):
        algo.update(batch)
    save_policy(algo.policy(), tmp_path / "pol", meta={"env": "toy/track"})
    pol = load_policy(tmp_path / "pol")
    assert pol.type == "consistency" and pol.config == algo.module.config
    hist = {"state": torch.tensor([[[0.1, 0.2], [0.3, -0.4]]])}
    mine = algo.module.sample_actions(hist, generator=torch.Generator().manual_seed(9))
    theirs = pol.sample_actions(hist, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(mine, theirs, atol=1e-6)
    untrained = tiny_consistency().sample_actions(hist, generator=torch.Generator().manual_seed(9))
    assert not torch.allclose(theirs, untrained)  # it holds the trained weights, not the base's


# Through the shared trainer ----------------------------------------------------------------------
def _write_demos(root, episodes=4, length=6):
    from robolearn.data.episode_store import EpisodeStore

    store = EpisodeStore(root)
    env, rewards = TrackEnv(length), []
    for k in range(episodes):
        w = store.writer(meta={"env": "toy"})
        obs, _ = env.reset(seed=k)
        w.reset(obs)
        ep = []
        for _ in range(length):
            a = np.array([0.6 * obs["state"][0]], np.float32)
            obs, r, term, trunc, info = env.step(a)
            w.step(a, obs, r, term, trunc, info)
            ep.append(r)
        rewards.append(ep)
        w.close()
    return rewards


def test_offline_then_online_through_the_shared_trainer(tmp_path):
    rewards = _write_demos(tmp_path / "demos")
    cfg = build_config("conrft", overrides={
        "agent": {"hidden": [32, 32], "fused_adam": False},
        "train": {"steps": 100, "offline_steps": 60, "warmup_steps": 50, "batch_size": 16, "eval_every": 100,
                  "eval_episodes": 2, "checkpoint_every": 10_000, "log_every": 20}})
    assert cfg.agent.num_critics == 2 and cfg.agent.discount == 0.98 and cfg.train.actor_every == 2
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", demos=tmp_path / "demos", base=tiny_consistency(),
                       env_factory=lambda n, **k: TrackEnv(6))
    assert tr.windows == (2, 4)
    # the demo buffer filled the Cal-QL floor with each episode's return-to-go
    g = 0.98
    ep = rewards[0]
    expected = [sum(g ** j * r for j, r in enumerate(ep[t:])) for t in range(len(ep))]
    slots = np.flatnonzero(tr.demo.has_next[: tr.demo.size])[:6]
    assert np.allclose(tr.demo.extras["mc_return"][slots], expected, atol=1e-5)
    out = tr.run(progress=False)
    assert tr.offline_updates == 60 and tr.algo.num_updates == 60 + 51  # updates from env step 50 to 100
    from robolearn.train.logging import read_scalars

    rows = read_scalars(tmp_path / "run")
    offline = [r for r in rows if r["tag"].startswith("offline/")]
    online = [r for r in rows if r["tag"].startswith("train/")]
    assert {"offline/calql_loss", "offline/td_loss", "offline/bc_loss"} <= {r["tag"] for r in offline}
    assert "train/critic_loss" in {r["tag"] for r in online} and "train/calql_loss" not in {r["tag"] for r in online}
    assert all(np.isfinite(r["value"]) for r in offline + online)
    assert np.isfinite(out["eval/q_mean"]) and np.isfinite(out["eval/mc_return"])
    pol = load_policy(tmp_path / "run")
    assert pol.type == "consistency" and pol.meta["env"] == "toy/track" and pol.meta["algo"] == "conrft"
    chunk = pol.act({"state": np.array([0.2, 0.1], np.float32)})
    assert chunk.shape == (2, 1) and np.all(np.isfinite(chunk))
