"""Teleop devices, tested by replaying recorded event streams through their parsers (issue 13).

Why: this machine has no /dev/input, /dev/uinput or display, and a device bug (a wrong sign, a deadzone
that lets drift through, an escape sequence read as three keys) moves a real arm the wrong way. The
streams in tests/data/teleop/ are byte sequences built from the protocol facts (make_fixtures.py).
"""
import filecmp
import os
import pty
import struct
from pathlib import Path

import numpy as np
import pytest

from robolearn.hardware.teleop import (DeviceNotFoundError, GamepadDevice, KeyboardDevice, ReplaySource,
                                       SpaceMouseDevice, load_teleop_config, read_event_log, resolve_teleop_config,
                                       shipped_teleop_configs, write_event_log)
from robolearn.hardware.teleop.base import CONFIG_DIR, TeleopConfig
from robolearn.hardware.teleop.gamepad import EVENT, find_gamepad
from robolearn.hardware.teleop.keyboard import KeyParser, TerminalReader
from robolearn.hardware.teleop.spacemouse import find_spacemouse, parse_report

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "teleop"


def replay_until(device, records, t):
    for rt, chunk in records:
        if rt <= t:
            device.feed(chunk, rt)
    return device.command(t)


# ----------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------
def test_shipped_teleop_configs_equal_the_editable_copies():
    repo = sorted(p.name for p in (ROOT / "hardware" / "teleop").glob("*.yaml"))
    assert repo == ["gamepad.yaml", "keyboard.yaml", "spacemouse.yaml"]
    assert sorted(p.name for p in CONFIG_DIR.glob("*.yaml")) == repo
    differ = [n for n in repo if not filecmp.cmp(ROOT / "hardware" / "teleop" / n, CONFIG_DIR / n, shallow=False)]
    assert not differ, f"{differ}: copy hardware/teleop/*.yaml into robolearn/hardware/teleop/configs/"


def test_configs_resolve_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped_teleop_configs() == ["gamepad", "keyboard", "spacemouse"]
    assert resolve_teleop_config("keyboard") == CONFIG_DIR / "keyboard.yaml"
    assert resolve_teleop_config("hardware/teleop/gamepad.yaml") == CONFIG_DIR / "gamepad.yaml"
    own = tmp_path / "keyboard.yaml"
    own.write_text("device: keyboard\nkeys: {h: +dx}\n")
    assert load_teleop_config("keyboard.yaml").keys == {"h": "+dx"}  # the user's file wins
    with pytest.raises(FileNotFoundError, match="teleop config 'joystick' not found.*gamepad, keyboard, spacemouse"):
        resolve_teleop_config("joystick")


@pytest.mark.parametrize("text, match", [
    ("device: wiimote\n", "device must be one of keyboard, spacemouse, gamepad"),
    ("device: gamepad\ndeadzone: 1.5\n", "deadzone must be a number in"),
    ("device: gamepad\naxes: {dq: +ABS_X}\n", "axes.dq: not an action component"),
    ("device: gamepad\naxes: {dx: ABS_X}\n", "expected a signed raw axis"),
    ("device: keyboard\nbuttons: {g: launch}\n", "buttons.g: unknown role 'launch'"),
    ("device: keyboard\nkeys: {g: +dx}\nbuttons: {g: success}\n", "g both move the arm"),
    ("device: keyboard\ndeadzon: 0.1\n", "unknown key 'deadzon' \\(did you mean 'deadzone'\\?\\)"),
    ("device: gamepad\nranges: {ABS_X: [5, -5]}\n", "ranges.ABS_X must be \\[min, max\\]"),
])
def test_bad_configs_name_the_field(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_teleop_config(path)


def test_device_specific_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown evdev axes \\['ABS_Q'\\]"):
        GamepadDevice(TeleopConfig(device="gamepad", axes={"dx": "+ABS_Q"}))
    with pytest.raises(ValueError, match="unknown evdev buttons \\['BTN_BIG'\\]"):
        GamepadDevice(TeleopConfig(device="gamepad", buttons={"BTN_BIG": "start"}))
    with pytest.raises(ValueError, match="unknown raw axes \\['tw'\\]"):
        SpaceMouseDevice(TeleopConfig(device="spacemouse", axes={"dx": "+tw"}))
    with pytest.raises(ValueError, match="unknown key name"):
        KeyboardDevice(TeleopConfig(device="keyboard", keys={"arrow-up": "+dx"}))
    with pytest.raises(ValueError, match="is for a keyboard, not a gamepad"):
        GamepadDevice(load_teleop_config("keyboard"))


# ----------------------------------------------------------------------------------------------
# Keyboard
# ----------------------------------------------------------------------------------------------
def test_key_parser_escape_sequences():
    p = KeyParser()
    assert p.feed(b"w\x1b[A\x1bOB\x1b[5~\x1b[1;5C\r\n\x7f\t \x01", 0.0) == [
        "w", "up", "down", "pageup", "ctrl-right", "enter", "enter", "backspace", "tab", "space", "ctrl-a"]
    assert p.feed(b"\x1b", 1.0) == [] and p.pending  # maybe the start of a sequence
    assert p.flush(1.01) == []  # too early to call it Esc
    assert p.feed(b"[", 1.02) == []
    assert p.feed(b"3~", 1.03) == ["delete"]  # completed across three reads
    assert p.feed(b"\x1b", 2.0) == [] and p.flush(2.1) == ["esc"]
    assert p.feed(b"\x1bx", 3.0) == ["alt-x"]
    assert p.feed("ü".encode()[:1], 4.0) == [] and p.feed("ü".encode()[1:], 4.0) == ["ü"]


def test_keyboard_replay_maps_keys_to_motion_gripper_and_roles():
    records = read_event_log(DATA / "keys_session.rltlog")
    kb = KeyboardDevice(load_teleop_config("keyboard"))  # hold_s 0.2, translation_scale 0.5
    cmd = replay_until(kb, records, 0.06)
    np.testing.assert_allclose(cmd.action, [0.5, 0.5, 0, 0, 0, 0, -1])  # w and left arrow, gripper open
    assert cmd.active and cmd.buttons == frozenset()
    cmd = kb.command(0.21)  # w expired at 0.2, left arrow still held until 0.25
    np.testing.assert_allclose(cmd.action[:2], [0.0, 0.5])
    kb2 = KeyboardDevice(load_teleop_config("keyboard"))
    cmd = replay_until(kb2, records, 0.305)  # the down arrow's first half only: nothing yet
    assert cmd.action[0] == 0.0 and kb2.parser.pending
    cmd = replay_until(kb2, [r for r in records if r[0] > 0.305], 0.32)
    assert cmd.action[0] == -0.5  # down arrow replaced w's direction on x at once
    cmd = replay_until(kb2, [r for r in records if 0.32 < r[0]], 0.9)
    assert cmd.action[6] == 1.0  # space toggled the gripper closed
    assert cmd.buttons == {"gripper_toggle", "start"} and cmd.active
    assert cmd.unmapped == ("z", "esc")  # the lone Esc resolved after its timeout
    cmd = replay_until(kb2, [r for r in records if 0.9 < r[0]], 1.3)
    assert cmd.buttons == {"success"} and cmd.unmapped == ("f1", "é") and not cmd.active
    assert [k for _, k in kb2.keys_seen] == ["w", "left", "down", "space", "z", "enter", "esc", "f1", "G", "é"]


def test_keyboard_reads_a_real_terminal_in_cbreak_mode_and_restores_it():
    import termios

    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        reader = TerminalReader(slave)
        mode = termios.tcgetattr(slave)
        assert not mode[3] & termios.ICANON and not mode[3] & termios.ECHO and mode[3] & termios.ISIG
        kb = KeyboardDevice(load_teleop_config("keyboard"), reader)
        assert kb.poll().action[0] == 0  # nothing typed: returns at once
        os.write(master, b"w\x1b[D")  # a line discipline in canonical mode would hold these back
        import time
        time.sleep(0.05)
        cmd = kb.poll()
        assert cmd.action[0] == 0.5 and cmd.action[1] == 0.5
        kb.close()
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_keyboard_ctrl_c_byte_raises_keyboard_interrupt():
    kb = KeyboardDevice(load_teleop_config("keyboard"))
    with pytest.raises(KeyboardInterrupt):
        kb.feed(b"w\x03", 0.0)


def test_keyboard_without_a_terminal_says_what_stdin_is():
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceNotFoundError, match=r"fd \d+ is a pipe: found no terminal.*ssh -t"):
            TerminalReader(r)
    finally:
        os.close(r)
        os.close(w)


# ----------------------------------------------------------------------------------------------
# SpaceMouse
# ----------------------------------------------------------------------------------------------
def test_hid_report_parsing():
    assert parse_report(bytes([1]) + struct.pack("<3h", 5, -6, 350)) == ({"tx": 5, "ty": -6, "tz": 350}, None)
    six = parse_report(bytes([1]) + struct.pack("<6h", 1, 2, 3, -4, -5, -6))[0]
    assert six == {"tx": 1, "ty": 2, "tz": 3, "rx": -4, "ry": -5, "rz": -6}
    assert parse_report(bytes([2]) + struct.pack("<3h", 7, 8, 9))[0] == {"rx": 7, "ry": 8, "rz": 9}
    assert parse_report(bytes([3, 0b101, 0b10])) == ({}, {0, 2, 9})
    assert parse_report(bytes([0x17, 80])) == ({}, None)


def test_spacemouse_replay_two_report_model():
    records = read_event_log(DATA / "spacemouse_compact.rltlog")
    sm = SpaceMouseDevice(load_teleop_config("spacemouse"))  # deadzone 0.1, rotation_scale 0.6
    cmd = replay_until(sm, records, 0.05)
    twist = -(0.5 - 0.1) / 0.9 * 0.6  # raw rz 175/350 = 0.5 -> deadzone-rescaled -> sign -> scale
    np.testing.assert_allclose(cmd.action, [1.0, 0, 0, 0, 0, twist, -1], atol=1e-6)
    cmd = replay_until(sm, [r for r in records if 0.05 < r[0]], 0.16)
    assert cmd.action[1] == 0.0  # tx 20/350 is inside the deadzone
    assert cmd.buttons == {"gripper_close"} and cmd.action[6] == 1.0
    cmd = replay_until(sm, [r for r in records if 0.16 < r[0]], 0.35)
    assert cmd.buttons == {"gripper_open"} and cmd.action[6] == -1.0  # release of button 0 is no press
    cmd = replay_until(sm, [r for r in records if 0.35 < r[0]], 0.5)
    assert not cmd.active and not np.any(cmd.action[:6])
    assert sm.events == 8  # the battery report is not an input event


def test_spacemouse_replay_one_report_model():
    sm = SpaceMouseDevice(load_teleop_config("spacemouse"))
    cmd = replay_until(sm, read_event_log(DATA / "spacemouse_wireless.rltlog"), 0.15)
    dy = (0.5 - 0.1) / 0.9  # pushed left (tx -175) -> +dy
    np.testing.assert_allclose(cmd.action[:6], [0, dy, 1.0, 0, -0.6, 0], atol=1e-6)  # rx 350 -> -dry
    assert cmd.buttons == {"gripper_close"}


def _fake_sysfs(root, nodes):
    for name, hid_id, hid_name in nodes:
        d = root / "sys" / "class" / "hidraw" / name / "device"
        d.mkdir(parents=True)
        (d / "uevent").write_text(f"DRIVER=hid-generic\nHID_ID={hid_id}\nHID_NAME={hid_name}\n")


def test_missing_spacemouse_lists_what_was_found_and_the_udev_rule(tmp_path):
    cfg = load_teleop_config("spacemouse")
    with pytest.raises(DeviceNotFoundError, match="no SpaceMouse found.*nothing.*udev rule KERNEL==\"hidraw\\*\""):
        find_spacemouse(cfg, tmp_path / "sys", tmp_path / "dev")
    _fake_sysfs(tmp_path, [("hidraw0", "0003:0000046D:0000C52B", "Logitech USB Receiver"),
                           ("hidraw1", "0003:0000256F:0000C635", "3Dconnexion SpaceMouse Compact")])
    (tmp_path / "dev").mkdir()
    with pytest.raises(DeviceNotFoundError) as err:
        find_spacemouse(cfg, tmp_path / "sys", tmp_path / "dev")  # /dev/hidraw1 absent here: unreadable
    assert "found a SpaceMouse at" in str(err.value) and "hidraw1" in str(err.value)
    assert 'ATTRS{idVendor}=="256f"' in str(err.value) and "udevadm" in str(err.value)
    (tmp_path / "dev" / "hidraw1").write_bytes(b"")
    assert find_spacemouse(cfg, tmp_path / "sys", tmp_path / "dev") == str(tmp_path / "dev" / "hidraw1")
    (tmp_path / "dev" / "hidraw1").unlink()
    (tmp_path / "sys" / "class" / "hidraw" / "hidraw1").rename(tmp_path / "gone")
    with pytest.raises(DeviceNotFoundError, match=r"hidraw0 \(046d:c52b Logitech USB Receiver\)"):
        find_spacemouse(cfg, tmp_path / "sys", tmp_path / "dev")  # a Logitech receiver is no SpaceMouse


# ----------------------------------------------------------------------------------------------
# Gamepad
# ----------------------------------------------------------------------------------------------
def test_gamepad_replay_of_raw_evdev_bytes():
    data = (DATA / "gamepad_xbox.evdev").read_bytes()
    assert len(data) % EVENT.size == 0 and EVENT.size == 24
    gp = GamepadDevice(load_teleop_config("gamepad"))
    gp.feed(data[:EVENT.size * 2 + 5], 0.0)  # a read boundary inside a record
    cmd = gp.command(0.0)
    np.testing.assert_allclose(cmd.action[:6], [1.0, 0, 0, 0, 0, 0], atol=1e-4)  # ABS_Y -32768 -> +dx
    gp.feed(data[EVENT.size * 2 + 5:EVENT.size * 10], 0.1)
    cmd = gp.command(0.1)
    assert cmd.action[1] == 0.0  # ABS_X 1000 is inside the 0.15 deadzone
    assert cmd.buttons == {"gripper_close", "success"} and cmd.action[6] == 1.0
    gp.feed(data[EVENT.size * 10:], 0.2)
    cmd = gp.command(0.2)
    assert gp.dropped_frames == 1
    assert cmd.action[5] == 0.0  # ABS_RX of the dropped frame never applied
    assert cmd.action[0] == 0.0  # positions before the drop forgotten: the arm stops
    np.testing.assert_allclose(cmd.action[2], (0.5 - 0.15) / 0.85, atol=1e-3)  # ABS_RY -16384 -> +dz
    assert cmd.buttons == frozenset()  # the autorepeat (value 2) of BTN_SOUTH is no new press


def _fake_proc(root, blocks):
    d = root / "proc" / "bus" / "input"
    d.mkdir(parents=True)
    d.joinpath("devices").write_text("\n\n".join(
        f'I: Bus=0003 Vendor=045e Product=028e\nN: Name="{name}"\nH: Handlers={handlers}' for name, handlers in blocks))


def test_missing_gamepad_lists_input_devices_and_the_permission_fix(tmp_path):
    cfg = load_teleop_config("gamepad")
    with pytest.raises(DeviceNotFoundError, match="no gamepad found.*nothing.*usermod -aG input.*ID_INPUT_JOYSTICK"):
        find_gamepad(cfg, tmp_path / "proc", tmp_path / "dev")
    _fake_proc(tmp_path, [("AT Translated Set 2 keyboard", "sysrq kbd event0 leds"),
                          ("Microsoft X-Box 360 pad", "event5 js0")])
    with pytest.raises(DeviceNotFoundError, match=r"found a gamepad at .*input/event5 but cannot read it.*input group"):
        find_gamepad(cfg, tmp_path / "proc", tmp_path / "dev")
    (tmp_path / "dev" / "input").mkdir(parents=True)
    (tmp_path / "dev" / "input" / "event5").write_bytes(b"")
    assert find_gamepad(cfg, tmp_path / "proc", tmp_path / "dev").endswith("input/event5")


def test_real_machine_reports_missing_devices_by_name():
    """This machine has no SpaceMouse or gamepad: the error is a DeviceNotFoundError (a FileNotFoundError the
    CLI prints as one line), never an OSError from opening a path that does not exist."""
    from robolearn.hardware.teleop import open_device

    for name in ("spacemouse", "gamepad"):
        if name == "gamepad" and Path("/proc/bus/input/devices").exists() and "js" in Path(
                "/proc/bus/input/devices").read_text():
            continue
        with pytest.raises(DeviceNotFoundError):
            open_device(name).close()


# ----------------------------------------------------------------------------------------------
# Event logs and replay
# ----------------------------------------------------------------------------------------------
def test_event_log_round_trip_and_replay_timing(tmp_path):
    recs = [(0.0, b"a"), (0.5, b"\x1b[A"), (0.5, b"")]
    path = write_event_log(tmp_path / "x.rltlog", recs)
    assert read_event_log(path) == recs
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="wants 3 bytes|truncated"):
        read_event_log(path)
    with pytest.raises(ValueError, match="times must not decrease"):
        write_event_log(tmp_path / "y.rltlog", [(1.0, b"a"), (0.5, b"b")])
    now = [10.0]
    src = ReplaySource(recs, clock=lambda: now[0])
    assert src.read() == [b"a"]
    now[0] = 10.49
    assert src.read() == []
    now[0] = 10.5
    assert src.read() == [b"\x1b[A", b""] and src.done
