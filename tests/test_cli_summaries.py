"""Every long command starts with one line saying what it will do and ends with a human summary naming
its output files; ``--json`` puts exactly one JSON object on stdout instead of the human summary, and the header on stderr
(as ``train rl`` does).

Before, ``train bc`` / ``distill`` ended with "step N: final loss X; checkpoint in DIR" and had no
``--json``, ``eval`` printed its sampling settings as a raw Python dict, ``collect`` and ``data export``
had no header and did not name the files they wrote. Everything runs for real: a tiny sim/pick_cube
store, a tiny diffusion net, real rollouts.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.cli import main
from robolearn.train.collect_cmd import collect

ENV = "sim/pick_cube"
NET = {"down_dims": [8, 16], "n_groups": 4, "step_embed_dim": 8, "state_hidden": [16], "state_feature_dim": 8,
       "horizon": 8, "n_action_steps": 4}
TRAIN = {"steps": 4, "batch_size": 8, "warmup_steps": 1, "log_every": 2, "checkpoint_every": 2,
         "success_only": False}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    out = tmp_path_factory.mktemp("summaries") / "store"
    collect(ENV, "random", 2, out, max_steps=8, progress=False, log=None)
    return out


@pytest.fixture(scope="module")
def recipes(tmp_path_factory):
    d = tmp_path_factory.mktemp("recipes")
    (d / "dp.yaml").write_text(yaml.safe_dump({"type": "diffusion", "policy": {**NET, "num_inference_steps": 2},
                                               "train": TRAIN}))
    (d / "cm.yaml").write_text(yaml.safe_dump({"type": "consistency", "policy": dict(NET),
                                               "train": {**TRAIN, "ema": False}}))
    return d


@pytest.fixture(scope="module")
def bc_run(store, recipes, tmp_path_factory):
    out = tmp_path_factory.mktemp("bc") / "run"
    assert main(["train", "bc", "--policy", str(recipes / "dp.yaml"), "--data", str(store), "--out", str(out),
                 "--no-progress", "--json"]) == 0
    return out


def _human(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "no output"
    assert not any(line.lstrip().startswith(("{", "[")) for line in lines), f"raw dict/list printed:\n{text}"
    assert not any("{'" in line or "': " in line for line in lines), f"raw Python dict printed:\n{text}"
    return lines


def test_train_bc_header_and_summary_name_the_files(store, recipes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "bc", "--policy", str(recipes / "dp.yaml"), "--data", str(store), "--out", str(out),
                 "--steps", "2", "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    assert lines[0] == (f"train bc: diffusion policy ({recipes / 'dp.yaml'}) on 2 {ENV} episodes (16 steps) "
                        f"from {store}, 2 steps on cpu -> {out}")
    assert lines[1].startswith("trained diffusion policy to step 2 (loss ")
    assert f"checkpoint: {out / 'checkpoint'}" in lines[2] and (out / "checkpoint").is_dir()
    assert f"scalar log: {out / 'scalars.csv'}" in lines[3] and (out / "scalars.csv").is_file()
    # resuming a finished run trains nothing, and says so rather than "final loss nan"
    assert main(["train", "bc", "--policy", str(recipes / "dp.yaml"), "--data", str(store), "--out", str(out),
                 "--steps", "2", "--resume", "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    assert lines[0].endswith(f"2 steps on cpu, resuming at step 2 -> {out}")
    assert "already holds diffusion policy trained to step 2: nothing to train" in lines[1]
    assert "nan" not in "\n".join(lines)


def test_train_bc_json_is_one_object_on_stdout(bc_run, store, recipes, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "bc", "--policy", str(recipes / "dp.yaml"), "--data", str(store), "--out", str(out),
                 "--steps", "2", "--no-progress", "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["command"] == "train bc" and summary["env"] == ENV and summary["steps"] == 2
    assert summary["episodes"] == 2 and summary["policy"] == "diffusion" and summary["device"] == "cpu"
    assert Path(summary["checkpoint"]).is_dir() and Path(summary["scalars"]).is_file()
    assert summary["final_loss"] > 0
    assert _human(cap.err)[0].startswith("train bc: diffusion policy")  # the header went to stderr
    assert "checkpoint:" not in cap.err  # and the JSON replaced the human summary


def test_distill_header_summary_and_json(bc_run, recipes, tmp_path, capsys):
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(bc_run), "--policy", str(recipes / "cm.yaml"), "--out", str(out),
                 "--steps", "2", "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    assert lines[0].startswith(f"distill: consistency student ({recipes / 'cm.yaml'}) of the diffusion teacher "
                               f"{bc_run} on 2 {ENV} episodes")
    assert lines[0].endswith(f"2 steps on cpu -> {out}")
    assert lines[1].startswith("trained consistency student to step 2")
    assert f"checkpoint: {out / 'checkpoint'}" in lines[2]
    assert main(["distill", "--teacher", str(bc_run), "--policy", str(recipes / "cm.yaml"),
                 "--out", str(tmp_path / "s2"), "--steps", "2", "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["command"] == "distill" and summary["teacher"] == str(bc_run) and summary["env"] == ENV
    from robolearn.train import checkpoint as ckpt

    assert ckpt.read_config(tmp_path / "s2")[2]["env"] == ENV  # the student records its env, as BC runs do


def test_eval_describes_sampling_in_words_and_names_its_files(bc_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--checkpoint", str(bc_run), "--env", ENV, "--episodes", "2", "--max-steps", "3",
                 "--video-episodes", "1", "--out", str(out), "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    result = out / "sim-pick_cube_diffusion_ddim2.json"
    assert lines[0] == (f"eval: {bc_run} (diffusion, DDIM, 2 steps) on {ENV}, 2 episodes (seeds 100000..100001), "
                        f"videos of the first 1 on cpu -> {result}")
    assert lines[1].startswith(f"{ENV}, diffusion (DDIM, 2 steps): success 0/2 = 0.0%")
    assert lines[2] == f"  results: {result}" and result.is_file()
    assert lines[3] == f"  videos: {out / 'sim-pick_cube_diffusion_ddim2_videos'}/episode_000.mp4"
    assert main(["eval", "--checkpoint", str(bc_run), "--env", ENV, "--episodes", "1", "--max-steps", "3",
                 "--out", str(out), "--no-progress", "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["episodes"] == 1 and summary["result_file"] == str(result)
    assert summary["sampling"] == {"sampler": "ddim", "steps": 2} and "per_episode" not in summary
    assert _human(cap.err)[0].startswith("eval: ") and "results:" not in cap.err


def test_eval_bad_numbers_fail_before_any_work(bc_run, tmp_path, capsys):
    for flag, value, message in (("--video-episodes", "-1", "--video-episodes must be >= 0, got -1"),
                                 ("--max-steps", "0", "--max-steps must be >= 1, got 0")):
        assert main(["eval", "--checkpoint", str(bc_run), "--env", ENV, "--out", str(tmp_path / "e"),
                     flag, value]) == 1
        assert capsys.readouterr().err == f"robolearn: error: {message}\n"
    assert not (tmp_path / "e").exists()


def test_collect_header_summary_and_json(tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["collect", "--env", ENV, "--source", "random", "--episodes", "2", "--max-steps", "4",
                 "--out", str(out), "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    assert lines[0] == (f"collect: 2 episodes of {ENV} from the random source, state only (no cameras), "
                        f"at most 4 steps each, seeds 0..1 -> {out}")
    assert f"  wrote 2 episode files: {out}/episode_000000.npz .. episode_000001.npz" in lines
    assert lines[-1].startswith(f"  store {out} now holds 2 episodes")
    assert main(["collect", "--env", ENV, "--source", "random", "--episodes", "3", "--max-steps", "4",
                 "--out", str(out), "--no-progress", "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["files"] == [str(out / "episode_000002.npz")] and summary["store_episodes"] == 3
    err = _human(cap.err)
    assert err[0].startswith("collect: 3 episodes") and any("resuming" in line for line in err)
    assert "wrote 1 episode file" not in cap.err


def test_data_export_header_summary_and_json(store, tmp_path, capsys):
    out = tmp_path / "lerobot"
    assert main(["data", "export", str(store), "--out", str(out), "--no-progress"]) == 0
    lines = _human(capsys.readouterr().out)
    assert lines[0] == f"data export: {store} as lerobot (LeRobotDataset v3.0) at 20 fps -> {out}"
    assert lines[1].startswith(f"exported 2 episodes (16 frames, 20 fps) from {store} to {out}")
    text = "\n".join(lines)
    assert f"files: {out / 'meta'}/{{" in text and "info.json" in text
    assert f"1 parquet file under {out / 'data'}" in text  # v3.0: episodes share data files up to the size limit
    assert main(["data", "export", str(store), "--out", str(tmp_path / "again"), "--no-progress", "--json"]) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert summary["episodes"] == 2 and all(Path(p).is_file() for p in summary["files"]["data"])
    assert str(tmp_path / "again" / "meta" / "info.json") in summary["files"]["meta"]
    assert _human(cap.err)[0].startswith("data export: ") and "files:" not in cap.err
