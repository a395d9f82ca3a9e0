"""3Dconnexion SpaceMouse over raw HID (Linux /dev/hidrawN): no driver, no spacenavd, no hidapi.

Protocol facts (3Dconnexion HID reports as read by pyspacemouse and spacenavd; byte 0 is the report id,
values are signed 16-bit little-endian, a full deflection is about +-350 counts):

- report 1, 7 bytes: translation x, y, z (older models: SpaceNavigator, SpaceMouse Compact, Pro wired);
- report 1, 13 bytes: translation x, y, z then rotation x, y, z (SpaceMouse Wireless, Pro Wireless,
  Enterprise, the Universal Receiver);
- report 2, 7 bytes: rotation x, y, z (the older models send it after report 1);
- report 3: the button bitmask, bit k of byte 1 + k // 8 is button k (two-button models: 0 left, 1 right).

The raw frame is the device's: x to the right, y towards the user, z down, rotations right-handed about
those axes. The shipped config maps it to the robot base frame for an operator standing behind the robot
(pushing the cap away moves +x); change ``axes`` signs if your desk faces another way. A report is sent
on every change, and a zero report when the cap is released, so the last values are the current ones.
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

RAW_AXES = ("tx", "ty", "tz", "rx", "ry", "rz")
VENDOR_3DCONNEXION = 0x256F
VENDOR_LOGITECH = 0x046D  # 3Dconnexion's older devices use Logitech's vendor id, products 0xc6xx


def parse_report(report: bytes) -> tuple[dict[str, int], set[int] | None]:
    """(raw axis values present in this report, pressed buttons or None if not a button report)."""
    if not report:
        return {}, None
    rid = report[0]
    if rid == 1 and len(report) >= 7:
        n = 6 if len(report) >= 13 else 3
        values = struct.unpack_from(f"<{n}h", report, 1)
        return dict(zip(RAW_AXES[:n], values)), None
    if rid == 2 and len(report) >= 7:
        return dict(zip(RAW_AXES[3:], struct.unpack_from("<3h", report, 1))), None
    if rid == 3:
        pressed = {8 * i + bit for i, byte in enumerate(report[1:]) for bit in range(8) if byte >> bit & 1}
        return {}, pressed
    return {}, None  # other reports (battery level, LED state) carry no motion


class SpaceMouseDevice(TeleopDevice):
    """HID reports -> latched raw axes and buttons -> the arm action."""

    kind = "spacemouse"

    def __init__(self, config: TeleopConfig, source: ByteSource | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(config, source, clock)
        self._axes = config.signed_axes()
        bad = sorted({raw for _, _, raw in self._axes} - set(RAW_AXES))
        if bad:
            raise ValueError(f"teleop config {config.source or 'spacemouse'}: unknown raw axes {bad}; "
                             f"a SpaceMouse has {', '.join(RAW_AXES)}")
        self.raw = dict.fromkeys(RAW_AXES, 0)
        self.held: set[int] = set()

    def feed(self, chunk: bytes, t: float) -> None:
        values, pressed = parse_report(bytes(chunk))
        if not values and pressed is None:
            return
        self.events += 1
        self.last_event_t = t
        self.raw.update(values)
        if pressed is not None:
            for button in sorted(pressed - self.held):
                self._press(f"button_{button}")
            self.held = pressed

    def motion(self, t: float) -> np.ndarray:
        out = np.zeros(6, dtype=np.float32)
        for index, sign, raw in self._axes:
            v = np.clip(self.raw[raw] / self.config.full_scale, -1.0, 1.0)
            out[index] = sign * apply_deadzone(float(v), self.config.deadzone) * self.config.scale_of(index)
        return np.clip(out, -1.0, 1.0)


def _uevent(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in lines if "=" in line)


def hidraw_devices(sys_root: str | Path = "/sys", dev_root: str | Path = "/dev") -> list[dict]:
    """Every hidraw node: path, vendor, product and name from sysfs (``HID_ID=bus:vendor:product``)."""
    out = []
    base = Path(sys_root) / "class" / "hidraw"
    for node in sorted(base.glob("hidraw*")) if base.is_dir() else []:
        ev = _uevent(node / "device" / "uevent")
        try:
            _bus, vendor, product = (int(p, 16) for p in ev.get("HID_ID", "").split(":"))
        except ValueError:
            vendor = product = -1
        out.append({"path": str(Path(dev_root) / node.name), "vendor": vendor, "product": product,
                    "name": ev.get("HID_NAME", "?")})
    return out


def is_spacemouse(dev: dict, vendor_ids=(VENDOR_3DCONNEXION, VENDOR_LOGITECH)) -> bool:
    if dev["vendor"] not in vendor_ids:
        return False
    return dev["vendor"] != VENDOR_LOGITECH or 0xC600 <= dev["product"] <= 0xC6FF


UDEV_RULE = ('KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660", TAG+="uaccess"  '
             '(and the same line with 046d for models sold before 2011)')


def find_spacemouse(config: TeleopConfig, sys_root: str | Path = "/sys", dev_root: str | Path = "/dev") -> str:
    """The hidraw path of the first readable SpaceMouse; otherwise an error listing what exists and the fix."""
    if config.path:
        return check_device_path(config.path, "SpaceMouse", f"add the udev rule {UDEV_RULE} to "
                                 "/etc/udev/rules.d/99-spacemouse.rules, then "
                                 "`sudo udevadm control --reload-rules && sudo udevadm trigger`")
    devices = hidraw_devices(sys_root, dev_root)
    vendor_ids = config.vendor_ids or (VENDOR_3DCONNEXION, VENDOR_LOGITECH)
    found = [f"{Path(d['path']).name} ({d['vendor']:04x}:{d['product']:04x} {d['name']})" if d["vendor"] >= 0
             else f"{Path(d['path']).name} (unknown id)" for d in devices]
    mice = [d for d in devices if is_spacemouse(d, vendor_ids)]
    for d in mice:
        if readable(d["path"]):
            return d["path"]
    fix = (f"add the udev rule {UDEV_RULE} to /etc/udev/rules.d/99-spacemouse.rules, then "
           "`sudo udevadm control --reload-rules && sudo udevadm trigger` and replug the device")
    if mice:
        raise DeviceNotFoundError(f"found a SpaceMouse at {', '.join(d['path'] for d in mice)} but cannot read it "
                                  f"(permission denied): {fix}")
    raise DeviceNotFoundError(
        f"no SpaceMouse found among the hidraw devices: {describe_found(found, str(Path(sys_root) / 'class/hidraw'))}. "
        f"Plug it in (a wireless one: its receiver); if it then appears but cannot be read, {fix}")


class HidrawReader(DeviceFileReader):
    """Non-blocking reads of whole HID reports (one per read) from /dev/hidrawN."""

    REPORT_SIZE = chunk = 64

    def __init__(self, path: str):
        super().__init__(path, f"add the udev rule {UDEV_RULE}")
