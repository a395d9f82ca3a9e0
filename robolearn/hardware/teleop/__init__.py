"""Teleop devices: keyboard (a terminal), 3Dconnexion SpaceMouse (raw HID), gamepad (Linux evdev).

Each maps its input to the arm action ``[dx, dy, dz, drx, dry, drz, gripper]`` with the deadzone, scale,
axis signs and button roles of a YAML config (``hardware/teleop/<device>.yaml``, shipped copies in
``robolearn/hardware/teleop/configs/``). ``open_device("keyboard")`` finds and opens the real device;
a device built with a ``ReplaySource`` (or fed with ``device.feed``) runs the same parser on a recording.
"""
from __future__ import annotations

from robolearn.hardware.teleop.base import (ACTION_AXES, CONTROL_ROLES, GRIPPER_ROLES, ROLES, DeviceNotFoundError,
                                            TeleopCommand, TeleopConfig, TeleopDevice, load_teleop_config,
                                            resolve_teleop_config, shipped_teleop_configs)
from robolearn.hardware.teleop.gamepad import GamepadDevice
from robolearn.hardware.teleop.keyboard import KeyboardDevice
from robolearn.hardware.teleop.replay import ReplaySource, read_event_log, write_event_log
from robolearn.hardware.teleop.spacemouse import SpaceMouseDevice

DEVICE_CLASSES = {"keyboard": KeyboardDevice, "spacemouse": SpaceMouseDevice, "gamepad": GamepadDevice}


def make_device(config: TeleopConfig, source=None, **kwargs) -> TeleopDevice:
    """The device class for ``config.device`` reading ``source`` (None: fed by hand)."""
    return DEVICE_CLASSES[config.device](config, source, **kwargs)


def open_device(name, *, path: str = "", fd: int | None = None) -> TeleopDevice:
    """Find and open the real device of a config (a shipped name like ``keyboard`` or a YAML path).

    ``path`` overrides the config's device file; ``fd`` is the terminal a keyboard reads (default stdin).
    A missing or unreadable device raises DeviceNotFoundError naming what was found and the fix.
    """
    config = name if isinstance(name, TeleopConfig) else load_teleop_config(name)
    if path:
        config.path = path
    if config.device == "keyboard":
        from robolearn.hardware.teleop.keyboard import TerminalReader

        return KeyboardDevice(config, TerminalReader(fd))
    if config.device == "spacemouse":
        from robolearn.hardware.teleop.spacemouse import HidrawReader, find_spacemouse

        return SpaceMouseDevice(config, HidrawReader(find_spacemouse(config)))
    from robolearn.hardware.teleop.gamepad import EvdevReader, find_gamepad

    reader = EvdevReader(find_gamepad(config))
    return GamepadDevice(config, reader, absinfo=reader.absinfo([raw for _, _, raw in config.signed_axes()]))


__all__ = ["ACTION_AXES", "CONTROL_ROLES", "GRIPPER_ROLES", "ROLES", "DEVICE_CLASSES", "DeviceNotFoundError",
           "GamepadDevice", "KeyboardDevice", "ReplaySource", "SpaceMouseDevice", "TeleopCommand", "TeleopConfig",
           "TeleopDevice", "load_teleop_config", "make_device", "open_device", "read_event_log",
           "resolve_teleop_config", "shipped_teleop_configs", "write_event_log"]
