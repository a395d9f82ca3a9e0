"""SAC over the shared critic: config validation, DrQ shift, image path, exact state round trip (same next
update), fixed and saved state standardization, and the native critic backend giving the eager numbers."""
import numpy as np
import pytest
import torch

from robolearn.policies.features import EncoderConfig, FeatureEncoder, random_shift
from robolearn.rl import native_ops
from robolearn.rl.algorithm import AlgoConfig, AlgoSpec
from robolearn.rl.sac import SAC, SACConfig

TINY = dict(hidden=(16, 16), num_critics=4, fused_adam=False, backend="eager")
SPEC = AlgoSpec(3, 2)


def _need_native():
    why = native_ops.load()
    if why is not None:  # tests/test_rl_native_ops.py fails the suite for this when a compiler exists
        pytest.skip(f"native critic operators unavailable: {why}")


def _batch(b=8, state_dim=3, action_dim=2, images=None, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)

    def obs():
        o = {"state": torch.randn(b, state_dim, generator=g)}
        if images:
            o["images"] = {cam: torch.randint(0, 256, (b, *shape), generator=g, dtype=torch.uint8)
                           for cam, shape in images.items()}
        return o

    batch = {"obs": obs(), "next_obs": obs(), "action": torch.rand(b, action_dim, generator=g) * 2 - 1,
             "reward": torch.randn(b, generator=g), "discount": torch.full((b,), 0.9),
             "is_demo": torch.arange(b) % 2 == 0}
    return _to(batch, device)


def _to(x, device):
    if isinstance(x, dict):
        return {k: _to(v, device) for k, v in x.items()}
    return x.to(device)


def _as_buffer(states: torch.Tensor):
    """The two fields of a demo buffer that ``prepare`` reads: stored states and their episode ids (>= 0)."""
    import types

    return types.SimpleNamespace(state=states.numpy(), episode=np.zeros(len(states), np.int64))


def test_config_validation_names_the_field():
    from robolearn.train.rl_config import RLTrainConfig

    with pytest.raises(ValueError, match="critic_subset"):
        SACConfig(num_critics=2, critic_subset=3)
    with pytest.raises(ValueError, match="discount"):
        SACConfig(discount=1.5)
    with pytest.raises(ValueError, match="target_clip"):
        SACConfig(target_clip=(1.0, 0.0))
    with pytest.raises(ValueError, match="backend.*'bogus'"):
        SACConfig(backend="bogus")
    with pytest.raises(ValueError, match="bc_weight"):
        SACConfig(bc_weight=-1.0)
    with pytest.raises(ValueError, match="actor_lr"):
        SACConfig(actor_lr=0.0)
    with pytest.raises(ValueError, match="hidden"):
        SACConfig(hidden=())
    with pytest.raises(ValueError, match="utd_ratio"):  # a loop setting now: the trainer's config
        RLTrainConfig(utd_ratio=0)
    assert SACConfig(target_clip=[0, 1]).target_clip == (0.0, 1.0)
    with pytest.raises(ValueError, match="shift_pad"):
        EncoderConfig(shift_pad=-1)
    assert SACConfig(encoder={"shift_pad": 0}).encoder == EncoderConfig(shift_pad=0)  # recipes give dicts
    assert SACConfig().resolved_target_entropy(6) == -3.0  # RLPD default: -|A|/2
    assert SACConfig(target_entropy=-1.25).resolved_target_entropy(6) == -1.25
    with pytest.raises(TypeError, match="SACConfig"):  # an algorithm takes its own config class
        SAC(AlgoConfig(), SPEC)


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


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_update_changes_parameters_and_reports_metrics(backend, device):
    if backend == "native":
        _need_native()
        device = "cpu"  # the native backend is CPU-only
    agent = SAC(SACConfig(**{**TINY, "backend": backend}), SPEC, device=device, seed=0)
    assert agent.backend == backend
    before = agent.actor.net[0].weight.clone()
    alpha_before = float(agent.alpha)
    crit_before = agent.critic.net.net.net[0].weight.clone()
    target_before = agent.critic.target.net.net[0].weight.clone()
    m = agent.update(_batch(device=device), update_actor=False)
    assert set(m) == {"critic_loss", "q_mean"}
    assert torch.equal(agent.actor.net[0].weight, before)  # critic-only step leaves the actor alone
    assert float(agent.alpha) == alpha_before
    assert not torch.equal(agent.critic.net.net.net[0].weight, crit_before)
    # target moved by exactly tau toward the new online weights
    expected = target_before + 0.005 * (agent.critic.net.net.net[0].weight - target_before)
    assert torch.allclose(agent.critic.target.net.net[0].weight, expected, atol=1e-6)
    m = agent.update(_batch(seed=1, device=device), update_actor=True)
    assert set(m) == {"critic_loss", "q_mean", "actor_loss", "entropy", "alpha"}
    assert not torch.equal(agent.actor.net[0].weight, before)
    assert m["alpha"] == pytest.approx(float(agent.alpha)) and m["alpha"] != alpha_before
    assert all(np.isfinite(v) for v in m.values())
    assert agent.num_updates == 2


def test_image_observations_share_the_code_path(device):
    shapes = {"front": (16, 16, 3), "wrist": (16, 16, 3)}
    cfg = SACConfig(**{**TINY, "backend": "auto"},
                    encoder=EncoderConfig(channels=4, conv_layers=2, feature_dim=6, shift_pad=2))
    agent = SAC(cfg, AlgoSpec(3, 2, shapes), device=device, seed=0)
    assert agent.backend == "eager"  # auto: the critic trains an encoder, which the native step cannot
    assert agent.critic.encoder.out_dim == 3 + 2 * 6
    conv_before = agent.critic.encoder.convs["front"].conv[0].weight.clone()
    agent.update(_batch(images=shapes, device=device))
    assert not torch.equal(agent.critic.encoder.convs["front"].conv[0].weight, conv_before)  # critic trains it
    obs = {"state": np.zeros(3, np.float32), "images": {c: np.zeros(s, np.uint8) for c, s in shapes.items()}}
    a = agent.act(obs)
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    # the exported policy acts as the agent does (same encoder weights, same actor)
    pol = agent.policy()
    assert pol.config.cameras == ("front", "wrist") and pol.config.image_size == 16
    assert np.allclose(pol.act(obs, deterministic=True)[0], agent.act(obs, deterministic=True), atol=1e-6)


@pytest.mark.parametrize("backend", ["eager", "native"])
def test_state_round_trip_gives_identical_next_update(backend, device):
    if backend == "native":
        _need_native()
        device = "cpu"
    cfg = SACConfig(**{**TINY, "backend": backend})
    a = SAC(cfg, SPEC, device=device, seed=3)
    for i in range(3):
        a.update(_batch(seed=i, device=device), update_actor=i != 1)
    saved = {k: v.clone() for k, v in a.state_tensors().items()}
    b = SAC(cfg, SPEC, device=device, seed=99)  # different init and generator: everything must come from the state
    assert not torch.equal(b.state_tensors()["actor.net.0.weight"], saved["actor.net.0.weight"])
    b.load_state_tensors(saved)
    assert b.num_updates == 3
    ma, mb = a.update(_batch(seed=7, device=device)), b.update(_batch(seed=7, device=device))
    assert ma == mb
    sa, sb = a.state_tensors(), b.state_tensors()
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    obs = {"state": np.ones(3, np.float32)}
    assert np.array_equal(a.act(obs), b.act(obs))  # same exploration noise too


def test_state_standardization_is_fixed_saved_and_exported():
    enc = FeatureEncoder(3, {}, EncoderConfig())
    states = torch.tensor([[0.50, 0.1, 7.0], [0.52, -0.1, 7.0], [0.54, 0.3, 7.0]])
    assert torch.allclose(enc({"state": states}), states, atol=1e-6)  # identity until statistics are set
    enc.set_state_stats(states)
    out = enc({"state": states})
    assert torch.allclose(out[:, :2].mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(out[:, :2].std(0), torch.ones(2), atol=1e-4)
    assert torch.allclose(out[:, 2], torch.zeros(3), atol=1e-5)  # a constant dim is centred, not blown up
    scale = (enc.state_norm.max - enc.state_norm.min) / 2  # min/max hold mean -/+ std
    assert scale[2].item() == pytest.approx(1e-2, rel=1e-4)  # the std floor (float32 around 7.0)
    with pytest.raises(ValueError, match="finite"):
        enc.set_state_stats(torch.tensor([[0.0, float("nan"), 1.0], [1.0, 2.0, 3.0]]))

    # prepare() fixes them from the demos when normalize_state is on, and only then
    demos = states.repeat(4, 1) + torch.linspace(0, 0.1, 12).unsqueeze(1)
    off = SAC(SACConfig(**TINY), SPEC, seed=0)
    off.prepare(_as_buffer(demos))
    assert torch.equal(off.critic.encoder.state_norm.max, torch.ones(3))
    agent = SAC(SACConfig(**TINY, normalize_state=True), SPEC, seed=0)
    agent.prepare(_as_buffer(demos))
    lo = agent.critic.encoder.state_norm.min.clone()
    assert torch.allclose(lo, demos.mean(0) - demos.std(0).clamp_min(1e-2), atol=1e-6)
    for i in range(2):  # training never moves them
        agent.update(_batch(seed=i))
    assert torch.equal(agent.critic.encoder.state_norm.min, lo)
    # they travel with the checkpoint and the exported policy
    tensors = agent.state_tensors()
    assert torch.equal(tensors["encoder.state_norm.min"], lo)
    other = SAC(SACConfig(**TINY, normalize_state=True), SPEC, seed=1)
    other.load_state_tensors(tensors)
    assert torch.equal(other.critic.encoder.state_norm.min, lo)
    assert torch.equal(other.critic.encoder.state_norm.max, agent.critic.encoder.state_norm.max)
    pol = agent.policy()
    assert torch.equal(pol.encoder.state_norm.min, lo)
    obs = {"state": np.array([0.51, 0.0, 7.0], np.float32)}
    assert np.allclose(pol.act(obs, deterministic=True)[0], agent.act(obs, deterministic=True), atol=1e-6)
    # a checkpoint without them is refused, naming what is missing (not silently loaded as identity)
    old = {k: v for k, v in tensors.items() if not k.startswith("encoder.state_norm")}
    with pytest.raises(ValueError, match="encoder.*state_norm"):
        other.load_state_tensors(old)


def test_target_runs_only_the_drawn_members():
    """Evaluating just the drawn pair equals subset_min over the whole ensemble (batched and loop critics)."""
    from robolearn.rl.losses import subset_min
    from robolearn.policies.q_ensemble import Critic, LoopCritic

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


# The native critic backend = the eager one ---------------------------------------------------------------
def _assert_same_run(ref, other, batches, schedule, rel=1e-4):
    for i, (batch, upd) in enumerate(zip(batches, schedule)):
        mr, mo = ref.update(batch, update_actor=upd), other.update(batch, update_actor=upd)
        assert mr.keys() == mo.keys()
        for k in mr:
            assert mo[k] == pytest.approx(mr[k], rel=rel, abs=1e-6), (i, k)
    sr, so = ref.state_tensors(), other.state_tensors()
    assert sr.keys() == so.keys()
    for k in sr:
        assert torch.allclose(sr[k].double(), so[k].double(), rtol=rel, atol=1e-6), k


@pytest.mark.parametrize("options,alternate", [
    ({}, True),
    ({"fused_adam": True}, True),                         # the default optimiser (fused where the platform has it)
    ({"bc_weight": 0.5}, True),                           # BC term on the is_demo rows
    ({"backup_entropy": True}, False),
    ({"target_clip": (-1.0, 0.5)}, True),
    ({"q_normalize": True, "bc_weight": 1.0}, False),
    ({"bc_weight": 0.5, "backup_entropy": True, "target_clip": (-0.5, 0.5), "q_normalize": True,
      "normalize_state": True}, True),
], ids=["rlpd", "fused_adam", "bc", "backup_entropy", "target_clip", "q_normalize", "all"])
def test_native_backend_matches_eager(options, alternate):
    """Same seed, same batches: the C++ critic step (members split over 2 threads, batch 256) and the actor's
    path through its input gradient give the eager metrics, parameters, Adam state and RNG stream."""
    _need_native()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = dict(TINY, num_critics=5, **options)
        eager = SAC(SACConfig(**{**cfg, "backend": "eager"}), SPEC, seed=4)
        native = SAC(SACConfig(**{**cfg, "backend": "native"}), SPEC, seed=4)
        assert native.backend == "native" and eager.backend == "eager"
        demos = torch.randn(64, 3) * 3 + 2
        eager.prepare(_as_buffer(demos)), native.prepare(_as_buffer(demos))
        batches = [_batch(b=256, seed=i) for i in range(4)]
        schedule = [i % 2 == 0 for i in range(4)] if alternate else [True] * 4
        _assert_same_run(eager, native, batches, schedule)
        sn = native.state_tensors()
        assert sn["critic_opt.state.0.step"].item() == 4.0
        assert sn["actor_opt.state.0.step"].item() == sum(schedule)
        # a native checkpoint loads into the eager backend and both take the same next step
        eager.load_state_tensors(sn)
        _assert_same_run(eager, native, [_batch(b=256, seed=9)], [True])
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_compile_backend_matches_eager():
    """backend: compile (torch.compile'd encoder and ensemble; cold compile ~30-60 s) = eager numbers."""
    cfg = dict(TINY, bc_weight=0.5, backup_entropy=True)
    eager = SAC(SACConfig(**{**cfg, "backend": "eager"}), SPEC, seed=4)
    compiled = SAC(SACConfig(**{**cfg, "backend": "compile"}), SPEC, seed=4)
    assert compiled.backend == "compile"
    _assert_same_run(eager, compiled, [_batch(b=32, seed=i) for i in range(4)], [True, False, True, False])


def test_sac_runs_on_the_test_device(device):
    """Models, optimiser state, sampled noise and batches on ``device`` (ROBOLEARN_TEST_DEVICE=cuda on a GPU);
    the exported policy comes back on the CPU, ready to save."""
    from robolearn.train.online import to_device

    agent = SAC(SACConfig(**{**TINY, "backend": "eager"}), SPEC, device=device, seed=0)
    batch = to_device({**_batch(), "is_demo": torch.arange(8) < 4}, device)
    m = agent.update(batch)
    assert all(np.isfinite(v) for v in m.values())
    assert all(p.device == device for p in agent.actor.parameters())
    assert all(p.device == device for p in agent.critic.net.parameters())
    assert all(t.device == device for st in agent.actor_opt.state.values() for t in st.values() if torch.is_tensor(t)
               and t.dim() > 0)
    assert agent.generator.device.type == device.type
    a = agent.act({"state": np.zeros(3, np.float32)})
    assert a.shape == (2,) and np.all(np.abs(a) <= 1)
    pol = agent.policy()
    assert all(p.device.type == "cpu" for p in pol.parameters())
    assert np.allclose(pol.select_action({"state": np.zeros(3, np.float32)}),
                       agent.act({"state": np.zeros(3, np.float32)}, deterministic=True), atol=1e-5)


def test_temperature_floor_holds_alpha_and_lets_it_rise_from_there():
    with pytest.raises(ValueError, match="min_temperature"):
        SACConfig(init_temperature=0.01, min_temperature=0.02)
    # a huge temperature lr: every update moves log alpha by ~1 (Adam), so without a floor alpha falls fast
    # while the policy's entropy is above its target (-|A|/2 = -1 here, a fresh actor's is higher)
    free = SAC(SACConfig(**TINY, init_temperature=0.01, temp_lr=1.0), SPEC, seed=0)
    floored = SAC(SACConfig(**TINY, init_temperature=0.01, temp_lr=1.0, min_temperature=0.005), SPEC, seed=0)
    for k in range(3):
        m_free, m_floor = (a.update(_batch(seed=k), update_actor=True) for a in (free, floored))
        assert m_free["entropy"] > free.target_entropy
    assert float(free.alpha) < 0.001
    assert float(floored.alpha) == pytest.approx(0.005, rel=1e-5) and m_floor["alpha"] == pytest.approx(0.005, rel=1e-5)
    # below its target entropy the temperature rises at once from the floor (not from a parameter far below)
    floored.target_entropy = 100.0
    floored.update(_batch(seed=9), update_actor=True)
    assert float(floored.alpha) > 0.006
