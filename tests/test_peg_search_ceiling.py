"""examples/peg_search_ceiling.py: observation-only controllers bound what a learned policy can reach on
sim/peg_insert (docs/results_refine.md quotes them). Episodes and kicks are seeded, so the counts are fixed."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "peg_search_ceiling.py"


def load_example():
    spec = importlib.util.spec_from_file_location("peg_search_ceiling", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_searching_beats_aiming_at_the_observed_hole(capsys):
    results = {r["controller"]: r for r in load_example().main(["--episodes", "16", "--json"])}
    printed = {r["controller"]: r for r in json.loads(capsys.readouterr().out)}
    assert printed == results
    aim, search = results["aim"], results["search"]
    # aiming trusts a calibration error as large as the clearance: it lands on the rim in a share of episodes
    assert 2 <= aim["episodes"] - aim["successes"] <= 12
    # lifting and kicking sideways from the rim finds the hole without memory
    assert search["successes"] >= 14 and search["successes"] > aim["successes"]
    assert search["mean_length"] < 100 and 0 <= search["ci95"][0] <= search["success_rate"] <= search["ci95"][1]


def test_controllers_read_only_the_observation_layout():
    ex = load_example()
    parts = ex.observed({"state": list(range(15))}, [("ee_pos", 3), ("ee_quat", 4), ("gripper", 1),
                                                     ("hole_pos", 3), ("hole_quat", 4)])
    assert parts["hole_pos"].tolist() == [8, 9, 10] and parts["ee_quat"].tolist() == [3, 4, 5, 6]


def test_bad_episode_count_is_an_error(capsys):
    with pytest.raises(SystemExit):
        load_example().main(["--episodes", "0"])
    assert "--episodes must be >= 1" in capsys.readouterr().err
