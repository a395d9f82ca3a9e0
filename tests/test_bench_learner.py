"""`robolearn bench learner` end to end at tiny sizes: every config runs on the requested critic backends
and the report is consistent."""
import json

import pytest
import torch

from robolearn.cli import main
from robolearn.rl import native_ops


def test_bench_learner_reports_every_config(tmp_path, capsys):
    if native_ops.load() is not None:  # tests/test_rl_native_ops.py fails the suite for this when a compiler exists
        pytest.skip(f"native critic operators unavailable: {native_ops.load()}")
    out = tmp_path / "learner.json"
    threads = torch.get_num_threads()
    try:  # the bench sets the process's torch threads: leave them as they were for the tests after this one
        rc = main(["bench", "learner", "--backends", "eager,native", "--threads", "1", "--hidden", "16", "--batch",
                   "32", "--updates", "2", "--rounds", "1", "--no-sb3", "--out", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    report = json.loads(out.read_text())
    res = report["results"]
    assert set(res) == {"rlpd_10_critics_eager", "rlpd_10_critics_loop", "sac_2_critics_eager",
                        "rlpd_10_critics_native", "sac_2_critics_native"}
    for name, r in res.items():
        assert r["updates_per_s"] > 0 and len(r["updates_per_s_rounds"]) == 1, name
        assert r["gflop_per_update"] > 0, name
        assert r["achieved_gflops"] == pytest.approx(r["updates_per_s"] * r["gflop_per_update"], rel=0.02, abs=0.01), name
        assert r["fraction_of_matmul_peak"] == pytest.approx(r["achieved_gflops"] / report["matmul_peak_gflops"],
                                                             abs=2e-3), name
    # the native variants are credited with the eager update's FLOPs (same math), 10 critics > 2 critics,
    # and the loop of modules runs the same math as the batched ensemble
    assert res["rlpd_10_critics_native"]["gflop_per_update"] == res["rlpd_10_critics_eager"]["gflop_per_update"]
    assert res["sac_2_critics_native"]["gflop_per_update"] == res["sac_2_critics_eager"]["gflop_per_update"]
    assert res["rlpd_10_critics_eager"]["gflop_per_update"] > 2 * res["sac_2_critics_eager"]["gflop_per_update"]
    assert res["rlpd_10_critics_loop"]["gflop_per_update"] == pytest.approx(
        res["rlpd_10_critics_eager"]["gflop_per_update"], rel=0.05)
    assert report["matmul_peak_gflops"] > 0 and report["copy_bandwidth_gbs"] > 0
    assert report["sizes"] == {"state_dim": 17, "action_dim": 6, "batch": 32, "hidden": [16, 16]}
    assert {"native_vs_eager_10_critics", "batched_vs_loop_10_critics"} <= set(report["ratios"])
    printed = capsys.readouterr().out
    assert printed.startswith("bench learner: RLPD-10 and SAC-2 critic updates on eager, native, batch 32")
    assert "{" not in printed and f"wrote {out}" in printed  # a human summary, never a raw dict


def test_bench_learner_rejects_an_unknown_backend(tmp_path, capsys):
    rc = main(["bench", "learner", "--backends", "eager,bogus", "--no-sb3", "--out", str(tmp_path / "x.json")])
    assert rc != 0
    assert "--backends: unknown backend(s) ['bogus']" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
