"""`robolearn bench learner` end to end at tiny sizes: every config runs and the report is consistent."""
import json

import pytest

from robolearn.cli import main
from robolearn.rl import native_ops


def test_bench_learner_reports_every_config(tmp_path):
    if native_ops.load() is not None:
        pytest.skip(f"native learner operators cannot be built here: {native_ops.load()}")
    out = tmp_path / "learner.json"
    rc = main(["bench", "learner", "--threads", "1", "--hidden", "16", "--batch", "8", "--updates", "2",
               "--rounds", "2", "--compile", "--no-sb3", "--out", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    res = report["results"]
    assert set(res) == {"rlpd_10_critics_batched", "rlpd_10_critics_loop", "sac_2_critics",
                        "rlpd_10_critics_compiled", "sac_2_critics_compiled"}
    for name, r in res.items():
        assert r["updates_per_s"] > 0 and len(r["updates_per_s_rounds"]) == 2, name
        assert r["achieved_gflops"] == pytest.approx(r["updates_per_s"] * r["gflop_per_update"], rel=0.02, abs=0.01), name
        assert r["fraction_of_matmul_peak"] == pytest.approx(r["achieved_gflops"] / report["matmul_peak_gflops"],
                                                             abs=2e-3), name
    # the compiled variants are credited with the eager update's FLOPs (same math), 10 critics > 2 critics
    assert res["rlpd_10_critics_compiled"]["gflop_per_update"] == res["rlpd_10_critics_batched"]["gflop_per_update"]
    assert res["rlpd_10_critics_batched"]["gflop_per_update"] > res["sac_2_critics"]["gflop_per_update"]
    assert report["matmul_peak_gflops"] > 0 and report["copy_bandwidth_gbs"] > 0
    assert {"compiled_vs_eager_10_critics", "batched_vs_loop_10_critics"} <= set(report["ratios"])
