"""`train rl` says what it will do in one header line and ends with a human summary naming its files;
`--json` gives the same summary as one JSON object on stdout. No raw dict is printed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from robolearn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--set", "agent.hidden=[16,16]", "--set", "agent.backend=eager", "--set", "train.warmup_steps=40",
        "--set", "train.batch_size=16",
        "--set", "train.eval_episodes=1", "--set", "train.eval_every=100", "--threads", "1", "--no-progress"]


def test_header_line_then_a_human_summary_naming_the_checkpoint_and_policy(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "rl", "--algo", "sac", "--env", "dmc/cartpole-swingup", "--env-set", "action_repeat=4",
                 "--steps", "200", "--out", str(out), *TINY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    head = lines[0]
    assert head.startswith("train rl: sac on dmc/cartpole-swingup, demos none, base none, ")
    assert "200 env steps (50 agent steps x action repeat 4)" in head and head.endswith(f"-> {out}")
    # warm-up 40 env steps = 10 agent steps, then one update per agent step
    assert lines[1].startswith("train rl: done, 200 env steps (50 agent steps x action repeat 4), 0 episodes, "
                               "41 updates in ")
    text = "\n".join(lines[1:])
    assert "final eval (step 200): success 0%, return " in text
    ck = out / "checkpoints" / "step_000000200"
    assert f"checkpoint: {ck}" in text and f"policy:     {ck / 'policy'}" in text
    assert (ck / "policy" / "config.json").is_file()
    assert f"robolearn eval --checkpoint {out} --env dmc/cartpole-swingup" in text
    assert "{" not in text  # a human summary, not a printed dict


def test_json_prints_one_object_on_stdout_and_the_header_on_stderr(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    monkeypatch.chdir(tmp_path)  # the README's --config policies/sac.yaml works from any folder (shipped copy)
    assert main(["train", "rl", "--algo", "sac", "--env", "dmc/cartpole-swingup", "--env-set", "action_repeat=1",
                 "--config", "policies/sac.yaml", "--steps", "120", "--json", "--out", str(out), *TINY]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)  # the whole of stdout is one JSON object
    assert (summary["env_step"], summary["agent_step"], summary["action_repeat"]) == (120, 120, 1)
    assert Path(summary["checkpoint"]) == out / "checkpoints" / "step_000000120"
    assert (Path(summary["policy"]) / "config.json").is_file()
    assert summary["eval_step"] == 120 and 0.0 <= summary["eval/success_rate"] <= 1.0
    assert summary["out"] == str(out) and summary["wall_s"] > 0
    # no agent-step count in the header when the env does not repeat actions
    assert "train rl: sac on dmc/cartpole-swingup" in cap.err and "120 env steps," in cap.err
    assert "agent steps" not in cap.err


def test_bad_steps_fail_before_any_work(tmp_path, capsys):
    assert main(["train", "rl", "--algo", "sac", "--env", "dmc/cartpole-swingup", "--steps", "-5",
                 "--out", str(tmp_path / "run")]) == 1
    assert "--steps must be >= 1 (env steps), got -5" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
