"""`train rl` counts one unit, env steps (agent steps x action repeat), for --steps, warm-up, intervals, the
scalar log, checkpoints, latest.json and the progress bar; intervals follow the run length unless set; the
sac recipe ships the PlaNet/CURL dm_control action repeats."""
from __future__ import annotations

import json

import numpy as np
import pytest

from robolearn.envs.api import RobotEnv, action_space, observation_space
from robolearn.train.logging import read_scalars
from robolearn.train.online import OnlineTrainer
from robolearn.train.rl_config import build_config

pytestmark = pytest.mark.usefixtures("one_thread")


class RepeatEnv(RobotEnv):
    """A toy env that declares an action repeat, as dmc/* does: each agent step is ``repeat`` env steps."""

    def __init__(self, length: int, repeat: int):
        self.observation_space = observation_space(2)
        self.action_space = action_space(1)
        self.length, self.action_repeat = length, repeat

    def _reset(self, options):
        self.t = 0
        return {"state": self.np_random.uniform(-1, 1, 2).astype(np.float32)}, {}

    def _step(self, a):
        self.t += 1
        obs = {"state": self.np_random.uniform(-1, 1, 2).astype(np.float32)}
        return obs, -float(a[0] ** 2), False, self.t >= self.length, {"success": False}


def _factory(length, repeat):
    return lambda name, **kw: RepeatEnv(length, repeat)


def _cfg(**train):
    return build_config("sac", overrides={
        "agent": {"hidden": [16, 16], "fused_adam": False, "backend": "eager"},
        "train": {"batch_size": 16, "eval_episodes": 1, **train}})


def test_steps_warmup_intervals_log_and_checkpoints_count_env_steps(tmp_path):
    cfg = _cfg(steps=200, warmup_steps=40, eval_every=40, log_every=20, checkpoint_every=80)
    tr = OnlineTrainer(cfg, "toy/repeat", tmp_path / "run", seed=0, env_factory=_factory(length=5, repeat=4))
    summary = tr.run(progress=False)
    # 200 env steps at repeat 4 are 50 agent steps (transitions), not 200 agent steps = 800 env steps
    assert tr.online.size == 50 + 10  # transitions + one final observation slot per episode (10 episodes)
    assert (summary["env_step"], summary["agent_step"], summary["action_repeat"]) == (200, 50, 4)
    # warm-up 40 env steps = 10 agent steps of random actions, then one update per agent step
    assert summary["updates"] == 50 - 10 + 1
    rows = read_scalars(tmp_path / "run" / "scalars.csv")
    assert sorted({r["step"] for r in rows if r["tag"] == "eval/return"}) == [40, 80, 120, 160, 200]
    assert sorted({r["step"] for r in rows if r["tag"] == "train/critic_loss"}) == [40, 60, 80, 100, 120, 140, 160,
                                                                                     180, 200]
    # an episode of 5 agent steps is 20 env steps: the episode rows sit at env steps
    assert sorted({r["step"] for r in rows if r["tag"] == "train/episode_return"}) == list(range(20, 201, 20))
    latest = json.loads((tmp_path / "run" / "latest.json").read_text())
    assert latest == {"checkpoint": "step_000000200", "env_step": 200, "agent_step": 50}
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step_000000160",
                                                                                    "step_000000200"]
    meta = json.loads((tmp_path / "run" / "checkpoints" / "step_000000200" / "policy" / "config.json").read_text())
    assert (meta["meta"]["env_step"], meta["meta"]["agent_step"], meta["meta"]["action_repeat"]) == (200, 50, 4)


def test_resume_counts_both_units_and_refuses_another_repeat_or_an_old_agent_step_checkpoint(tmp_path):
    cfg = _cfg(steps=120, warmup_steps=20, eval_every=1000, checkpoint_every=40)
    part = OnlineTrainer(cfg, "toy/repeat", tmp_path / "r", seed=1, env_factory=_factory(5, 4))
    part.run(progress=False, stop_at=80)
    resumed = OnlineTrainer(cfg, "toy/repeat", tmp_path / "r", seed=1, env_factory=_factory(5, 4))
    s = resumed.run(resume=True, progress=False)
    assert (s["env_step"], s["agent_step"]) == (120, 30)
    # the same run dir with another action repeat is another run: named, not resumed
    with pytest.raises(ValueError, match="action_repeat 4, this run uses 2.*--env-set action_repeat=4"):
        OnlineTrainer(cfg, "toy/repeat", tmp_path / "r", seed=1, env_factory=_factory(5, 2)).run(resume=True,
                                                                                               progress=False)
    # a checkpoint from before the unit change (agent steps, no step_unit) at repeat > 1: a clear error, no fallback
    ck = tmp_path / "r" / "checkpoints" / "step_000000120"
    state = json.loads((ck / "state.json").read_text())
    for key in ("step_unit", "agent_step", "action_repeat", "env_kwargs", "last_eval_step", "last_eval"):
        state.pop(key)
    state["env_step"] = 30
    (ck / "state.json").write_text(json.dumps(state))
    run_config = json.loads((ck / "run_config.json").read_text())
    run_config["train"]["env_overrides"] = {"action_repeat": 4}
    (ck / "run_config.json").write_text(json.dumps(run_config))
    with pytest.raises(ValueError, match="older robolearn that counted agent steps"):
        OnlineTrainer(cfg, "toy/repeat", tmp_path / "r", seed=1, env_factory=_factory(5, 4)).run(resume=True,
                                                                                               progress=False)


def test_an_old_checkpoint_without_action_repeat_still_resumes(tmp_path):
    """At repeat 1 the old agent-step count is the env-step count: such checkpoints keep resuming."""
    cfg = _cfg(steps=60, warmup_steps=10, eval_every=1000, checkpoint_every=20)
    OnlineTrainer(cfg, "toy/track", tmp_path / "r", seed=2, env_factory=_factory(5, 1)).run(progress=False, stop_at=40)
    ck = tmp_path / "r" / "checkpoints" / "step_000000040"
    state = json.loads((ck / "state.json").read_text())
    for key in ("step_unit", "agent_step", "action_repeat", "env_kwargs", "last_eval_step", "last_eval"):
        state.pop(key)
    (ck / "state.json").write_text(json.dumps(state))
    s = OnlineTrainer(cfg, "toy/track", tmp_path / "r", seed=2, env_factory=_factory(5, 1)).run(resume=True,
                                                                                               progress=False)
    assert (s["env_step"], s["agent_step"], s["action_repeat"]) == (60, 60, 1)


def test_intervals_follow_the_run_length_unless_set(tmp_path):
    for recipe in ({}, {"train": {"eval_every": "auto", "log_every": None}}):
        t = build_config("sac", recipe, {"train": {"steps": 250_000}}).train
        assert (t.interval("eval_every"), t.interval("checkpoint_every"), t.interval("log_every")) == (25_000, 25_000,
                                                                                                      2_500)
    t = build_config("sac", overrides={"train": {"steps": 500, "eval_every": 100}}).train
    assert (t.interval("eval_every"), t.interval("checkpoint_every"), t.interval("log_every")) == (100, 50, 5)
    assert build_config("rlpd", overrides={"train": {"steps": 3}}).train.interval("log_every") == 1
    with pytest.raises(ValueError, match="train.eval_every must be an int >= 1, or null / 'auto'"):
        build_config("sac", {"train": {"eval_every": "often"}})
    with pytest.raises(ValueError, match="train.log_every must be >= 1"):
        build_config("sac", {"train": {"log_every": 0}})
    # a run without interval settings evaluates 10 times and logs 100 times over its own length
    cfg = _cfg(steps=300, warmup_steps=30)
    OnlineTrainer(cfg, "toy/track", tmp_path / "run", env_factory=_factory(10, 1)).run(progress=False)
    rows = read_scalars(tmp_path / "run" / "scalars.csv")
    assert sorted({r["step"] for r in rows if r["tag"] == "eval/return"}) == list(range(30, 301, 30))
    # logs every 300 / 100 = 3 env steps once updates start (after the 30 warm-up steps)
    assert sorted({r["step"] for r in rows if r["tag"] == "train/critic_loss"}) == list(range(30, 301, 3))


def test_the_final_evaluation_is_at_the_final_step(tmp_path):
    """steps no multiple of eval_every: the run still ends with an evaluation (the summary's final eval)."""
    cfg = _cfg(steps=50, warmup_steps=10, eval_every=20)
    s = OnlineTrainer(cfg, "toy/track", tmp_path / "run", env_factory=_factory(5, 1)).run(progress=False)
    rows = read_scalars(tmp_path / "run" / "scalars.csv")
    assert sorted({r["step"] for r in rows if r["tag"] == "eval/return"}) == [20, 40, 50]
    assert s["eval_step"] == 50 and "eval/success_rate" in s


@pytest.mark.parametrize("name", ["preset", "recipe"])
def test_dmc_action_repeats_ship_with_the_sac_recipe(name):
    import pathlib

    import yaml

    recipe = yaml.safe_load((pathlib.Path(__file__).parents[1] / "policies" / "sac.yaml").read_text())
    t = build_config("sac", recipe if name == "recipe" else None).train
    expected = {"cartpole-swingup": 8, "reacher-easy": 4, "ball_in_cup-catch": 4, "cheetah-run": 4,
                "walker-walk": 2, "walker-run": 2, "finger-spin": 2}
    for task, repeat in expected.items():
        assert t.env_kwargs(f"dmc/{task}") == {"action_repeat": repeat}, task
    assert t.env_kwargs("dmc/hopper-hop") == {} and t.env_kwargs("sim/pick_cube") == {}
    # an explicit --env-set wins over the table
    t = build_config("sac", recipe if name == "recipe" else None,
                     {"train": {"env_overrides": {"action_repeat": 1}}}).train
    assert t.env_kwargs("dmc/walker-walk") == {"action_repeat": 1}


def test_cli_walker_uses_repeat_2_without_flags_and_counts_env_steps(tmp_path, capsys):
    """`--algo sac --env dmc/walker-walk` trains at action repeat 2; --steps, latest.json, the progress
    bar and the policy's env kwargs (what eval rebuilds the env with) agree."""
    from robolearn.cli import main

    common = ["train", "rl", "--algo", "sac", "--env", "dmc/walker-walk", "--steps", "60", "--threads", "1",
              "--set", "agent.hidden=[16,16]", "--set", "agent.backend=eager", "--set", "train.warmup_steps=20",
              "--set", "train.batch_size=16", "--set", "train.eval_episodes=0"]
    assert main(common + ["--out", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert "60/60" in err and "agent=30" in err  # the bar counts env steps, agent steps in its postfix
    latest = json.loads((tmp_path / "w" / "latest.json").read_text())
    assert latest == {"checkpoint": "step_000000060", "env_step": 60, "agent_step": 30}
    from robolearn.train.checkpoint import env_kwargs, load_policy

    assert env_kwargs(load_policy(tmp_path / "w")) == {"action_repeat": 2}
    assert main(common + ["--env-set", "action_repeat=1", "--no-progress", "--json",
                          "--out", str(tmp_path / "w1")]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["env_step"], s["agent_step"], s["action_repeat"]) == (60, 60, 1)
