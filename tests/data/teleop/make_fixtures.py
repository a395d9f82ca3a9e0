"""Writes the recorded teleop event streams in this folder from the protocol facts (run to regenerate).

keys_session.rltlog        terminal bytes, timed (robolearn event log): letters, arrows as CSI escape
                           sequences (one split across two reads), SS3 F1, a lone Esc, UTF-8, Enter.
spacemouse_compact.rltlog  HID reports of a two-report model: report 1 = translation (7 bytes), report 2 =
                           rotation (7 bytes), report 3 = buttons, plus a battery report to ignore.
spacemouse_wireless.rltlog HID reports of a one-report model: report 1 = translation + rotation (13 bytes).
gamepad_xbox.evdev         raw struct input_event records (24 bytes each), as `cat /dev/input/eventN` gives.
"""
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from robolearn.hardware.teleop.gamepad import ABS_CODES, EV_ABS, EV_KEY, EV_SYN, KEY_CODES, SYN_DROPPED, SYN_REPORT, pack_event  # noqa: E402
from robolearn.hardware.teleop.replay import write_event_log  # noqa: E402


def hid(report_id, *values):
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def main():
    write_event_log(HERE / "keys_session.rltlog", [
        (0.00, b"w"),               # +dx for hold_s
        (0.05, b"\x1b[D"),          # left arrow: +dy
        (0.30, b"\x1b["),           # down arrow, split across two reads ...
        (0.31, b"B"),               # ... -dx
        (0.50, b" "),               # gripper toggle (open -> closed)
        (0.60, b"z"),               # no role
        (0.70, b"\r"),              # Enter: start
        (0.80, b"\x1b"),            # a lone Esc (resolved after the escape timeout)
        (1.00, b"\x1bOP"),          # F1 (SS3), no role
        (1.10, b"G"),               # Shift+g: success (folded to g)
        (1.20, "é".encode()),       # a UTF-8 key, no role
    ])
    write_event_log(HERE / "spacemouse_compact.rltlog", [
        (0.00, hid(1, 0, -350, 0)),     # cap pushed fully away from the user
        (0.01, hid(2, 0, 0, 175)),      # half a twist about the device's z (down) axis
        (0.10, hid(1, 20, -350, 0)),    # a tiny sideways push, inside the deadzone
        (0.15, bytes([3, 0x01])),       # left button down
        (0.20, bytes([3, 0x00])),       # released
        (0.25, bytes([3, 0x02])),       # right button down
        (0.30, bytes([0x17, 0x64])),    # battery level report: no motion
        (0.40, hid(1, 0, 0, 0)),        # released: rest
        (0.41, hid(2, 0, 0, 0)),
    ])
    write_event_log(HERE / "spacemouse_wireless.rltlog", [
        (0.00, hid(1, -175, 0, -350, 350, 0, 0)),  # left half, lifted fully, full roll about x
        (0.10, bytes([3, 0x01, 0x00])),
        (0.20, hid(1, 0, 0, 0, 0, 0, 0)),
    ])
    a, k = ABS_CODES, KEY_CODES
    ev = [
        pack_event(EV_ABS, a["ABS_Y"], -32768, 1.00), pack_event(EV_SYN, SYN_REPORT, 0, 1.00),   # stick forward
        pack_event(EV_ABS, a["ABS_X"], 1000, 1.01), pack_event(EV_SYN, SYN_REPORT, 0, 1.01),     # inside deadzone
        pack_event(EV_KEY, k["BTN_TR"], 1, 1.02), pack_event(EV_SYN, SYN_REPORT, 0, 1.02),       # close gripper
        pack_event(EV_KEY, k["BTN_TR"], 0, 1.03), pack_event(EV_SYN, SYN_REPORT, 0, 1.03),
        pack_event(EV_KEY, k["BTN_SOUTH"], 1, 1.04), pack_event(EV_SYN, SYN_REPORT, 0, 1.04),    # success
        pack_event(EV_KEY, k["BTN_SOUTH"], 2, 1.05), pack_event(EV_SYN, SYN_REPORT, 0, 1.05),    # autorepeat
        pack_event(EV_SYN, SYN_DROPPED, 0, 1.06),                                                # overflow
        pack_event(EV_ABS, a["ABS_RX"], 32767, 1.06), pack_event(EV_SYN, SYN_REPORT, 0, 1.06),   # lost frame
        pack_event(EV_ABS, a["ABS_RY"], -16384, 1.07), pack_event(EV_SYN, SYN_REPORT, 0, 1.07),  # half up
    ]
    (HERE / "gamepad_xbox.evdev").write_bytes(b"".join(ev))


if __name__ == "__main__":
    main()
