"""A short end-to-end run of the main job (`robolearn demo --quick`) as a user runs it."""
import json
import subprocess
import sys

import cv2
import imageio.v3 as iio

from robolearn.data.episode_store import EpisodeStore


def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "robolearn.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "robolearn demo summary" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    for task in ("sim/pick_cube", "sim/peg_insert"):
        short = task.split("/")[1]
        store = EpisodeStore(out / "data" / short)
        assert len(store) == summary["collect"][task]["episodes"] == 3
        frames = iio.imread(out / f"{short}_expert.mp4")
        assert frames.shape[0] == summary["videos"][task]["frames"] > 5
        sheet = cv2.imread(str(out / f"{short}_contact_sheet.png"))
        assert sheet is not None and sheet.shape[0] > 100
    assert summary["collect"]["sim/pick_cube"]["success_rate"] >= 2 / 3
    bc = summary["bc"]
    assert bc["train_steps"] == 40 and bc["episodes"] == 2 and 0.0 <= bc["success_rate"] <= 1.0
    assert (out / "peg_bc" / "checkpoint" / "model.safetensors").is_file()
    rollout = iio.imread(bc["videos"][0])
    assert rollout.shape[0] > 5
    assert "BC peg_insert" in proc.stdout
