"""Recorded event streams: a small timed-chunk file format and a source that replays one.

Why a framed format: a terminal gives bytes and a hidraw file gives one report per read(), but a
plain dump (``cat /dev/hidraw0 > f``) loses both the report boundaries and the timing that deadzone,
key hold and quiet periods depend on. Each record is ``<d time_s><H length><length bytes>`` after an
8-byte magic. Evdev dumps need no framing: ``struct input_event`` carries its own time, so a gamepad
recording is the raw bytes of /dev/input/eventN.
"""
from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Callable, Iterable

MAGIC = b"RLTLOG1\n"
_HEAD = struct.Struct("<dH")


def write_event_log(path: str | Path, records: Iterable[tuple[float, bytes]]) -> Path:
    path = Path(path)
    out = bytearray(MAGIC)
    last = float("-inf")
    for t, chunk in records:
        if t < last:
            raise ValueError(f"event log {path}: times must not decrease ({t} after {last})")
        if len(chunk) > 0xFFFF:
            raise ValueError(f"event log {path}: a chunk of {len(chunk)} bytes is longer than 65535")
        out += _HEAD.pack(float(t), len(chunk)) + bytes(chunk)
        last = t
    path.write_bytes(bytes(out))
    return path


def read_event_log(path: str | Path) -> list[tuple[float, bytes]]:
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a robolearn event log (no {MAGIC!r} header)")
    pos, out = len(MAGIC), []
    while pos < len(data):
        if pos + _HEAD.size > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        t, n = _HEAD.unpack_from(data, pos)
        pos += _HEAD.size
        if pos + n > len(data):
            raise ValueError(f"{path}: record at byte {pos - _HEAD.size} wants {n} bytes, {len(data) - pos} left")
        out.append((t, data[pos:pos + n]))
        pos += n
    return out


class ReplaySource:
    """Hands out each recorded chunk once its time (relative to the first read) has come.

    It is the ``read()`` side of a device like a terminal or hidraw reader, so a device driven by a
    replay runs the same code as one driven by hardware.
    """

    def __init__(self, records: Iterable[tuple[float, bytes]], clock: Callable[[], float] = time.monotonic,
                 start: float | None = None):
        self.records = list(records)
        self.clock = clock
        self._t0: float | None = start  # the clock time of recorded time 0 (None: the first read)
        self._next = 0

    def read(self) -> list[bytes]:
        now = self.clock()
        if self._t0 is None:
            self._t0 = now - (self.records[0][0] if self.records else 0.0)
        out = []
        while self._next < len(self.records) and self.records[self._next][0] <= now - self._t0:
            out.append(self.records[self._next][1])
            self._next += 1
        return out

    @property
    def done(self) -> bool:
        return self._next >= len(self.records)

    def close(self) -> None:
        pass
