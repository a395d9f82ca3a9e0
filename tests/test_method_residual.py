"""Residual RL on a frozen base (rl/residual.py, policies/residual/): the zero start, the clipped
executed action, demo relabelling with the base's open-loop actions, the TD target's next action (with
the fallback where no base action was recorded), the exported policy, and training through the shared
trainer. The base is a tiny untrained consistency policy: what matters here is that the residual
machinery reproduces whatever the base does, exactly."""
import copy
import json

import numpy as np
import pytest
import torch

from robolearn.data.episode_store import EpisodeStore
from robolearn.data.replay import ObsSpec, ReplayBuffer
from robolearn.envs.api import RobotEnv, action_space, observation_space
from robolearn.policies.consistency.configuration import ConsistencyConfig
from robolearn.policies.consistency.modeling import ConsistencyPolicy
from robolearn.policies.residual.modeling import ResidualActor, residual_action
from robolearn.rl import residual as R
from robolearn.rl.algorithm import AlgoSpec
from robolearn.train.checkpoint import load_policy, save_policy
from robolearn.train.logging import series
from robolearn.train.online import OnlineTrainer, buffer_fields
from robolearn.train.rl_config import build_config

torch.set_num_threads(1)
S, A = 3, 2
FIELDS = {"base_action": (A,), "base_valid": ()}


def make_base(seed=0) -> ConsistencyPolicy:
    torch.manual_seed(seed)
    cfg = ConsistencyConfig(state_dim=S, action_dim=A, n_obs_steps=2, horizon=4, n_action_steps=2,
                            down_dims=(8, 16), n_groups=4, kernel_size=3, step_embed_dim=8, state_hidden=(16,),
                            state_feature_dim=8)
    pol = ConsistencyPolicy(cfg)
    pol.set_normalization(-np.ones(S), np.ones(S), np.array([-0.5, -0.9]), np.array([0.8, 0.6]))
    return pol.eval()


def make_algo(base=None, **agent) -> R.ResidualRL:
    cfg = R.ResidualConfig(**{"hidden": (32, 32), "residual_hidden": (16, 16), "num_critics": 4, "backend": "eager",
                              "fused_adam": False, **agent})
    return R.ResidualRL(cfg, AlgoSpec(S, A), seed=0, base=base if base is not None else make_base())


def obs_of(state) -> dict:
    return {"state": np.asarray(state, np.float32)}


def perturb(module: torch.nn.Module, seed=1) -> None:
    """Give a zero-initialised residual a non-zero output (the tests must see the residual's effect)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))


def gen(seed):
    return torch.Generator().manual_seed(seed)


# Zero start and clipping -------------------------------------------------------------------------------
def test_zero_start_executes_the_base_action_exactly():
    base = make_base()
    ref = copy.deepcopy(base)
    algo = make_algo(base)
    states = np.random.default_rng(0).uniform(-1, 1, (5, S)).astype(np.float32)
    algo.reset()
    ref.reset()
    g1, g2 = gen(7), gen(7)
    for s in states:  # 5 steps: the first chunk's 2 actions, the second's 2, one of the third
        a = algo.act(obs_of(s), deterministic=True, generator=g1)
        b = ref.select_action(obs_of(s), generator=g2)
        assert np.array_equal(a, b)
    assert not np.allclose(b, 0)  # the base is not trivially 0
    # exploring: base + N(0, 0.05^2) noise only (the residual is 0), and the base action is recorded
    algo.reset()
    a = algo.act(obs_of(states[0]))
    extras = algo.step_extras()
    assert extras["base_valid"] == 1.0
    assert 0 < np.max(np.abs(a - extras["base_action"])) < 0.05 * 5


def test_residual_actor_starts_at_zero_and_executed_action_is_clipped():
    actor = ResidualActor(5, A, (16,))
    assert torch.equal(actor(torch.randn(7, 5), torch.randn(7, A)), torch.zeros(7, A))
    base = torch.tensor([[0.95, -0.5], [-0.98, 0.2]])
    r = torch.tensor([[1.0, -1.0], [-1.0, 0.5]])
    # 0.95 + 0.1 = 1.05 -> 1; -0.5 - 0.1 = -0.6; -0.98 - 0.1 -> -1; 0.2 + 0.05 = 0.25
    assert torch.allclose(residual_action(base, r, 0.1), torch.tensor([[1.0, -0.6], [-1.0, 0.25]]))
    noise = torch.tensor([[0.0, 0.3], [0.0, -2.0]])
    # -0.6 + 0.3 = -0.3; 0.25 - 2 -> -1
    assert torch.allclose(residual_action(base, r, 0.1, noise), torch.tensor([[1.0, -0.3], [-1.0, -1.0]]))
    # a clipped dimension passes no gradient to the residual
    rr = r.clone().requires_grad_(True)
    residual_action(base, rr, 0.1).sum().backward()
    assert torch.allclose(rr.grad, torch.tensor([[0.0, 0.1], [0.0, 0.1]]))


def test_progressive_probability_and_noise():
    assert R.residual_probability(0, 0) == 1.0 and R.residual_probability(5, 0) == 1.0
    assert R.residual_probability(0, 100) == 0.0
    assert R.residual_probability(25, 100) == 0.25 and R.residual_probability(300, 100) == 1.0
    assert R.gaussian_noise((3,), 0.0, 0.0, gen(0), "cpu") is None
    eps = R.gaussian_noise((10_000,), 0.05, 0.0, gen(0), "cpu")
    assert abs(float(eps.std()) - 0.05) < 0.002
    assert float(R.gaussian_noise((10_000,), 1.0, 0.1, gen(0), "cpu").abs().max()) == pytest.approx(0.1)
    # progressive enabling: at t = 0 the residual is off, so the executed action is the base action exactly
    algo = make_algo(progressive_steps=1000)
    perturb(algo.actor)
    algo.reset()
    a = algo.act(obs_of([0.1, 0.2, 0.3]))
    assert np.array_equal(a, np.clip(algo.step_extras()["base_action"], -1, 1))
    assert int(algo.counter.explore_steps) == 1


# Demo relabelling --------------------------------------------------------------------------------------
def demo_buffer(lengths=(5, 3), seed=0) -> ReplayBuffer:
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(64, ObsSpec(S), A, extra_fields=FIELDS)
    for t_len in lengths:
        buf.start_episode(obs_of(rng.uniform(-1, 1, S)))
        for t in range(t_len):
            buf.add(rng.uniform(-1, 1, A), 0.0, obs_of(rng.uniform(-1, 1, S)), False, t == t_len - 1)
    return buf


def test_relabelled_demo_base_actions_are_the_base_open_loop_chunks():
    base = make_base()
    ref = copy.deepcopy(base)
    algo = make_algo(base)
    buf = demo_buffer((5, 3))
    assert algo.relabel_demos(buf, gen(3)) == 8
    # by hand: per episode, a chunk every n_action_steps = 2 steps from the history (s_{t-1}, s_t) (the first
    # frame repeated at the start), its actions at indices n_obs - 1 = 1, 2; one generator across episodes
    g = gen(3)
    expected = {}
    for start, t_len in ((0, 5), (6, 3)):
        for t in range(0, t_len, 2):
            hist = buf.state[[start + max(t - 1, 0), start + t]]
            chunk = ref.sample_actions({"state": torch.from_numpy(hist)[None]}, generator=g)[0]
            for k in range(2):
                if t + k < t_len:
                    expected[start + t + k] = chunk[1 + k].numpy()
    for slot, a in expected.items():
        assert np.allclose(buf.extras["base_action"][slot], a, atol=1e-6), slot
    valid = buf.extras["base_valid"][: buf.size]
    assert np.array_equal(valid, buf.has_next[: buf.size].astype(np.float32))  # last observations stay 0
    assert np.array_equal(buf.extras["base_action"][5], np.zeros(A))
    # prepare() relabels the demo buffer the trainer hands over (with the algorithm's own generator)
    buf2 = demo_buffer((5, 3))
    make_algo().prepare(buf2)
    assert np.array_equal(buf2.extras["base_valid"][: buf2.size], valid)
    assert np.all(np.abs(buf2.extras["base_action"][buf2.has_next]).sum(-1) > 0)


# TD target ---------------------------------------------------------------------------------------------
def test_actor_loss_by_hand():
    """-mean Q; with q_normalize divided by mean |Q| (no gradient through the scale); + l2 * mean r^2."""
    from robolearn.rl.residual import actor_loss

    q = torch.tensor([[0.2, -0.4], [0.6, 0.0]])          # (members, batch): mean 0.1, mean |Q| 0.3
    r = torch.tensor([[0.5, -0.5], [1.0, 0.0]])          # mean r^2 = (0.25 + 0.25 + 1 + 0) / 4 = 0.375
    assert actor_loss(q).item() == pytest.approx(-0.1)
    assert actor_loss(q, q_normalize=True).item() == pytest.approx(-0.1 / 0.3)
    assert actor_loss(q, r, 2.0).item() == pytest.approx(-0.1 + 2.0 * 0.375)
    assert actor_loss(q, r, 2.0, q_normalize=True).item() == pytest.approx(-0.1 / 0.3 + 0.75)
    qg = q.clone().requires_grad_(True)
    actor_loss(qg, q_normalize=True).backward()             # d/dQ of -mean(Q) / 0.3 (scale held constant)
    assert torch.allclose(qg.grad, torch.full_like(q, -1.0 / (4 * 0.3)))
    with pytest.raises(ValueError, match="residual_l2"):
        actor_loss(q, None, 1.0)


def test_choose_base_by_hand():
    rec = torch.tensor([[0.1, 0.2], [0.0, 0.0], [0.5, 0.5]])
    smp = torch.tensor([[9.0, 9.0], [0.3, -0.4], [8.0, 8.0]])
    out = R.choose_base(rec, torch.tensor([1.0, 0.0, 1.0]), smp)
    assert torch.equal(out, torch.tensor([[0.1, 0.2], [0.3, -0.4], [0.5, 0.5]]))


def test_td_target_uses_next_base_action_plus_residual_with_fallback():
    base = make_base()
    ref = copy.deepcopy(base)
    algo = make_algo(base)
    perturb(algo.actor)
    rng = np.random.default_rng(1)
    next_state = torch.from_numpy(rng.uniform(-1, 1, (3, S)).astype(np.float32))
    next_hist = torch.from_numpy(rng.uniform(-1, 1, (3, 2, S)).astype(np.float32))
    recorded = torch.tensor([[0.3, -0.2], [0.0, 0.0], [0.0, 0.0]])
    valid = torch.tensor([1.0, 0.0, 0.0])
    discount = torch.tensor([0.9, 0.9, 0.0])  # row 2 is terminal: its next action never counts
    reward = torch.tensor([0.0, 1.0, 1.0])

    g_state = algo.generator.get_state()
    next_base = algo.base_actions(recorded, valid, {"state": next_hist}, needed=discount > 0)
    # row 0: recorded; row 1: a fresh base sample at s' from its history; row 2: terminal, left as recorded
    sample = ref.sample_actions({"state": next_hist[1:2]}, generator=torch.Generator().set_state(g_state))[0, 1]
    assert torch.equal(next_base[0], recorded[0]) and torch.equal(next_base[2], recorded[2])
    assert torch.allclose(next_base[1], sample, atol=1e-6)

    feat = algo.critic.encode({"state": next_state})
    a_next, bonus = algo.next_action(next_base)(feat)
    assert bonus is None
    with torch.no_grad():
        r = algo.actor(feat, base.action_norm.normalize(next_base))
    assert float(r.abs().min()) > 0  # the residual is really there
    assert torch.allclose(a_next, (next_base + 0.1 * r).clamp(-1, 1), atol=1e-6)

    members = torch.tensor([0, 2])
    y = algo.critic.td_target(reward, discount, {"state": next_state}, algo.next_action(next_base), members)
    with torch.no_grad():
        q_t = algo.critic.target(feat, a_next)  # (E, B)
    expected = reward + discount * torch.minimum(q_t[0], q_t[2])
    assert torch.allclose(y, expected, atol=1e-6)


# Exported policy ---------------------------------------------------------------------------------------
def test_exported_policy_reproduces_the_deterministic_action_and_loads(tmp_path):
    algo = make_algo(normalize_state=True)
    algo.critic.encoder.set_state_stats(torch.randn(50, S) * 0.3 + 0.2)
    perturb(algo.actor)
    save_policy(algo.policy(), tmp_path / "pol", meta={"env": "toy/reach"})
    pol = load_policy(tmp_path / "pol")
    assert pol.type == "residual" and pol.config.base_type == "consistency"
    doc = json.loads((tmp_path / "pol" / "config.json").read_text())
    assert doc["config"]["base_config"]["n_action_steps"] == 2
    states = np.random.default_rng(2).uniform(-1, 1, (5, S)).astype(np.float32)
    algo.reset()
    pol.reset()
    g1, g2 = gen(11), gen(11)
    for s in states:  # open-loop steps across chunk boundaries
        a = algo.act(obs_of(s), deterministic=True, generator=g1)
        chunk = pol.act(obs_of(s), generator=g2)
        assert chunk.shape == (1, A)
        assert np.allclose(chunk[0], a, atol=1e-6)
    # the residual moves the action away from the base (else this test would prove nothing)
    b = copy.deepcopy(pol.base)
    b.reset()
    algo.reset()
    assert not np.allclose(algo.act(obs_of(states[0]), True, gen(4)), b.select_action(obs_of(states[0]), gen(4)),
                           atol=1e-3)


def test_evaluation_does_not_disturb_the_training_episodes_chunk():
    """The trainer evaluates mid-episode: the training episode's open-loop queue must continue unchanged."""
    base = make_base()
    ref = copy.deepcopy(base)
    algo = make_algo(base, noise_std=0.0)  # zero residual, no noise: exploring acts are the base's actions
    s = np.random.default_rng(3).uniform(-1, 1, (3, S)).astype(np.float32)
    g_state = algo.generator.get_state()
    algo.reset()
    a0 = algo.act(obs_of(s[0]))
    algo.reset()  # an evaluation episode starts ...
    algo.act(obs_of(s[2]), deterministic=True)  # ... and samples a chunk of its own
    a1 = algo.act(obs_of(s[1]))  # back in the training episode: the second action of its first chunk
    g = torch.Generator().set_state(g_state)
    ref.reset()
    assert np.array_equal(a0, ref.select_action(obs_of(s[0]), g))
    assert np.array_equal(a1, ref.select_action(obs_of(s[1]), g))
    # a new training episode after the evaluation starts a new chunk
    algo.reset()
    algo.act(obs_of(s[1]))
    assert len(algo.base.policy._action_queue) == 1


# Training through the shared trainer -------------------------------------------------------------------
class ReachEnv(RobotEnv):
    """Reward 1 and the end of the episode when the action lands near 0.5 * s[:2]; else 6 steps then truncated."""

    def __init__(self):
        self.observation_space = observation_space(S)
        self.action_space = action_space(A)

    def _draw(self):
        self.s = self.np_random.uniform(-1, 1, S).astype(np.float32)
        return {"state": self.s.copy()}

    def _reset(self, options):
        self.t = 0
        return self._draw(), {}

    def _step(self, a):
        self.t += 1
        hit = float(np.abs(np.asarray(a) - 0.5 * self.s[:A]).max() < 0.15)
        return self._draw(), hit, bool(hit), self.t >= 6 and not hit, {"success": bool(hit)}


def write_demos(root, episodes=4, seed=0):
    env = ReachEnv()
    store = EpisodeStore(root)
    w = store.writer()
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        w.reset(obs)
        done = False
        while not done:
            a = np.clip(0.5 * obs["state"][:A], -1, 1)
            obs, r, term, trunc, info = env.step(a)
            w.step(a, obs, r, term, trunc, info)
            done = term or trunc
        w.close()


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_trains_through_the_online_trainer(tmp_path, backend):
    save_policy(make_base(), tmp_path / "base", meta={"env": "toy/reach"})
    write_demos(tmp_path / "demos")
    cfg = build_config("residual", overrides={
        "agent": {"hidden": [32, 32], "residual_hidden": [16, 16], "num_critics": 4, "critic_warmup": 40,
                  "fused_adam": False, "backend": backend, "target_clip": [0.0, 1.0], "normalize_state": True,
                  "actor_lr": 1e-3},
        "train": {"steps": 160, "warmup_steps": 40, "batch_size": 32, "eval_every": 160, "eval_episodes": 2,
                  "checkpoint_every": 10_000, "log_every": 50, "utd_ratio": 1}})
    tr = OnlineTrainer(cfg, "toy/reach", tmp_path / "run", demos=tmp_path / "demos", base=tmp_path / "base",
                       env_factory=lambda name, **kw: ReachEnv())
    if backend == "native" and tr.algo.backend != "native":
        pytest.skip("native critic operators not built here")
    assert buffer_fields(tr.algo, A)["base_action"] == (A,)
    n = tr.demo.size
    assert np.array_equal(tr.demo.extras["base_valid"][:n], tr.demo.has_next[:n].astype(np.float32))  # relabelled
    before = [p.detach().clone() for p in tr.algo.actor.parameters()]
    summary = tr.run(progress=False)
    assert summary["updates"] == 160 - 40 + 1
    _, losses = series(tmp_path / "run", "train/critic_loss")
    _, actor = series(tmp_path / "run", "train/actor_loss")
    assert losses and actor and np.all(np.isfinite(losses)) and np.all(np.isfinite(actor))
    assert np.isfinite(summary["eval/q_mean"]) and np.isfinite(summary["eval/mc_return"])
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.algo.actor.parameters()))  # the actor moved
    on = tr.online
    slots = np.flatnonzero(on.has_next[: on.size])
    assert np.all(on.extras["base_valid"][slots] == 1.0)
    # the executed action is within alpha + noise of the recorded base action
    assert np.max(np.abs(on.action[slots] - on.extras["base_action"][slots])) < 0.1 + 0.05 * 6
    pol = load_policy(tmp_path / "run")
    assert pol.type == "residual" and pol.meta["env"] == "toy/reach"
    obs = obs_of([0.4, -0.3, 0.1])
    tr.algo.reset()
    pol.reset()
    assert np.allclose(pol.select_action(obs, generator=gen(1)), tr.algo.act(obs, True, gen(1)), atol=1e-6)


def test_config_errors_name_the_field():
    assert R.ResidualConfig(actor_lr="1e-5").actor_lr == 1e-5  # YAML's "1e-5" is a string
    for bad, field in (({"actor_lr": "fast"}, "actor_lr"), ({"alpha": 0.0}, "alpha"), ({"noise_std": -0.1}, "noise_std"),
                       ({"critic_warmup": -1}, "critic_warmup"), ({"residual_hidden": []}, "residual_hidden")):
        with pytest.raises(ValueError, match=field):
            R.ResidualConfig(**bad)
    with pytest.raises(ValueError, match="base"):
        R.ResidualRL(R.ResidualConfig(), AlgoSpec(S, A))
