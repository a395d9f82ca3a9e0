"""What every teleop device shares: the command it yields, its YAML config, and the axis mapping.

A device is split into a *parser* (pure: raw bytes in, device state out, so it is tested by replaying
recorded event streams on a machine without /dev/input or a display) and a thin *reader* of the real
source (a terminal, /dev/hidrawN, /dev/input/eventN) that only hands bytes to the parser. The mapping
from device state to the arm action ``[dx, dy, dz, drx, dry, drz, gripper]`` - deadzone, scale, axis
signs and button roles - lives in a YAML file, because it differs between people and desks, not code.
"""
from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

import numpy as np

from robolearn.config_io import load_yaml

ACTION_AXES = ("dx", "dy", "dz", "drx", "dry", "drz")  # action[0:6]; action[6] is the gripper
GRIPPER_INDEX = 6
# Roles a button or key can play. The gripper roles drive action[6]; the others are read by
# `robolearn record` (start an episode, mark it, drop it, stop) and by an intervention loop.
GRIPPER_ROLES = ("gripper_toggle", "gripper_close", "gripper_open")
CONTROL_ROLES = ("start", "success", "failure", "discard", "quit")
ROLES = GRIPPER_ROLES + CONTROL_ROLES
DEVICES = ("keyboard", "spacemouse", "gamepad")
GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0  # the env's gripper command: -1 open, +1 closed
_SIGNED = re.compile(r"^([+-])(\w+)$")


class DeviceNotFoundError(FileNotFoundError):
    """A teleop device that is absent or unreadable; the message lists what was found and the fix."""


@dataclass(frozen=True)
class TeleopCommand:
    """One poll of a device.

    ``action`` is the arm action in [-1, 1] (motion after deadzone/scale/signs; ``action[6]`` the
    device's latched gripper command). ``buttons`` holds the roles whose button or key went down
    since the previous poll (edges, so one press marks one episode once). ``active`` says the operator
    is commanding something now: motion above the deadzone or a gripper role, which is what takes
    control from a policy. ``unmapped`` names presses that have no role, so a UI can say so.
    """

    action: np.ndarray
    buttons: frozenset = frozenset()
    active: bool = False
    unmapped: tuple = ()


@dataclass
class TeleopConfig:
    """A device's mapping to the arm action, loaded from ``hardware/teleop/<device>.yaml``."""

    device: str = "keyboard"
    # spacemouse / gamepad: action component -> signed raw axis, e.g. {dx: "-ty"} or {dx: "-ABS_Y"}
    axes: dict = field(default_factory=dict)
    # keyboard: key name -> signed action component, e.g. {w: "+dx", s: "-dx"}
    keys: dict = field(default_factory=dict)
    buttons: dict = field(default_factory=dict)  # raw button / key name -> role
    deadzone: float = 0.1  # fraction of full deflection ignored around rest, per axis
    translation_scale: float = 1.0  # action units at full deflection (dx, dy, dz)
    rotation_scale: float = 1.0  # action units at full deflection (drx, dry, drz)
    quiet_period_s: float = 0.5  # an intervention hands control back after this long without input
    gripper_start: float = GRIPPER_OPEN  # the latched gripper command before any gripper press
    hold_s: float = 0.2  # keyboard: how long one key press keeps its motion (bridges autorepeat gaps)
    full_scale: float = 350.0  # spacemouse: raw count of a full deflection
    vendor_ids: tuple = ()  # spacemouse: USB vendor ids accepted when searching /sys/class/hidraw
    ranges: dict = field(default_factory=dict)  # gamepad: raw axis -> [min, max] when the device cannot say
    path: str = ""  # the device file (/dev/hidraw3, /dev/input/event5); "" finds one
    source: str = ""  # where this config was loaded from (set by load_teleop_config)

    def __post_init__(self) -> None:
        where = f"teleop config {self.source or self.device!r}"
        if self.device not in DEVICES:
            raise ValueError(f"{where}: device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        for name in ("deadzone",):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v < 1.0:
                raise ValueError(f"{where}: {name} must be a number in [0, 1), got {v!r}")
        for name in ("translation_scale", "rotation_scale", "hold_s", "full_scale"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 0:
                raise ValueError(f"{where}: {name} must be a positive number, got {v!r}")
        if not isinstance(self.quiet_period_s, (int, float)) or self.quiet_period_s < 0:
            raise ValueError(f"{where}: quiet_period_s must be a number >= 0, got {self.quiet_period_s!r}")
        if self.gripper_start not in (GRIPPER_OPEN, GRIPPER_CLOSED):
            raise ValueError(f"{where}: gripper_start must be -1 (open) or 1 (closed), got {self.gripper_start!r}")
        for raw, role in self.buttons.items():
            if role not in ROLES:
                raise ValueError(f"{where}: buttons.{raw}: unknown role {role!r}; roles: {', '.join(ROLES)}")
        for comp, raw in self.axes.items():
            if comp not in ACTION_AXES:
                raise ValueError(f"{where}: axes.{comp}: not an action component ({', '.join(ACTION_AXES)})")
            if not isinstance(raw, str) or not _SIGNED.match(raw):
                raise ValueError(f"{where}: axes.{comp}: expected a signed raw axis like '+ty' or '-ABS_Y', got {raw!r}")
        for key, target in self.keys.items():
            m = _SIGNED.match(str(target))
            if not m or m.group(2) not in ACTION_AXES:
                raise ValueError(f"{where}: keys.{key}: expected a signed action component like '+dx', got {target!r}")
        shared = sorted(set(map(str, self.keys)) & set(map(str, self.buttons)))
        if shared:
            raise ValueError(f"{where}: {', '.join(shared)} both move the arm (keys) and have a role (buttons)")
        self.vendor_ids = tuple(int(v) for v in self.vendor_ids)
        for raw, rng in self.ranges.items():
            if not isinstance(rng, (list, tuple)) or len(rng) != 2 or not rng[0] < rng[1]:
                raise ValueError(f"{where}: ranges.{raw} must be [min, max] with min < max, got {rng!r}")

    def signed_axes(self) -> list[tuple[int, float, str]]:
        """(action index, sign, raw axis name) for every configured axis."""
        out = []
        for comp, raw in self.axes.items():
            m = _SIGNED.match(raw)
            out.append((ACTION_AXES.index(comp), 1.0 if m.group(1) == "+" else -1.0, m.group(2)))
        return out

    def scale_of(self, index: int) -> float:
        return float(self.translation_scale if index < 3 else self.rotation_scale)


# ----------------------------------------------------------------------------------------------
# Config files: shipped copies resolve by bare name, like robolearn.hardware.robot_config
# ----------------------------------------------------------------------------------------------
# The package keeps byte-identical copies of the repository's hardware/teleop/*.yaml (a test checks),
# so `--teleop keyboard` works from any folder and from an installed wheel.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def shipped_teleop_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_teleop_config(name: str | Path) -> Path:
    """A path to a YAML file (the user's edited copy wins), a bare device name (``keyboard``), or the
    repository path ``hardware/teleop/NAME.yaml`` from any folder; anything else names the shipped ones."""
    path = Path(name)
    if str(name).strip() and path.is_file():
        return path
    stem = path.stem if path.suffix in (".yaml", ".yml") else path.name
    shipped = CONFIG_DIR / f"{stem}.yaml"
    if (len(path.parts) == 1 or path.as_posix() == f"hardware/teleop/{path.name}") and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"teleop config {str(name)!r} not found (not a file; shipped teleop configs: "
                            f"{', '.join(shipped_teleop_configs())})")


def load_teleop_config(name: str | Path, **overrides) -> TeleopConfig:
    path = resolve_teleop_config(name)
    cfg = load_yaml(TeleopConfig, path)
    return dataclasses.replace(cfg, source=str(path), **overrides)


# ----------------------------------------------------------------------------------------------
# Shared mapping
# ----------------------------------------------------------------------------------------------
def apply_deadzone(value: float, deadzone: float) -> float:
    """Zero inside the deadzone, rescaled outside so the output still starts at 0 and reaches 1."""
    mag = abs(value)
    if mag <= deadzone:
        return 0.0
    return float(np.sign(value) * min(1.0, (mag - deadzone) / (1.0 - deadzone)))


def check_device_path(path: str, what: str, permission_fix: str) -> str:
    """A device file the config names: it must exist and be readable; else an error saying which and the fix."""
    if not Path(path).exists():
        raise DeviceNotFoundError(f"{what} device {path} does not exist")
    if not readable(path):
        raise DeviceNotFoundError(f"{what} {path} is not readable (permission denied): {permission_fix}")
    return path


class DeviceFileReader:
    """Non-blocking reads of a character device (/dev/hidrawN, /dev/input/eventN): everything queued, one
    ``chunk``-sized read at a time (a HID report, or whole ``input_event`` records), so a poll never blocks
    the control loop."""

    chunk = 64

    def __init__(self, path: str, permission_fix: str):
        try:
            self.fd: int | None = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except PermissionError:
            raise DeviceNotFoundError(f"cannot open {path} (permission denied): {permission_fix}") from None
        self.path = path

    def _ready(self) -> bool:
        """Whether a read would return data now (the fd is non-blocking: just try)."""
        return True

    def read(self) -> list[bytes]:
        out = []
        while self.fd is not None and self._ready():
            try:
                data = os.read(self.fd, self.chunk)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            out.append(data)
        return out

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ByteSource(Protocol):
    """A non-blocking source of raw chunks (a terminal, a hidraw or evdev file, or a replay)."""

    def read(self) -> list[bytes]: ...

    def close(self) -> None: ...


class TeleopDevice:
    """Base of the three devices: a parser fed with raw chunks, a gripper latch, and ``poll()``.

    Subclasses implement ``feed(chunk, t)`` (parse; pure) and ``motion(t)`` (the 6 motion
    components, after deadzone/scale/signs, in [-1, 1]).
    """

    kind = "device"

    def __init__(self, config: TeleopConfig, source: ByteSource | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if config.device != self.kind:
            raise ValueError(f"teleop config {config.source or ''} is for a {config.device}, not a {self.kind}")
        self.config = config
        self.source = source
        self.clock = clock
        self.gripper = float(config.gripper_start)
        self._pressed: list[str] = []  # roles pressed since the last poll
        self._unmapped: list[str] = []
        self.events = 0  # raw events parsed so far (keys, HID reports, evdev events)
        self.last_event_t: float | None = None

    @property
    def name(self) -> str:
        return self.kind

    # -- parsing hooks ------------------------------------------------------------------------------
    def feed(self, chunk: bytes, t: float) -> None:
        raise NotImplementedError

    def motion(self, t: float) -> np.ndarray:
        raise NotImplementedError

    def _press(self, raw: str) -> None:
        """A button or key went down: apply its role (or remember it has none)."""
        role = self.config.buttons.get(raw)
        if role is None:
            self._unmapped.append(raw)
            return
        self.apply_gripper_role(role)
        self._pressed.append(role)

    def apply_gripper_role(self, role: str) -> None:
        """Move the gripper latch for a gripper role (e.g. the terminal's space bar next to a SpaceMouse)."""
        if role == "gripper_close":
            self.gripper = GRIPPER_CLOSED
        elif role == "gripper_open":
            self.gripper = GRIPPER_OPEN
        elif role == "gripper_toggle":
            self.gripper = GRIPPER_OPEN if self.gripper > 0 else GRIPPER_CLOSED

    # -- the interface ------------------------------------------------------------------------------
    def set_gripper(self, command: float) -> None:
        """Start the latch from the robot's gripper so the first move does not open or close it."""
        self.gripper = GRIPPER_CLOSED if command > 0 else GRIPPER_OPEN

    def command(self, t: float | None = None) -> TeleopCommand:
        """The command now, consuming the presses seen since the previous call."""
        t = self.clock() if t is None else t
        action = np.zeros(7, dtype=np.float32)
        action[:6] = self.motion(t)
        action[GRIPPER_INDEX] = self.gripper
        pressed, unmapped = frozenset(self._pressed), tuple(self._unmapped)
        self._pressed, self._unmapped = [], []
        active = bool(np.any(action[:6] != 0.0)) or any(r in GRIPPER_ROLES for r in pressed)
        return TeleopCommand(action=action, buttons=pressed, active=active, unmapped=unmapped)

    def poll(self, t: float | None = None) -> TeleopCommand:
        """Read whatever the source has (never blocks), parse it, and return the command."""
        t = self.clock() if t is None else t
        if self.source is not None:
            for chunk in self.source.read():
                self.feed(chunk, t)
        return self.command(t)

    def replay(self, records: Iterable[tuple[float, bytes]]) -> None:
        """Feed recorded (time, chunk) records through the parser (tests and benchmarks)."""
        for t, chunk in records:
            self.feed(chunk, t)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def describe_found(found: list[str], where: str) -> str:
    return "; ".join(found) if found else f"nothing ({where} is empty or absent)"


def readable(path: str | os.PathLike) -> bool:
    return os.access(path, os.R_OK)
