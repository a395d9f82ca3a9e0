"""``robolearn experiment compare``: the aggregation on hand-built curves, flag errors, and the command end to
end at tiny sizes (files written, a rerun skips finished sub-runs and resumes the partial one)."""
from __future__ import annotations

import json
import math
import os
import shutil
import time

import pytest
import torch

from robolearn.train import experiment as ex


def seed_result(method, seed, steps, success, episodes=20, wall=None, extra=None):
    return ex.SeedResult(method, seed, list(steps), list(success), episodes, wall, extra or {})


# ------------------------------------------------------------------------------------------ pure functions
def test_first_step_reaching():
    assert ex.first_step_reaching([1000, 2000, 3000], [0.5, 0.85, 0.95], 0.9) == 3000
    assert ex.first_step_reaching([1000, 2000, 3000], [0.5, 0.9, 0.2], 0.9) == 2000  # exactly 90% counts; first hit
    assert ex.first_step_reaching([1000, 2000], [0.1, 0.89], 0.9) is None
    assert ex.first_step_reaching([], [], 0.9) is None
    assert ex.first_step_reaching([0], [1.0], 0.9) == 0


def test_last_k_mean_and_mean_std():
    assert ex.last_k_mean([0.0, 0.5, 1.0, 0.8]) == pytest.approx((0.5 + 1.0 + 0.8) / 3)
    assert ex.last_k_mean([0.4, 0.6]) == pytest.approx(0.5)  # fewer than three evaluations: all of them
    with pytest.raises(ValueError):
        ex.last_k_mean([])
    m, s = ex.mean_std([0.5, 0.7, 0.9])
    assert m == pytest.approx(0.7) and s == pytest.approx(0.2)  # sample std: sqrt((0.04 + 0 + 0.04) / 2)
    assert ex.mean_std([0.3]) == (0.3, 0.0)


def hand_results():
    return {
        "bc": [seed_result("bc", s, [0], [v]) for s, v in enumerate([0.5, 0.4, 0.6])],
        "rlpd": [seed_result("rlpd", 0, [1000, 2000, 3000, 4000], [0.2, 0.9, 1.0, 0.95], wall=60.0),
                 seed_result("rlpd", 1, [1000, 2000, 3000, 4000], [0.1, 0.5, 0.95, 1.0], wall=120.0),
                 seed_result("rlpd", 2, [1000, 2000, 3000, 4000], [0.0, 0.3, 0.6, 0.9], wall=90.0)],
        "expo": [seed_result("expo", s, [1000, 2000], [0.1, 0.2]) for s in range(3)],
    }


def test_summarize_by_hand():
    rows = {r["method"]: r for r in ex.summarize(hand_results())}
    assert list(rows) == ["bc", "rlpd", "expo"]
    r = rows["rlpd"]
    # final successes: 0.95*20 = 19, 20, 18 -> 57 of 60 pooled
    assert (r["final_successes"], r["final_trials"]) == (57, 60)
    assert r["final_success"] == pytest.approx(0.95)
    # Wilson 95% for 57/60 by hand: centre (0.95 + z^2/120) / (1 + z^2/60) = 0.92292, half 0.05993
    assert r["ci95"][0] == pytest.approx(0.8630, abs=2e-4) and r["ci95"][1] == pytest.approx(0.9829, abs=2e-4)
    assert r["steps_to_threshold"] == [2000, 3000, 4000] and r["steps_to_threshold_mean"] == pytest.approx(3000)
    assert r["seeds_reaching"] == 3
    # last three: (0.9+1+0.95)/3 = 0.95, (0.5+0.95+1)/3 = 0.81667, (0.3+0.6+0.9)/3 = 0.6
    assert r["last_k_per_seed"] == pytest.approx([0.95, 0.816667, 0.6], abs=1e-5)
    assert r["last_k_mean"] == pytest.approx(0.788889, abs=1e-5)
    assert r["last_k_std"] == pytest.approx(0.176646, abs=1e-5)  # sqrt((.16111^2 + .02778^2 + .18889^2) / 2)
    assert r["wall_s_mean"] == pytest.approx(90.0)
    b = rows["bc"]
    assert (b["final_successes"], b["final_trials"]) == (30, 60) and b["steps_to_threshold_mean"] is None
    assert b["wall_s_mean"] is None
    e = rows["expo"]
    assert e["steps_to_threshold"] == [None, None, None] and e["final_successes"] == 12


def test_summarize_partial_reach_and_wilson_at_zero():
    res = {"residual": [seed_result("residual", 0, [10, 20], [0.9, 1.0], episodes=2),
                        seed_result("residual", 1, [10, 20], [0.0, 0.0], episodes=2)]}
    (r,) = ex.summarize(res)
    assert r["steps_to_threshold"] == [10, None] and r["steps_to_threshold_mean"] == 10 and r["seeds_reaching"] == 1
    assert (r["final_successes"], r["final_trials"]) == (2, 4)
    (z,) = ex.summarize({"bc": [seed_result("bc", 0, [0], [0.0], episodes=2)]})
    assert z["ci95"][0] == 0.0 and z["ci95"][1] == pytest.approx(0.6576, abs=1e-3)  # Wilson 0/2


def settings(**kw):
    base = {"env": "sim/peg_insert", "demos": 20, "noise": 0.4, "seeds": 3, "seed_list": [0, 1, 2], "steps": 4000,
            "eval_every": 1000, "eval_episodes": 20, "base_recipe": "policies/consistency.yaml", "base_steps": 4000,
            "recipes": {"rlpd": "policies/rlpd_bc.yaml", "expo": "policies/expo.yaml"}, "sets": {},
            "threads": 1, "device": "cpu"}
    return {**base, **kw}


def test_render_markdown_by_hand():
    rows = ex.summarize(hand_results())
    md = ex.render_markdown(rows, settings(sets={"rl": {"train": {"batch_size": 128}}}))
    lines = md.splitlines()
    assert lines[0].startswith("| method | final success (95% CI, 3 seeds x 20 episodes)")
    assert lines[1] == "|---|---|---|---|---|"
    assert lines[2] == "| bc | 50% (38%-62%), 30/60 | - | 50% ± 10 | - |"
    assert lines[3] == "| rlpd | 95% (86%-98%), 57/60 | 3000 (2000, 3000, 4000) | 79% ± 18 | 1.5 min |"
    assert lines[4].startswith("| expo | 20% (") and "| - |" in lines[4]
    text = lines[-1]
    for piece in ("sim/peg_insert", "20 expert demos", "noise 0.4", "seeds 0, 1, 2", "4000 env steps",
                  "every 1000 steps on 20 episodes", "policies/consistency.yaml", "rlpd policies/rlpd_bc.yaml",
                  "expo policies/expo.yaml", "rl.train.batch_size=128"):
        assert piece in text, piece


def test_render_markdown_steps_text_when_some_seeds_miss():
    res = {"residual": [seed_result("residual", s, [1000, 2000], v, wall=30.0)
                        for s, v in enumerate([[0.9, 1.0], [0.0, 0.5], [0.5, 0.95]])]}
    md = ex.render_markdown(ex.summarize(res), settings(seeds=3))
    assert "| 1500 in 2/3 seeds (1000, -, 2000) |" in md
    assert "| 30 s |" in md


def test_mean_band_uses_common_steps():
    band = ex.mean_band([seed_result("a", 0, [10, 20, 30], [0.0, 0.5, 1.0]),
                         seed_result("a", 1, [10, 20], [0.2, 0.1])])
    assert band["steps"] == [10, 20]
    assert band["mean"] == pytest.approx([0.1, 0.3])
    assert band["min"] == [0.0, 0.1] and band["max"] == [0.2, 0.5]


def test_plot_writes_png(tmp_path):
    out = ex.plot_comparison(hand_results(), tmp_path / "c.png", title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_rl_result_reads_scalars(tmp_path):
    from robolearn.train.logging import ScalarLogger

    with ScalarLogger(tmp_path, tensorboard=False) as log:
        log.log(500, {"train/critic_loss": 0.3})
        log.log(1000, {"eval/success_rate": 0.2, "eval/q_mean": 0.1, "eval/mc_return": 0.05})
        log.log(2000, {"eval/success_rate": 0.4})
        log.log(2000, {"eval/success_rate": 0.6, "eval/q_mean": 0.5, "eval/mc_return": 0.45})  # the last write wins
        log.log(3000, {"eval/success_rate": 1.0})
    r = ex.rl_result(tmp_path, "rlpd", 1, episodes=5, max_step=2000, wall_s=12.0)
    assert r.steps == [1000, 2000] and r.success == [0.2, 0.6] and r.final_successes == 3
    assert r.extra == {"q_mean": 0.5, "mc_return": 0.45} and r.wall_s == 12.0
    assert ex.rl_result(tmp_path, "rlpd", 1, episodes=5).steps == [1000, 2000, 3000]
    (tmp_path / "empty").mkdir()
    with ScalarLogger(tmp_path / "empty", tensorboard=False) as log:
        log.log(10, {"train/x": 1.0})
    with pytest.raises(ValueError, match="no eval/success_rate"):
        ex.rl_result(tmp_path / "empty", "rlpd", 0, episodes=5)


def test_wall_clock_counts_killed_segment_to_its_last_checkpoint(tmp_path):
    clock = ex.WallClock(tmp_path / "wall.json")
    marker = tmp_path / "latest.json"
    # a previous invocation started 100 s ago and was killed; its last checkpoint was written 40 s after it started
    now = time.time()
    (tmp_path / "wall.json").write_text(json.dumps({"expo": {"done_s": 5.0, "started": now - 100}}))
    marker.write_text("{}")
    os.utime(marker, (now - 60, now - 60))
    clock.run("expo", marker, lambda: time.sleep(0.05))
    assert clock.total("expo") == pytest.approx(5.0 + 40.0 + 0.05, abs=0.03)
    assert "started" not in json.loads((tmp_path / "wall.json").read_text())["expo"]
    clock.run("expo", marker, lambda: None, fresh=True)  # a restart from nothing drops the earlier time
    assert clock.total("expo") < 0.05
    assert clock.total("never") is None


# ------------------------------------------------------------------------------------------ flag errors
@pytest.mark.parametrize("kwargs, message", [
    ({"seeds": 0}, "--seeds must be an integer >= 1"),
    ({"demos": 0}, "--demos must be an integer >= 1"),
    ({"steps": 0}, "--steps must be an integer >= 1"),
    ({"eval_episodes": 0}, "--eval-episodes must be an integer >= 1"),
    ({"noise": -0.1}, "--noise must be a finite number >= 0"),
    ({"steps": 100, "eval_every": 30}, "must be a multiple of --eval-every 30"),
    ({"steps": 100, "eval_every": 200}, "more than --steps"),
    ({"threads": -1}, "--threads"),
    ({"methods": "bc,rlpd,resdual"}, "unknown method 'resdual' \\(did you mean 'residual'\\?\\)"),
    ({"methods": ""}, "--methods is empty"),
    ({"methods": ("bc",), "sets": {"rlpd": {}}}, "not in this run: rlpd"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ex.CompareConfig(env="sim/pick_cube", **kwargs)


def test_config_defaults():
    c = ex.CompareConfig(env="sim/peg_insert", methods="rlpd,bc,rlpd")
    assert c.methods == ("rlpd", "bc") and c.steps == 20_000 and c.eval_every == 2_000
    assert c.out == os.path.join("runs", "compare-peg_insert") and c.rl_methods == ("rlpd",)
    assert ex.CompareConfig(env="sim/pick_cube").steps == 10_000


def test_parse_sets():
    sets = ex.parse_sets(["residual.agent.alpha=0.2", "bc.train.steps=30", "rl.train.batch_size=16",
                          "residual.agent.hidden=[64, 64]"], ("bc", "residual"))
    assert sets == {"residual": {"agent": {"alpha": 0.2, "hidden": [64, 64]}}, "bc": {"train": {"steps": 30}},
                    "rl": {"train": {"batch_size": 16}}}
    for items, message in ((["residual.alpha=1"], "METHOD.SECTION.KEY=VALUE"),
                           (["residual.agent.alpha"], "METHOD.SECTION.KEY=VALUE"),
                           (["expo.agent.beta=1"], "'expo' is not a method of this run"),
                           (["resid.agent.alpha=1"], "did you mean 'residual'"),
                           (["residual.train.steps=5"], "set for every method by --steps"),
                           (["rl.train.eval_episodes=5"], "--eval-episodes"),
                           (["bc.train.seed=3"], "comparison's seed")):
        with pytest.raises(ValueError, match=message):
            ex.parse_sets(items, ("bc", "residual"))
    with pytest.raises(ValueError, match="'rl' is not a method"):
        ex.parse_sets(["rl.train.batch_size=3"], ("bc",))


def test_plan_validates_recipes_before_any_work(tmp_path):
    out = tmp_path / "cmp"
    with pytest.raises(Exception, match="nosuch"):
        ex.plan(ex.CompareConfig(env="sim/pick_cube", out=str(out), methods="bc,rlpd",
                                 sets={"rlpd": {"agent": {"nosuch": 1}}}))
    with pytest.raises(ValueError, match="unknown env 'sim/pick_cub' \\(did you mean 'sim/pick_cube'\\?\\)"):
        ex.plan(ex.CompareConfig(env="sim/pick_cub", out=str(out)))
    with pytest.raises(FileNotFoundError, match="recipe .*not found"):
        ex.plan(ex.CompareConfig(env="sim/pick_cube", out=str(out), base_recipe=str(tmp_path / "missing.yaml")))
    assert not out.exists()
    p = ex.plan(ex.CompareConfig(env="sim/pick_cube", out=str(out), methods="residual", steps=600, eval_every=300,
                                 sets={"rl": {"train": {"batch_size": 32}}, "residual": {"agent": {"alpha": 0.2}}}))
    rc = p.rl_configs["residual"]
    assert (rc.train.steps, rc.train.eval_every, rc.train.batch_size, rc.agent.alpha) == (600, 300, 32, 0.2)
    assert rc.train.env_overrides == {} and rc.train.torch_threads == 1 and p.needs_base["residual"]
    assert not out.exists()


# ------------------------------------------------------------------------------------------ end to end
TINY = ["--env", "sim/pick_cube", "--demos", "2", "--seeds", "1", "--methods", "bc,rlpd,residual", "--steps", "60",
        "--eval-every", "30", "--eval-episodes", "2", "--threads", "1", "--device", "cpu", "--no-progress",
        "--set", "bc.train.steps=20", "--set", "bc.train.batch_size=16", "--set", "bc.train.warmup_steps=5",
        "--set", "bc.train.checkpoint_every=10", "--set", "rl.train.warmup_steps=20",
        "--set", "rl.train.batch_size=16", "--set", "rl.train.checkpoint_every=30", "--set", "rl.train.log_every=10"]


def _lines(text: str, prefix: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(prefix)]


def test_compare_end_to_end_and_resume(tmp_path, capsys):
    from robolearn.cli import main
    from robolearn.data.episode_store import EpisodeStore
    from robolearn.train.logging import series
    from robolearn.train.online import OnlineTrainer

    threads = torch.get_num_threads()
    out = tmp_path / "cmp"
    argv = ["experiment", "compare", *TINY, "--out", str(out)]
    try:
        assert main(argv) == 0
        first = capsys.readouterr().out
        assert first.startswith("experiment compare: bc, rlpd, residual on sim/pick_cube from 2 expert demos"), first[:200]
        for name in ("compare.md", "compare.json", "compare.png", "experiment.json", "seed0/base/checkpoint",
                     "seed0/bc_eval.json", "seed0/rlpd/latest.json", "seed0/residual/latest.json"):
            assert (out / name).exists(), name
        assert len(EpisodeStore(out / "demos")) == 2
        assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
        md = (out / "compare.md").read_text()
        assert [ln.split("|")[1].strip() for ln in md.splitlines()[2:5]] == ["bc", "rlpd", "residual"]
        assert "Settings: env `sim/pick_cube`, 2 expert demos (noise 0.4" in md and "60 env steps" in md
        doc = json.loads((out / "compare.json").read_text())
        assert [r["method"] for r in doc["rows"]] == ["bc", "rlpd", "residual"]
        for r in doc["rows"]:
            assert r["final_trials"] == 2 and 0 <= r["final_successes"] <= 2
        assert doc["curves"]["rlpd"]["steps"] == [30, 60] and doc["curves"]["bc"]["steps"] == [0]
        assert {"q_mean", "mc_return"} <= set(doc["runs"]["residual"][0]["extra"])
        assert doc["settings"]["recipes"] == {"rlpd": "policies/rlpd_bc.yaml", "residual": "policies/residual.yaml"}
        for what in ("base", "bc", "rlpd", "residual"):  # one line saying what starts, one saying what it got
            assert len(_lines(first, f"[seed 0] {what}: ")) >= 2, first
        assert "skip" not in first
        wall = json.loads((out / "seed0" / "wall.json").read_text())
        assert set(wall) == {"base", "bc_eval", "rlpd", "residual"}

        # Make the residual run partial, as a kill after its step-30 checkpoint leaves it.
        shutil.rmtree(out / "seed0" / "residual")
        p = ex.plan(ex.CompareConfig(env="sim/pick_cube", demos=2, seeds=1, methods="bc,rlpd,residual", steps=60,
                                     eval_every=30, eval_episodes=2, out=str(out), device="cpu", progress=False,
                                     sets=ex.parse_sets(TINY[TINY.index("--set") + 1::2], ("bc", "rlpd", "residual"))))
        partial = OnlineTrainer(p.rl_configs["residual"], "sim/pick_cube", out / "seed0" / "residual",
                                demos=str(out / "demos"), seed=0, base=str(out / "seed0" / "base"))
        partial.run(progress=False, stop_at=30)
        assert json.loads((out / "seed0" / "residual" / "latest.json").read_text())["env_step"] == 30
        rlpd_wall = wall["rlpd"]["done_s"]

        # --report-only trains nothing and tables what the runs reached, naming the unfinished one
        assert main([*argv, "--report-only"]) == 0
        capsys.readouterr()
        md = (out / "compare.md").read_text()
        assert "residual seed 0: at 30 of 60 env steps" in md
        assert json.loads((out / "seed0" / "residual" / "latest.json").read_text())["env_step"] == 30

        assert main(argv) == 0
        second = capsys.readouterr().out
        assert "demos: skip" in second
        for what in ("base", "bc", "rlpd"):
            (line,) = _lines(second, f"[seed 0] {what}: ")
            assert f"[seed 0] {what}: skip" in line
        res = _lines(second, "[seed 0] residual: ")
        assert res[0].startswith("[seed 0] residual: resume from step 30") and "skip" not in " ".join(res)
        assert series(out / "seed0" / "residual", "eval/success_rate")[0] == [30, 60]
        assert json.loads((out / "seed0" / "wall.json").read_text())["rlpd"]["done_s"] == rlpd_wall

        # Settings the runs on disk depend on cannot change under them; the error comes before any work.
        before = sorted(p.name for p in out.rglob("*"))
        assert main([*argv, "--noise", "0.2"]) == 1
        err = capsys.readouterr().err
        assert "other settings" in err and "noise: 0.4 there, 0.2 now" in err
        assert sorted(p.name for p in out.rglob("*")) == before
    finally:
        torch.set_num_threads(threads)
    assert math.isfinite(doc["rows"][1]["last_k_mean"])


def test_compare_jobs_runs_sub_runs_in_worker_processes(tmp_path, capfd):
    """--jobs 2: two seeds' bases, then their RL runs, each in a worker process; every seed's wall clock keeps
    every key (the shared wall.json is locked around its read-modify-write) and the table has both seeds."""
    from robolearn.cli import main

    threads = torch.get_num_threads()
    out = tmp_path / "cmp"
    argv = ["experiment", "compare", *TINY, "--out", str(out), "--seeds", "2", "--methods", "bc,residual",
            "--steps", "30", "--jobs", "2"]
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    printed = capfd.readouterr().out
    doc = json.loads((out / "compare.json").read_text())
    assert [r["seed"] for r in doc["runs"]["residual"]] == [0, 1]
    assert [r["seed"] for r in doc["runs"]["bc"]] == [0, 1]
    for seed in (0, 1):
        assert set(json.loads((out / f"seed{seed}" / "wall.json").read_text())) == {"base", "bc_eval", "residual"}
        assert len(_lines(printed, f"[seed {seed}] residual: ")) >= 2, printed
    with pytest.raises(ValueError, match="--jobs"):
        ex.CompareConfig(env="sim/pick_cube", jobs=0)
