"""The record loop with a SpaceMouse for motion and the terminal for control keys (issue 13).

Why: a lab records with a SpaceMouse or gamepad, not only the keyboard; the terminal must still start,
mark and quit, its gripper keys must move the SpaceMouse's gripper latch, and the episode must say which
device made it. Both devices run their real parsers on replayed recordings in real time.
"""
import struct
import time

import numpy as np

import robolearn
from robolearn.data.episode_store import EpisodeStore
from robolearn.hardware.teleop import KeyboardDevice, ReplaySource, SpaceMouseDevice, load_teleop_config
from robolearn.train.record_cmd import Recorder, RecordConfig


def hid(report_id, *values):
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def test_spacemouse_moves_the_terminal_marks_and_the_meta_names_the_device(tmp_path):
    clock = time.perf_counter
    env = robolearn.make("sim/pick_cube", max_episode_steps=400)  # before the recordings' clock starts
    start = clock() + 0.1
    mouse = SpaceMouseDevice(load_teleop_config("spacemouse"), ReplaySource([
        (0.30, hid(1, 0, -350, 0)),     # push away: +x
        (0.60, hid(1, 0, 0, 0)),        # release
        (0.70, bytes([3, 0x01])),       # left button: close the gripper
        (0.75, bytes([3, 0x00])),
    ], clock=clock, start=start), clock=clock)
    keys_cfg = load_teleop_config("keyboard")
    keys_cfg.keys = {}  # as record sets it up: the terminal gives roles only
    keys = KeyboardDevice(keys_cfg, ReplaySource([
        (0.10, b"\r"),                  # start
        (0.20, b"w"),                   # a motion key on the control terminal: no role there, a message
        (1.00, b" "),                   # space toggles the SpaceMouse's gripper (closed -> open)
        (1.30, b"g"),                   # success
    ], clock=clock, start=start), clock=clock)
    cfg = RecordConfig(env="sim/pick_cube", teleop="spacemouse", episodes=1, out=str(tmp_path / "s"),
                       operator="grace", max_steps=400)
    try:
        rec = Recorder(env, EpisodeStore(cfg.out), mouse, cfg, controls=keys, out=None)
        summary = rec.run()
    finally:
        env.close()
    assert summary["episodes"] == 1 and summary["successes"] == 1 and summary["device"] == "spacemouse"
    ep = EpisodeStore(cfg.out).load(0, images=False)
    assert ep.meta["device"] == "spacemouse" and ep.meta["source"] == "teleop:spacemouse"
    assert ep.meta["operator"] == "grace" and ep.meta["teleop_config"].endswith("spacemouse.yaml")
    a = ep.action
    assert np.isclose(a[:, 0].max(), 1.0) and a[-1, 0] == 0.0  # the cap's push, then rest
    g = a[:, 6].tolist()
    first_close = g.index(1.0)
    assert g[0] == -1.0 and -1.0 in g[first_close:]  # closed by the SpaceMouse button, reopened by the space bar
    assert ep.state[-1, 0] > ep.state[0, 0] + 0.02
