"""Gamepad over Linux evdev (/dev/input/eventN): no SDL, no display.

An evdev file yields ``struct input_event`` records: ``struct timeval time`` (two C longs), ``__u16 type``,
``__u16 code``, ``__s32 value`` - 24 bytes on 64-bit Linux. ``EV_ABS`` events carry axis positions (the
range comes from the EVIOCGABS ioctl, or from the config when replaying), ``EV_KEY`` events carry buttons
(1 down, 0 up, 2 autorepeat), and ``EV_SYN/SYN_REPORT`` closes a frame: the events before it belong to
one instant and are applied together. ``SYN_DROPPED`` means the kernel buffer overflowed and events were
lost; the frame is discarded and every axis is zeroed (the arm stops) until fresh values arrive.
"""
from __future__ import annotations

import os
import struct
import time
from pathlib import Path
from typing import Callable

import numpy as np

from robolearn.hardware.teleop.base import (ByteSource, DeviceFileReader, DeviceNotFoundError, TeleopConfig,
                                            TeleopDevice, apply_deadzone, check_device_path, describe_found,
                                            readable)

EVENT = struct.Struct("llHHi")  # struct input_event with the native long size (24 bytes on 64-bit)
EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT, SYN_DROPPED = 0, 3
# linux/input-event-codes.h
ABS_CODES = {"ABS_X": 0x00, "ABS_Y": 0x01, "ABS_Z": 0x02, "ABS_RX": 0x03, "ABS_RY": 0x04, "ABS_RZ": 0x05,
             "ABS_THROTTLE": 0x06, "ABS_RUDDER": 0x07, "ABS_WHEEL": 0x08, "ABS_GAS": 0x09, "ABS_BRAKE": 0x0A,
             "ABS_HAT0X": 0x10, "ABS_HAT0Y": 0x11, "ABS_HAT1X": 0x12, "ABS_HAT1Y": 0x13}
KEY_CODES = {"BTN_TRIGGER": 0x120, "BTN_THUMB": 0x121, "BTN_THUMB2": 0x122, "BTN_TOP": 0x123,
             "BTN_SOUTH": 0x130, "BTN_EAST": 0x131, "BTN_C": 0x132, "BTN_NORTH": 0x133, "BTN_WEST": 0x134,
             "BTN_Z": 0x135, "BTN_TL": 0x136, "BTN_TR": 0x137, "BTN_TL2": 0x138, "BTN_TR2": 0x139,
             "BTN_SELECT": 0x13A, "BTN_START": 0x13B, "BTN_MODE": 0x13C, "BTN_THUMBL": 0x13D, "BTN_THUMBR": 0x13E,
             "BTN_DPAD_UP": 0x220, "BTN_DPAD_DOWN": 0x221, "BTN_DPAD_LEFT": 0x222, "BTN_DPAD_RIGHT": 0x223}
ABS_NAMES = {v: k for k, v in ABS_CODES.items()}
KEY_NAMES = {v: k for k, v in KEY_CODES.items()}
DEFAULT_RANGE = (-32768, 32767)


def pack_event(type_: int, code: int, value: int, t: float = 0.0) -> bytes:
    """One ``struct input_event`` as the kernel writes it (for recordings and tests)."""
    sec = int(t)
    return EVENT.pack(sec, int(round((t - sec) * 1e6)), type_, code, value)


def unpack_events(data: bytes) -> list[tuple[float, int, int, int]]:
    """(time, type, code, value) of every whole record in ``data``."""
    out = []
    for off in range(0, len(data) - len(data) % EVENT.size, EVENT.size):
        sec, usec, type_, code, value = EVENT.unpack_from(data, off)
        out.append((sec + usec * 1e-6, type_, code, value))
    return out


class GamepadDevice(TeleopDevice):
    kind = "gamepad"

    def __init__(self, config: TeleopConfig, source: ByteSource | None = None,
                 clock: Callable[[], float] = time.monotonic, absinfo: dict[str, tuple[int, int]] | None = None):
        super().__init__(config, source, clock)
        self._axes = config.signed_axes()
        where = f"teleop config {config.source or 'gamepad'}"
        bad = sorted({raw for _, _, raw in self._axes} - set(ABS_CODES))
        if bad:
            raise ValueError(f"{where}: unknown evdev axes {bad}; known: {', '.join(ABS_CODES)}")
        bad = sorted(set(config.buttons) - set(KEY_CODES))
        if bad:
            raise ValueError(f"{where}: unknown evdev buttons {bad}; known: {', '.join(KEY_CODES)}")
        bad = sorted(set(config.ranges) - set(ABS_CODES))
        if bad:
            raise ValueError(f"{where}: ranges for unknown evdev axes {bad}")
        self.ranges = {name: tuple(config.ranges.get(name, DEFAULT_RANGE)) for name in ABS_CODES}
        self.ranges.update(absinfo or {})  # what the device itself reports wins over the config
        self.raw: dict[str, int] = {}
        self.held: set[str] = set()
        self._buf = bytearray()
        self._frame: list[tuple[int, int, int]] = []
        self._dropping = False
        self.dropped_frames = 0

    def normalised(self, name: str) -> float:
        """Raw position in [-1, 1]; an axis whose range starts at 0 (a trigger) maps to [0, 1]."""
        if name not in self.raw:
            return 0.0
        lo, hi = self.ranges[name]
        v = self.raw[name]
        if lo == 0:
            return float(np.clip((v - lo) / (hi - lo), 0.0, 1.0))
        center, half = (lo + hi) / 2.0, (hi - lo) / 2.0
        return float(np.clip((v - center) / half, -1.0, 1.0))

    def feed(self, chunk: bytes, t: float) -> None:
        self._buf += chunk
        usable = len(self._buf) - len(self._buf) % EVENT.size
        events = unpack_events(bytes(self._buf[:usable]))
        del self._buf[:usable]
        for _ts, type_, code, value in events:
            self.events += 1
            if type_ == EV_SYN and code == SYN_DROPPED:
                self._frame, self._dropping = [], True
                self.dropped_frames += 1
                self.raw.clear()  # positions are unknown now: stop rather than keep a stale deflection
                continue
            if type_ == EV_SYN and code == SYN_REPORT:
                if not self._dropping:
                    self._apply(self._frame)
                self._frame, self._dropping = [], False
                self.last_event_t = t
                continue
            if not self._dropping and type_ in (EV_ABS, EV_KEY):
                self._frame.append((type_, code, value))

    def _apply(self, frame: list[tuple[int, int, int]]) -> None:
        for type_, code, value in frame:
            if type_ == EV_ABS and code in ABS_NAMES:
                self.raw[ABS_NAMES[code]] = value
            elif type_ == EV_KEY:
                name = KEY_NAMES.get(code, f"KEY_{code:#x}")
                if value == 1 and name not in self.held:
                    self.held.add(name)
                    self._press(name)
                elif value == 0:
                    self.held.discard(name)

    def motion(self, t: float) -> np.ndarray:
        out = np.zeros(6, dtype=np.float32)
        for index, sign, raw in self._axes:
            v = apply_deadzone(self.normalised(raw), self.config.deadzone)
            out[index] = np.clip(out[index] + sign * v * self.config.scale_of(index), -1.0, 1.0)
        return out


# ----------------------------------------------------------------------------------------------
# Finding and reading the real device
# ----------------------------------------------------------------------------------------------
def input_devices(proc_root: str | Path = "/proc") -> list[dict]:
    """Blocks of /proc/bus/input/devices: name and handlers (``event5 js0``)."""
    path = Path(proc_root) / "bus" / "input" / "devices"
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for block in text.strip().split("\n\n"):
        info = {"name": "?", "handlers": []}
        for line in block.splitlines():
            if line.startswith("N: Name="):
                info["name"] = line.split("=", 1)[1].strip().strip('"')
            elif line.startswith("H: Handlers="):
                info["handlers"] = line.split("=", 1)[1].split()
        out.append(info)
    return out


UDEV_RULE = 'KERNEL=="event*", SUBSYSTEM=="input", ENV{ID_INPUT_JOYSTICK}=="1", MODE="0660", TAG+="uaccess"'
PERMISSION_FIX = (f"add yourself to the input group (`sudo usermod -aG input $USER`, then log in again) or add the "
                  f"udev rule {UDEV_RULE} to /etc/udev/rules.d/99-gamepad.rules and run "
                  "`sudo udevadm control --reload-rules && sudo udevadm trigger`")


def find_gamepad(config: TeleopConfig, proc_root: str | Path = "/proc", dev_root: str | Path = "/dev") -> str:
    """The evdev path of the first readable joystick (a device with a ``js`` handler)."""
    if config.path:
        return check_device_path(config.path, "gamepad", PERMISSION_FIX)
    devices = input_devices(proc_root)
    found = [f"{d['name']} ({' '.join(d['handlers'])})" for d in devices]
    pads = []
    for d in devices:
        if any(h.startswith("js") for h in d["handlers"]):
            pads += [str(Path(dev_root) / "input" / h) for h in d["handlers"] if h.startswith("event")]
    for path in pads:
        if readable(path):
            return path
    if pads:
        raise DeviceNotFoundError(f"found a gamepad at {', '.join(pads)} but cannot read it (permission denied): "
                                  f"{PERMISSION_FIX}")
    where = str(Path(proc_root) / "bus/input/devices")
    raise DeviceNotFoundError(
        f"no gamepad found (no input device with a joystick handler): input devices: {describe_found(found, where)}. "
        f"Plug it in (Bluetooth: pair it first); if it then appears but cannot be read, {PERMISSION_FIX}")


def _ioc_read(nr: int, size: int) -> int:
    return (2 << 30) | (size << 16) | (ord("E") << 8) | nr


class EvdevReader(DeviceFileReader):
    """Non-blocking reads of whole ``input_event`` records; ``absinfo()`` asks the kernel for axis ranges."""

    chunk = EVENT.size * 64

    def __init__(self, path: str):
        super().__init__(path, PERMISSION_FIX)

    def absinfo(self, names) -> dict[str, tuple[int, int]]:
        """(min, max) per axis from EVIOCGABS (struct input_absinfo: value, min, max, fuzz, flat, resolution)."""
        import fcntl

        out = {}
        for name in names:
            buf = bytearray(24)
            try:
                fcntl.ioctl(self.fd, _ioc_read(0x40 + ABS_CODES[name], 24), buf)
            except OSError:
                continue  # the device has no such axis
            _value, lo, hi = struct.unpack_from("3i", buf)
            if lo < hi:
                out[name] = (lo, hi)
        return out
