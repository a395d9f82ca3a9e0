"""``robolearn data info``: how a store was recorded (env, source, cameras, image size, fps, expert noise),
and ``--stats`` with dimension names next to rounded values."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import robolearn  # noqa: F401  (MUJOCO_GL)
from robolearn.cli import main
from robolearn.data.episode_store import EpisodeStore
from robolearn.train.collect_cmd import collect


@pytest.fixture(scope="module")
def camera_store(tmp_path_factory):
    out = tmp_path_factory.mktemp("info_fields") / "store"
    collect("sim/pick_cube", "expert", 2, out, noise=0.1, cameras=["front", "wrist"], image_size=32, max_steps=4,
            progress=False, log=None)
    return out


def _line(text: str, label: str) -> str:
    match = re.search(rf"^{re.escape(label)}:\s+(.*)$", text, re.M)
    assert match, f"no {label!r} line in:\n{text}"
    return match.group(1)


def test_recorded_fields_are_shown(camera_store, capsys):
    assert main(["data", "info", str(camera_store)]) == 0
    out = capsys.readouterr().out
    assert _line(out, "env") == "sim/pick_cube"
    assert _line(out, "source") == "expert"
    assert _line(out, "cameras") == "front,wrist"
    assert _line(out, "image size") == "32x32"
    assert _line(out, "expert noise") == "0.1"
    assert _line(out, "fps") == "20"  # collect records the env's control rate (sim: 20 Hz)


def test_json_keeps_working_and_carries_the_fields(camera_store, capsys):
    assert main(["data", "info", str(camera_store), "--json", "--stats"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["episodes"] == 2 and doc["steps"] == 8
    assert doc["recorded"]["env"] == {"sim/pick_cube": 2}
    assert doc["recorded"]["cameras"] == {"front,wrist": 2}
    assert doc["recorded"]["image_size"] == {"32x32": 2}
    assert doc["recorded"]["noise"] == {"0.1": 2}
    assert len(doc["stats"]["state"]["mean"]) == 15
    assert doc["stat_names"]["state"][:4] == ["ee_pos.0", "ee_pos.1", "ee_pos.2", "ee_quat.0"]
    assert doc["stat_names"]["action"] == ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
    assert doc["stat_names"]["reward"] == ["reward"]


def test_stats_rows_name_each_dimension_with_rounded_values(camera_store, capsys):
    assert main(["data", "info", str(camera_store), "--stats"]) == 0
    out = capsys.readouterr().out
    stats = EpisodeStore(camera_store, create=False).stats()
    row = re.search(r"^\s+ee_pos\.2\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", out, re.M)
    assert row, out
    mean, std, lo, hi = (float(x) for x in row.groups())
    assert mean == pytest.approx(stats["state"]["mean"][2], abs=5e-5)
    assert hi == pytest.approx(stats["state"]["max"][2], abs=5e-5)
    assert all(len(x.split(".")[-1]) <= 4 for x in row.groups())  # rounded, not 0.14876543210
    assert "stats state (15 dims):" in out and "stats action (7 dims):" in out
    assert "e-1" not in out  # float noise (1e-13) reads as 0.0000, not as an exponent


def test_mixed_store_lists_each_value_and_unnamed_dims_are_numbered(tmp_path, capsys):
    """Episodes written with other meta (resumed with another --noise, a recorder that stores fps):
    every value is shown with its episode count; dimensions without recorded names are state_i."""
    store = EpisodeStore(tmp_path / "mixed")
    for noise, fps in ((0.0, 10), (0.3, 10), (0.3, 10)):
        w = store.writer(meta={"env": "sim/peg_insert", "source": "expert", "noise": noise, "fps": fps})
        w.reset({"state": np.zeros(3, np.float32)})
        for t in range(2):
            w.step(np.array([0.5, -0.25], np.float32), {"state": np.full(3, t + 1.0, np.float32)}, 0.0, False, t == 1)
        w.close()
    assert main(["data", "info", str(store.root), "--stats"]) == 0
    out = capsys.readouterr().out
    assert _line(out, "expert noise") == "0.3 (2 episodes), 0 (1 episode)"
    assert _line(out, "fps") == "10"
    assert _line(out, "cameras") == "none" and _line(out, "image size") == "no images"
    assert re.search(r"^\s+state_2\s+1\.0000\s", out, re.M), out  # mean of 0, 1, 2
    assert re.search(r"^\s+action_1\s+-0\.2500\s", out, re.M), out
