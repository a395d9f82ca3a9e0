"""The online loop on a tiny real env: learning smoke, SIGKILL-style resume equivalence, bad input."""

import numpy as np
import pytest
import torch

from robolearn.envs.api import RobotEnv, action_space, observation_space
from robolearn.train.logging import series
from robolearn.train.online import OnlineTrainer
from robolearn.train.rl_checkpoint import latest_checkpoint
from robolearn.train.rl_config import build_config


class TrackEnv(RobotEnv):
    """Reward -(a - 0.6 s0)^2: the optimal action is known, 0.6 * s0, at every state."""

    def __init__(self, length=1):
        self.observation_space = observation_space(2)
        self.action_space = action_space(1)
        self.length = length

    def _draw(self):
        self.s = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        return {"state": self.s.copy()}

    def _reset(self, options):
        self.t = 0
        return self._draw(), {}

    def _step(self, a):
        r = -float((a[0] - 0.6 * self.s[0]) ** 2)
        self.t += 1
        done = self.t >= self.length
        return self._draw(), r, False, done, {"success": r > -0.01}


def _factory(length):
    return lambda name, **kw: TrackEnv(length)


def _cfg(**train):
    return build_config("sac", overrides={
        "agent": {"hidden": [32, 32], "fused_adam": False, "discount": 0.0, "critic_lr": 3e-3, "actor_lr": 3e-3,
                  "backend": "eager"},
        "train": {"batch_size": 32, "warmup_steps": 200, "eval_every": 10_000, "eval_episodes": 0, "log_every": 100,
                  "checkpoint_every": 10_000, **train}})


def _policy_error(agent):
    s0 = np.linspace(-0.9, 0.9, 19, dtype=np.float32)
    acts = [agent.act({"state": np.array([x, 0.3], np.float32)}, deterministic=True)[0] for x in s0]
    return float(np.mean(np.abs(np.array(acts) - 0.6 * s0)))


def test_learning_smoke_finds_known_optimal_action(tmp_path):
    trainer = OnlineTrainer(_cfg(steps=1500), "toy/track", tmp_path / "run", seed=0, env_factory=_factory(1))
    untrained = _policy_error(trainer.agent)
    summary = trainer.run(progress=False)
    assert summary["updates"] == 1301  # one per env step from the end of warm-up
    learned = _policy_error(trainer.agent)
    assert untrained > 0.15  # the task is not solved at initialisation ...
    assert learned < 0.08, (untrained, learned)  # ... and is after 1.3k updates
    steps, rets = series(tmp_path / "run", "train/episode_return")
    assert np.mean(rets[-100:]) > np.mean(rets[:100])


def test_resume_after_kill_continues_the_same_run(tmp_path):
    cfg = _cfg(steps=160, checkpoint_every=40, warmup_steps=30, eval_every=80, eval_episodes=1, log_every=20)
    full = OnlineTrainer(cfg, "toy/track", tmp_path / "full", seed=5, env_factory=_factory(8))
    full.run(progress=False)
    # "killed" run: its last checkpoint is at step 80 (an episode end); a killed process would also
    # have logged rows past the checkpoint, which the resume must drop
    part = OnlineTrainer(cfg, "toy/track", tmp_path / "part", seed=5, env_factory=_factory(8))
    part.run(progress=False, stop_at=80)
    assert latest_checkpoint(tmp_path / "part").name == "step_000000080"
    with (tmp_path / "part" / "scalars.csv").open("a") as fh:
        fh.write("88,train/episode_return,-99.0,0\n96,train/episode_ret")  # incl. a torn last line
    # a trainer restored from disk draws the same next batch and takes the same next update as the
    # uninterrupted one still in memory
    loaded = OnlineTrainer(cfg, "toy/track", tmp_path / "part", seed=5, env_factory=_factory(8))
    loaded.load_checkpoint(latest_checkpoint(tmp_path / "part"))
    a = cfg.agent
    ba, bb = part.mixer.sample(cfg.train.batch_size, a.discount), loaded.mixer.sample(cfg.train.batch_size, a.discount)
    for k in ("action", "reward", "discount"):
        assert torch.equal(ba[k], bb[k])
    assert torch.equal(ba["obs"]["state"], bb["obs"]["state"])
    assert part.agent.update(ba) == loaded.agent.update(bb)
    assert np.array_equal(part.agent.act({"state": np.ones(2, np.float32)}),
                          loaded.agent.act({"state": np.ones(2, np.float32)}))
    # and the whole resumed run ends exactly where the uninterrupted one did
    resumed = OnlineTrainer(cfg, "toy/track", tmp_path / "part", seed=5, env_factory=_factory(8))
    resumed.run(resume=True, progress=False)
    fa, ra = full.agent.state_tensors(), resumed.agent.state_tensors()
    assert sorted(fa) == sorted(ra)
    for k in fa:
        assert torch.equal(fa[k], ra[k]), k
    # one continuous curve: the CSV has no duplicated steps after the resume point
    fs, fv = series(tmp_path / "full", "train/episode_return")
    rs, rv = series(tmp_path / "part", "train/episode_return")
    assert fs == rs and np.allclose(fv, rv)
    assert series(tmp_path / "full", "eval/return") == series(tmp_path / "part", "eval/return")


def test_resume_with_more_steps_extends_a_finished_run(tmp_path):
    """`--resume --steps N` on a finished run continues it to N (how a 4k run became a 10k one): one curve
    with no step twice, and the steps the first run logged are kept as they were."""
    short = _cfg(steps=40, checkpoint_every=20, warmup_steps=10, eval_every=20, eval_episodes=1, log_every=10)
    OnlineTrainer(short, "toy/track", tmp_path / "r", seed=4, env_factory=_factory(4)).run(progress=False)
    before = series(tmp_path / "r", "eval/return")
    assert before[0] == [20, 40]
    longer = _cfg(steps=80, checkpoint_every=20, warmup_steps=10, eval_every=20, eval_episodes=1, log_every=10)
    summary = OnlineTrainer(longer, "toy/track", tmp_path / "r", seed=4, env_factory=_factory(4)).run(
        resume=True, progress=False)
    assert summary["env_step"] == 80 and latest_checkpoint(tmp_path / "r").name == "step_000000080"
    steps, values = series(tmp_path / "r", "eval/return")
    assert steps == [20, 40, 60, 80] and values[:2] == before[1]


def test_actor_metrics_are_logged_when_log_steps_land_on_critic_only_updates(tmp_path):
    """actor_every 2 at one update per env step: after a 6-step warm-up every log step (multiples of 10) is an
    odd critic update, a critic-only one (before the fix the log had no actor loss at all, as in every
    ConRFT run). The actor's latest loss must still be in the log, once per log step."""
    cfg = _cfg(steps=60, warmup_steps=6, log_every=10, actor_every=2)
    OnlineTrainer(cfg, "toy/track", tmp_path / "r", seed=0, env_factory=_factory(4)).run(progress=False)
    steps, values = series(tmp_path / "r", "train/actor_loss")
    assert steps == [10, 20, 30, 40, 50, 60] and all(np.isfinite(values))
    assert series(tmp_path / "r", "train/critic_loss")[0] == steps


def test_existing_run_needs_resume_and_bad_config_names_key(tmp_path):
    cfg = _cfg(steps=20, warmup_steps=5)
    OnlineTrainer(cfg, "toy/track", tmp_path / "r", env_factory=_factory(4)).run(progress=False)
    with pytest.raises(ValueError, match="--resume"):
        OnlineTrainer(cfg, "toy/track", tmp_path / "r", env_factory=_factory(4)).run(progress=False)
    with pytest.raises(ValueError, match="seed"):
        OnlineTrainer(cfg, "toy/track", tmp_path / "r", seed=3, env_factory=_factory(4)).run(resume=True, progress=False)
    other = _cfg(steps=20, warmup_steps=5)
    other.agent.critic_lr = 1e-4
    with pytest.raises(ValueError, match="different agent config"):
        OnlineTrainer(other, "toy/track", tmp_path / "r", env_factory=_factory(4)).run(resume=True, progress=False)
    with pytest.raises(ValueError, match="'nope'"):
        build_config("rlpd", {"agent": {"nope": 1}})
    with pytest.raises(KeyError, match="unknown algo"):
        build_config("ppo")
    with pytest.raises(ValueError, match="'utd_ratio'"):  # a loop setting in the agent section names the key
        build_config("rlpd", {"agent": {"utd_ratio": 2}})
    # --set agent.actor_lr=1e-5 arrives as text (YAML 1.1): a float field takes it, a non-number names the field
    assert build_config("rlpd", overrides={"agent": {"actor_lr": "1e-5"}}).agent.actor_lr == 1e-5
    with pytest.raises(ValueError, match="actor_lr: expected a number, got 'fast'"):
        build_config("rlpd", overrides={"agent": {"actor_lr": "fast"}})


def test_plot_curve_mean_and_range_across_seeds(tmp_path):
    from robolearn.train import plot_cmd
    from robolearn.train.logging import ScalarLogger

    for seed, vals in enumerate([[1.0, 3.0, 5.0], [3.0, 5.0, 9.0]]):
        with ScalarLogger(tmp_path / f"s{seed}", tensorboard=False) as log:
            for step, v in zip([10, 20, 30], vals):
                log.log(step, {"eval/return": v, "other": -v})
    c = plot_cmd.curve([str(tmp_path / "s0"), str(tmp_path / "s1")], "eval/return")
    assert c["steps"] == [10, 20, 30] and c["mean"] == [2.0, 4.0, 7.0]
    assert c["min"] == [1.0, 3.0, 5.0] and c["max"] == [3.0, 5.0, 9.0]
    with pytest.raises(ValueError, match="no values"):
        plot_cmd.curve([str(tmp_path / "s0")], "eval/missing")
    import argparse
    parser = argparse.ArgumentParser()
    plot_cmd.add_arguments(parser)
    args = parser.parse_args([str(tmp_path / "s0"), "--curve", str(tmp_path / "s1"), "--out", str(tmp_path / "c.png")])
    assert plot_cmd.run(args) == 0 and (tmp_path / "c.png").stat().st_size > 1000


class TakeoverEnv(TrackEnv):
    """Every third step a 'person' takes over and executes the optimal action."""

    def _step(self, a):
        takeover = self.t % 3 == 0
        executed = np.array([0.6 * self.s[0]], np.float32) if takeover else a
        obs, r, term, trunc, info = super()._step(executed)
        if takeover:
            info["intervene_action"] = executed
        return obs, r, term, trunc, info


def _write_demo(root, action_error=0.0):
    """One 4-step TrackEnv episode into an episode store; returns its rewards."""
    from robolearn.data.episode_store import EpisodeStore

    store = EpisodeStore(root)
    w = store.writer(meta={"env": "toy"})
    env = TrackEnv(4)
    obs, _ = env.reset(seed=0)
    w.reset(obs)
    rewards = []
    for _ in range(4):
        a = np.array([0.6 * obs["state"][0] + action_error], np.float32)
        obs, r, term, trunc, info = env.step(a)
        w.step(a, obs, r, term, trunc, info)
        rewards.append(r)
    w.close()
    return np.array(rewards, np.float32)


def test_reward_bias_shifts_online_and_demo_rewards_alike(tmp_path):
    raw = _write_demo(tmp_path / "demos", action_error=0.3)
    cfg = _cfg(steps=12, warmup_steps=100)
    cfg.train.reward_bias = -1.0
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", demos=tmp_path / "demos", env_factory=_factory(4))
    tr.run(progress=False)
    assert np.allclose(tr.demo.reward[:4], raw - 1.0)
    slots = np.flatnonzero(tr.online.has_next[: tr.online.size])
    s0, a = tr.online.state[slots, 0], tr.online.action[slots, 0]
    assert np.allclose(tr.online.reward[slots], -(a - 0.6 * s0) ** 2 - 1.0, atol=1e-5)


def test_interventions_are_stored_as_executed_and_join_the_demo_buffer(tmp_path):
    _write_demo(tmp_path / "demos")
    cfg = _cfg(steps=30, warmup_steps=100)  # no updates: only the data path
    cfg.agent.normalize_state = True
    tr = OnlineTrainer(cfg, "toy/takeover", tmp_path / "run", demos=tmp_path / "demos",
                       env_factory=lambda name, **kw: TakeoverEnv(6))
    before = len(tr.demo)
    tr.run(progress=False)
    assert tr.interventions == 10 and len(tr.demo) == before + 10  # steps 0, 3 of each 6-step episode
    online = tr.online
    slots = np.flatnonzero(online.has_next[: online.size])
    # every stored online transition's reward matches its stored action: the executed one was stored
    s0 = online.state[slots, 0]
    r_expected = -(online.action[slots, 0] - 0.6 * s0) ** 2
    assert np.allclose(online.reward[slots], r_expected, atol=1e-5)
    assert np.isclose(online.reward[slots], 0.0, atol=1e-7).sum() >= 10
    # normalize_state: states are standardized with the demos' statistics (5 states of the one demo episode)
    demo_states = torch.from_numpy(tr.demo.state[:5])
    norm = tr.agent.critic.encoder.state_norm
    assert torch.allclose((norm.min + norm.max) / 2, demo_states.mean(0), atol=1e-6)
    assert torch.allclose((norm.max - norm.min) / 2, demo_states.std(0).clamp_min(1e-2), atol=1e-6)
    # every online transition records whether a person acted (the buffers' intervention field)
    flags = online.extras["intervened"][slots]
    assert flags.sum() == 10 and set(np.unique(flags)) == {0.0, 1.0}


@pytest.mark.parametrize("name", ["rlpd", "rlpd_bc", "sac"])
def test_rl_recipes_build_valid_configs(name):
    import pathlib

    import yaml

    recipe = yaml.safe_load((pathlib.Path(__file__).parents[1] / "policies" / f"{name}.yaml").read_text())
    cfg = build_config(recipe["algo"], recipe)
    assert cfg.agent.backend == "auto" and cfg.train.steps > 0 and cfg.train.utd_ratio >= 1
    if name.startswith("rlpd"):
        assert cfg.agent.num_critics == 10 and cfg.agent.critic_subset == 2 and not cfg.agent.backup_entropy
        assert cfg.train.demo_fraction == 0.5
    assert (cfg.agent.bc_weight > 0) == (name == "rlpd_bc")


def test_evaluation_logs_critic_q_next_to_the_discounted_return(tmp_path):
    cfg = _cfg(steps=80, warmup_steps=20, eval_every=80, eval_episodes=2)
    tr = OnlineTrainer(cfg, "toy/track", tmp_path / "run", seed=1, env_factory=_factory(5))
    tr.run(progress=False)
    _, ret = series(tmp_path / "run", "eval/return")
    _, length = series(tmp_path / "run", "eval/episode_length")
    _, mc = series(tmp_path / "run", "eval/mc_return")
    _, q = series(tmp_path / "run", "eval/q_mean")
    _, over = series(tmp_path / "run", "eval/q_overestimation")
    # discount 0: the return-to-go of each step is its own reward, so the mean is return / length
    assert mc[-1] == pytest.approx(ret[-1] / length[-1], rel=1e-5)
    assert over[-1] == pytest.approx(q[-1] - mc[-1], abs=1e-6)
    # the logged Q is the critic's mean over members on the visited (s, a), recomputed here
    steps: list = []
    from robolearn.train.evaluate import rollout
    for k in range(2):  # evaluation runs the exported policy (what eval / serve load)
        rollout(tr.algo.policy(), tr.eval_env, 10**9 + k, {}, steps=steps)
    state = torch.from_numpy(np.stack([o["state"] for o, _, _ in steps]))
    action = torch.from_numpy(np.stack([a for _, a, _ in steps]))
    assert q[-1] == pytest.approx(float(tr.algo.q_estimate({"state": state}, action).mean()), rel=1e-5)


def test_resume_keeps_the_offline_curve_on_its_own_axis(tmp_path):
    from robolearn.train.logging import ScalarLogger, read_scalars

    log = ScalarLogger(tmp_path, tensorboard=False)
    for k in (100, 200, 300):
        log.log(k, {"offline/critic_loss": 1.0})   # offline updates 100..300
    for k in (50, 150):
        log.log(k, {"train/episode_return": 2.0})  # env steps
    log.close()
    ScalarLogger(tmp_path, purge_after=100, tensorboard=False,
                 purge_after_by_prefix={"offline/": 300}).close()   # resume at env step 100, offline done
    kept = [(r["tag"], r["step"]) for r in read_scalars(tmp_path / "scalars.csv")]
    assert kept == [("offline/critic_loss", 100), ("offline/critic_loss", 200), ("offline/critic_loss", 300),
                    ("train/episode_return", 50)]
    ScalarLogger(tmp_path, purge_after=-1, tensorboard=False, purge_after_by_prefix={"offline/": -1}).close()
    assert read_scalars(tmp_path / "scalars.csv") == []   # a fresh start drops an earlier attempt's rows


def test_two_checkpoints_are_kept_and_a_damaged_latest_falls_back(tmp_path, capsys):
    cfg = _cfg(steps=64, checkpoint_every=16, warmup_steps=8)
    full = OnlineTrainer(cfg, "toy/track", tmp_path / "full", seed=2, env_factory=_factory(8))
    full.run(progress=False)
    part = OnlineTrainer(cfg, "toy/track", tmp_path / "part", seed=2, env_factory=_factory(8))
    part.run(progress=False, stop_at=48)
    names = sorted(p.name for p in (tmp_path / "part" / "checkpoints").iterdir())
    assert names == ["step_000000032", "step_000000048"]  # the latest and one to fall back to
    state = tmp_path / "part" / "checkpoints" / "step_000000048" / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # damaged (e.g. a disk error)
    resumed = OnlineTrainer(cfg, "toy/track", tmp_path / "part", seed=2, env_factory=_factory(8))
    resumed.run(resume=True, progress=False)
    err = capsys.readouterr().err
    assert "step_000000048" in err and "falling back to the previous one" in err
    # resuming from step 32 repeats the same steps the uninterrupted run took: same end state
    fa, ra = full.agent.state_tensors(), resumed.agent.state_tensors()
    for k in fa:
        assert torch.equal(fa[k], ra[k]), k


@pytest.mark.parametrize("name", ["rlpd", "sac"])
def test_the_preset_is_the_shipped_recipe(name):
    """`--algo sac` without `--config` trains what policies/sac.yaml says (one place for the defaults)."""
    import pathlib

    import yaml

    from robolearn.config_io import to_dict

    recipe = yaml.safe_load((pathlib.Path(__file__).parents[1] / "policies" / f"{name}.yaml").read_text())
    recipe.get("train", {}).pop("env_overrides", None)  # env-specific (pick_cube's privileged state)
    assert to_dict(build_config(name)) == to_dict(build_config(name, recipe))
