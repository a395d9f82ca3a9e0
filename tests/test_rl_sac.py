"""SAC agent: config validation, DrQ shift, image path, exact state round trip (same next update)."""
import numpy as np
import pytest
import torch

from robolearn.rl.encoders import EncoderConfig, random_shift
from robolearn.rl.sac import SACAgent, SACConfig

torch.set_num_threads(1)
TINY = dict(hidden=(16, 16), num_critics=4, batch_size=8, fused_adam=False)


def _batch(b=8, state_dim=3, action_dim=2, images=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    def obs():
        o = {"state": torch.randn(b, state_dim, generator=g)}
        if images:
            o["images"] = {cam: torch.randint(0, 256, (b, *shape), generator=g, dtype=torch.uint8)
                           for cam, shape in images.items()}
        return o
    return {"obs": obs(), "next_obs": obs(), "action": torch.rand(b, action_dim, generator=g) * 2 - 1,
            "reward": torch.randn(b, generator=g), "discount": torch.full((b,), 0.9)}


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="critic_subset"):
        SACConfig(num_critics=2, critic_subset=3)
    with pytest.raises(ValueError, match="discount"):
        SACConfig(discount=1.5)
    with pytest.raises(ValueError, match="utd_ratio"):
        SACConfig(utd_ratio=0)
    with pytest.raises(ValueError, match="target_clip"):
        SACConfig(target_clip=(1.0, 0.0))
    assert SACConfig(target_clip=[0, 1]).target_clip == (0.0, 1.0)
    with pytest.raises(ValueError, match="shift_pad"):
        EncoderConfig(shift_pad=-1)
    assert SACConfig().resolved_target_entropy(6) == -3.0  # RLPD default: -|A|/2
    assert SACConfig(target_entropy=-1.25).resolved_target_entropy(6) == -1.25


def test_random_shift_is_a_bounded_translation_with_replicated_edges():
    img = torch.arange(10 * 10, dtype=torch.int64).reshape(1, 10, 10, 1).repeat(64, 1, 1, 1)
    out = random_shift(img, 2, torch.Generator().manual_seed(0))
    assert out.shape == img.shape
    r, c = out[:, 5, 5, 0] // 10 - 5, out[:, 5, 5, 0] % 10 - 5  # centre pixel tells the shift
    assert r.abs().max() <= 2 and c.abs().max() <= 2 and len(set(zip(r.tolist(), c.tolist()))) > 5
    for i in range(64):  # each sample is exactly its own shift of the original, edges clamped
        rows = (torch.arange(10) + r[i]).clamp(0, 9)
        cols = (torch.arange(10) + c[i]).clamp(0, 9)
        assert torch.equal(out[i, :, :, 0], img[0, :, :, 0][rows][:, cols])
    assert random_shift(img, 0) is img


def test_update_changes_parameters_and_reports_metrics():
    agent = SACAgent(SACConfig(**TINY), 3, 2, seed=0)
    before = agent.actor.net[0].weight.clone()
    crit_before = agent.critic.net.net[0].weight.clone()
    target_before = agent.target_critic.net.net[0].weight.clone()
    m = agent.update(_batch(), update_actor=False)
    assert set(m) == {"critic_loss", "q_mean"}
    assert torch.equal(agent.actor.net[0].weight, before)  # critic-only step leaves the actor alone
    assert not torch.equal(agent.critic.net.net[0].weight, crit_before)
    # target moved by exactly tau toward the new online weights
    expected = target_before + 0.005 * (agent.critic.net.net[0].weight - target_before)
    assert torch.allclose(agent.target_critic.net.net[0].weight, expected, atol=1e-6)
    m = agent.update(_batch(seed=1), update_actor=True)
    assert {"actor_loss", "entropy", "alpha"} <= set(m)
    assert not torch.equal(agent.actor.net[0].weight, before)
    assert all(np.isfinite(v) for v in m.values())


def test_image_observations_share_the_code_path():
    shapes = {"front": (16, 16, 3), "wrist": (16, 16, 3)}
    cfg = SACConfig(**TINY, encoder=EncoderConfig(channels=4, conv_layers=2, feature_dim=6, shift_pad=2))
    agent = SACAgent(cfg, 3, 2, image_shapes=shapes, seed=0)
    assert agent.encoder.out_dim == 3 + 2 * 6
    conv_before = agent.encoder.convs["front"].conv[0].weight.clone()
    agent.update(_batch(images=shapes))
    assert not torch.equal(agent.encoder.convs["front"].conv[0].weight, conv_before)  # critic trains the encoder
    obs = {"state": np.zeros(3, np.float32),
           "images": {c: np.zeros(s, np.uint8) for c, s in shapes.items()}}
    a = agent.act(obs)
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)


def test_state_round_trip_gives_identical_next_update():
    cfg = SACConfig(**TINY)
    a = SACAgent(cfg, 3, 2, seed=3)
    for i in range(3):
        a.update(_batch(seed=i))
    saved = {k: v.clone() for k, v in a.state_tensors().items()}
    b = SACAgent(cfg, 3, 2, seed=99)  # different init and generator: everything must come from the state
    b.load_state_tensors(saved)
    ma, mb = a.update(_batch(seed=7)), b.update(_batch(seed=7))
    assert ma == mb
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    obs = {"state": np.ones(3, np.float32)}
    assert np.array_equal(a.act(obs), b.act(obs))  # same exploration noise too


def _mixed_batch(seed, images=None):
    b = _batch(seed=seed, images=images)
    b["is_demo"] = torch.arange(8) % 2 == 0
    return b


@pytest.mark.parametrize("images,native,extra", [
    (None, False, {}),
    ({"front": (12, 12, 3)}, False, {}),
    (None, True, {}),  # the update as C++ operators (robolearn/rl/native_ops.py)
    (None, True, {"q_normalize": True, "backup_entropy": False, "target_clip": None}),
])
def test_functional_update_matches_autograd_update(images, native, extra):
    """The fused functional update (eager here; compiled in the slow test) = the autograd reference:
    same metrics, same parameters, same Adam state in torch.optim's format, same RNG stream."""
    from robolearn.rl import native_ops
    from robolearn.rl.fused import FusedUpdate

    if native and native_ops.load() is not None:
        pytest.skip(f"native learner operators cannot be built here: {native_ops.load()}")
    cfg = dict(TINY, bc_weight=0.5, backup_entropy=True, actor_every=2, target_clip=(-1.0, 0.5),
               encoder=EncoderConfig(channels=4, conv_layers=1, feature_dim=5, shift_pad=2))
    cfg.update(extra)
    ref = SACAgent(SACConfig(**cfg), 3, 2, image_shapes=images, seed=4)
    fun = SACAgent(SACConfig(**cfg), 3, 2, image_shapes=images, seed=4)
    fun._fused = FusedUpdate(fun, compile=False, native=native)
    assert fun._fused.native == native
    for i in range(5):
        mr = ref.update(_mixed_batch(i, images), update_actor=i % 2 == 0)
        mf = fun.update(_mixed_batch(i, images), update_actor=i % 2 == 0)
        assert mr.keys() == mf.keys()
        for k in mr:
            assert mf[k] == pytest.approx(mr[k], rel=1e-5, abs=1e-6), (i, k)
    sr, sf = ref.state_tensors(), fun.state_tensors()
    assert sr.keys() == sf.keys()
    for k in sr:
        assert torch.allclose(sr[k].double(), sf[k].double(), rtol=1e-4, atol=1e-6), k
    assert sf["critic_opt.state.0.step"].item() == 5.0 and sf["actor_opt.state.0.step"].item() == 3.0
    # a functional-path checkpoint loads into the autograd path and both take the same next step
    ref.load_state_tensors(sf)
    mr, mf = ref.update(_mixed_batch(9, images)), fun.update(_mixed_batch(9, images))
    for k in mr:
        assert mf[k] == pytest.approx(mr[k], rel=1e-5, abs=1e-6), k


def test_state_standardization_is_fixed_saved_and_backward_compatible():
    from robolearn.rl.encoders import ObsEncoder

    enc = ObsEncoder(3, {}, EncoderConfig())
    states = torch.tensor([[0.50, 0.1, 7.0], [0.52, -0.1, 7.0], [0.54, 0.3, 7.0]])
    assert torch.equal(enc({"state": states}), states)  # identity until statistics are set
    enc.set_state_stats(states)
    out = enc({"state": states})
    assert torch.allclose(out[:, :2].mean(0), torch.zeros(2), atol=1e-6)
    assert torch.allclose(out[:, :2].std(0), torch.ones(2), atol=1e-5)
    assert torch.equal(out[:, 2], torch.zeros(3))  # a constant dim is centred, not blown up (scale floor)
    assert enc.state_scale[2].item() == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="finite"):
        enc.set_state_stats(torch.tensor([[0.0, float("nan"), 1.0], [1.0, 2.0, 3.0]]))
    # the statistics travel with the agent's checkpoint; a checkpoint from before them loads as identity
    agent = SACAgent(SACConfig(**TINY), 3, 2, seed=0)
    agent.encoder.set_state_stats(states)
    other = SACAgent(SACConfig(**TINY), 3, 2, seed=1)
    other.load_state_tensors(agent.state_tensors())
    assert torch.equal(other.encoder.state_scale, agent.encoder.state_scale)
    old = {k: v for k, v in agent.state_tensors().items() if not k.startswith("encoder.state_")}
    other.load_state_tensors(old)
    assert torch.equal(other.encoder.state_mean, torch.zeros(3))


def test_compile_failure_falls_back_to_the_eager_update():
    """No C++ toolchain (or any compiler error) at the first compiled call: warn, then train eagerly
    with exactly the numbers the eager agent produces (the RNG stream is rewound)."""
    ref = SACAgent(SACConfig(**TINY), 3, 2, seed=4)
    agent = SACAgent(SACConfig(**TINY), 3, 2, seed=4)

    def broken(*args):
        raise RuntimeError("simulated: no C++ compiler")

    agent._fused = broken
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler"):
        mf = agent.update(_batch(seed=0))
    assert agent._fused is None
    assert mf == ref.update(_batch(seed=0))
    assert agent.update(_batch(seed=1)) == ref.update(_batch(seed=1))


def test_target_runs_only_the_drawn_members():
    """Evaluating just the drawn pair equals subset_min over the whole ensemble (batched and loop critics)."""
    from robolearn.rl.losses import subset_min
    from robolearn.rl.networks import Critic, LoopCritic

    torch.manual_seed(0)
    critic = Critic(5, 2, (16, 16), 6, True)
    loop = LoopCritic(critic)
    feat, act = torch.randn(7, 5), torch.randn(7, 2)
    members = torch.tensor([4, 1])
    full = critic(feat, act)
    sub = critic(feat, act, members)
    assert sub.shape == (2, 7)
    assert torch.allclose(sub, full[[4, 1]], atol=1e-6)
    assert torch.allclose(sub.min(0).values, subset_min(full, members), atol=1e-6)
    assert torch.allclose(loop(feat, act, members), sub, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("native", [True, False])
def test_compiled_update_matches_eager(native):
    """The whole update compiled as one graph (robolearn/rl/fused.py; cold compile ~40 s): same numbers as eager,
    with the critic on the C++ operators (the default for state observations) and all-inductor."""
    eager = SACAgent(SACConfig(**TINY), 3, 2, seed=4)
    compiled = SACAgent(SACConfig(**TINY, compile=True, native_update=native), 3, 2, seed=4)
    assert compiled._fused.native == native
    for i in range(6):  # both schedules, alternating: each compiled once, then run without guard checks
        me, mc = eager.update(_batch(seed=i), update_actor=i % 2 == 0), compiled.update(_batch(seed=i), update_actor=i % 2 == 0)
        assert mc.keys() == me.keys()
        for k in me:
            assert mc[k] == pytest.approx(me[k], rel=1e-4, abs=1e-5), k
    se, sc = eager.state_tensors(), compiled.state_tensors()
    for k in se:
        assert torch.allclose(se[k].double(), sc[k].double(), rtol=1e-4, atol=1e-6), k
    # a second compiled agent of another shape in the same process gets its own graphs
    other_cfg = dict(TINY, num_critics=2, hidden=(8, 8))
    eager2 = SACAgent(SACConfig(**other_cfg), 3, 2, seed=5)
    compiled2 = SACAgent(SACConfig(**other_cfg, compile=True, native_update=native), 3, 2, seed=5)
    for i in range(4):
        for e, c in ((eager2, compiled2), (eager, compiled)):
            me, mc = e.update(_batch(seed=10 + i), update_actor=i % 2 == 0), c.update(_batch(seed=10 + i), update_actor=i % 2 == 0)
            assert mc.keys() == me.keys()
            for k in me:
                assert mc[k] == pytest.approx(me[k], rel=1e-4, abs=1e-5), k
    if native:  # no traced graph: any batch size runs, with the eager numbers
        me, mc = eager.update(_batch(b=4, seed=9)), compiled.update(_batch(b=4, seed=9))
        for k in me:
            assert mc[k] == pytest.approx(me[k], rel=1e-4, abs=1e-5), k
    else:
        with pytest.raises(ValueError, match="batch layout changed"):
            compiled.update(_batch(b=4, seed=9))
