"""Keyboard teleop in a terminal: no X server, so it works over SSH and on a robot's console.

A terminal delivers bytes, not key-down/key-up events: a printable key is its character, arrows and
function keys are escape sequences (``ESC [ A``, ``ESC O P``, ``ESC [ 5 ~``), and holding a key
repeats it at the terminal's autorepeat rate after an initial delay. So a motion key moves the arm
for ``hold_s`` seconds after each press; holding it keeps the motion going once autorepeat starts.
Pressing the opposite key on the same axis replaces the direction at once.

The terminal is put in cbreak mode (no line buffering, no echo) and read without blocking. ``ISIG``
stays on, so Ctrl-C still raises KeyboardInterrupt; a ``\\x03`` byte (a terminal in full raw mode)
is turned into the same KeyboardInterrupt.
"""
from __future__ import annotations

import os
import select
import stat
import sys
import time
from typing import Callable

import numpy as np

from robolearn.hardware.teleop.base import (ACTION_AXES, ByteSource, DeviceFileReader, DeviceNotFoundError,
                                            TeleopConfig, TeleopDevice)

ESC = 0x1B
# CSI final byte -> key (xterm / VT100); SS3 (ESC O x) uses the same letters plus P..S for F1..F4.
_CSI_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end", "Z": "shift-tab"}
_SS3_FINAL = {"A": "up", "B": "down", "C": "right", "D": "left", "H": "home", "F": "end",
              "P": "f1", "Q": "f2", "R": "f3", "S": "f4"}
_CSI_TILDE = {1: "home", 2: "insert", 3: "delete", 4: "end", 5: "pageup", 6: "pagedown", 7: "home", 8: "end",
              11: "f1", 12: "f2", 13: "f3", 14: "f4", 15: "f5", 17: "f6", 18: "f7", 19: "f8", 20: "f9",
              21: "f10", 23: "f11", 24: "f12"}
_MODIFIER = {2: "shift-", 3: "alt-", 4: "alt-shift-", 5: "ctrl-", 6: "ctrl-shift-", 7: "ctrl-alt-"}
_CONTROL = {0x0D: "enter", 0x0A: "enter", 0x09: "tab", 0x7F: "backspace", 0x08: "backspace", 0x20: "space",
            0x03: "ctrl-c", 0x00: "ctrl-space"}
NAMED_KEYS = frozenset({"enter", "tab", "backspace", "space", "esc", "ctrl-c", "ctrl-space", "insert", "delete",
                        *_CSI_FINAL.values(), *_SS3_FINAL.values(), *_CSI_TILDE.values()}
                       | {f"ctrl-{chr(c)}" for c in range(ord("a"), ord("z") + 1)})


def valid_key_name(name: str) -> bool:
    """One printable character (``w``, ``+``), a named key (``up``, ``enter``), or a modifier plus either."""
    if len(name) == 1:
        return name.isprintable() and name != " "
    if name in NAMED_KEYS:
        return True
    for prefix in sorted(set(_MODIFIER.values()), key=len, reverse=True):
        rest = name[len(prefix):]
        if name.startswith(prefix) and rest and (rest in NAMED_KEYS or len(rest) == 1):
            return True
    return False


class KeyParser:
    """Terminal bytes -> key names; an escape sequence split across reads is completed by the next read.

    A lone ESC is ambiguous until the next byte (or ``esc_timeout`` s of silence) says it was the
    Esc key and not the start of a sequence; ``flush(t)`` resolves it.
    """

    def __init__(self, esc_timeout: float = 0.05):
        self.esc_timeout = esc_timeout
        self._buf = bytearray()
        self._buf_t = 0.0

    def feed(self, data: bytes, t: float) -> list[str]:
        if not self._buf:
            self._buf_t = t
        self._buf += data
        keys, used = self._parse(bytes(self._buf), final=False)
        del self._buf[:used]
        return keys

    def flush(self, t: float) -> list[str]:
        """Keys held back waiting for more bytes, once ``esc_timeout`` has passed since they came."""
        if self._buf and t - self._buf_t >= self.esc_timeout:
            keys, used = self._parse(bytes(self._buf), final=True)
            del self._buf[:used]
            return keys
        return []

    @property
    def pending(self) -> bool:
        return bool(self._buf)

    def _parse(self, data: bytes, final: bool) -> tuple[list[str], int]:
        keys: list[str] = []
        i, n = 0, len(data)
        while i < n:
            b = data[i]
            if b == ESC:
                key, used = self._escape(data, i, final)
                if used == 0:  # incomplete: wait for the rest
                    break
                keys.append(key)
                i += used
            elif b < 0x80:
                if b in _CONTROL:
                    keys.append(_CONTROL[b])
                elif b < 0x20:
                    keys.append(f"ctrl-{chr(b + 0x60)}")
                else:
                    keys.append(chr(b))
                i += 1
            else:  # UTF-8: the lead byte says how many continuation bytes follow
                size = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
                if i + size > n and not final:
                    break
                try:
                    keys.append(data[i:i + size].decode("utf-8"))
                except UnicodeDecodeError:
                    keys.append(f"0x{b:02x}")
                    size = 1
                i += size
        return keys, i

    @staticmethod
    def _escape(data: bytes, i: int, final: bool) -> tuple[str, int]:
        """(key, bytes used) of the sequence at data[i] == ESC; used 0 when more bytes are needed."""
        n = len(data)
        if i + 1 >= n:
            return ("esc", 1) if final else ("", 0)
        nxt = data[i + 1]
        if nxt == ord("["):  # CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, one final 0x40-0x7e
            j = i + 2
            while j < n and 0x20 <= data[j] <= 0x3F:
                j += 1
            if j >= n:
                return ("esc", 1) if final else ("", 0)
            fin = chr(data[j])
            params = [int(p) if p.isdigit() else 0 for p in data[i + 2:j].decode("ascii", "replace").split(";")]
            mod = _MODIFIER.get(params[1], "") if len(params) > 1 else ""
            if fin == "~":
                name = _CSI_TILDE.get(params[0], f"csi-{params[0]}~")
            else:
                name = _CSI_FINAL.get(fin, f"csi-{fin}")
            return mod + name, j - i + 1
        if nxt == ord("O"):  # SS3 (application cursor keys, F1-F4)
            if i + 2 >= n:
                return ("esc", 1) if final else ("", 0)
            fin = chr(data[i + 2])
            return _SS3_FINAL.get(fin, f"ss3-{fin}"), 3
        if nxt == ESC:
            return "esc", 1
        inner, used = KeyParser._parse_one(data[i + 1:])
        return f"alt-{inner}", 1 + used

    @staticmethod
    def _parse_one(data: bytes) -> tuple[str, int]:
        b = data[0]
        if b in _CONTROL:
            return _CONTROL[b], 1
        if b < 0x20:
            return f"ctrl-{chr(b + 0x60)}", 1
        if b < 0x80:
            return chr(b), 1
        return f"0x{b:02x}", 1


class KeyboardDevice(TeleopDevice):
    """Motion keys (config ``keys``) hold an axis for ``hold_s``; role keys (config ``buttons``) fire once."""

    kind = "keyboard"

    def __init__(self, config: TeleopConfig, source: ByteSource | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(config, source, clock)
        bad = [k for k in [*config.keys, *config.buttons] if not valid_key_name(str(k))]
        if bad:
            raise ValueError(f"teleop config {config.source or 'keyboard'}: unknown key name(s) {bad}: use one "
                             f"character (w, 1, +) or a named key ({', '.join(sorted(NAMED_KEYS)[:12])}, ...)")
        self.parser = KeyParser()
        self._motion_keys = {}
        for key, target in config.keys.items():
            self._motion_keys[str(key)] = (ACTION_AXES.index(target[1:]), 1.0 if target[0] == "+" else -1.0)
        self._hold: dict[int, tuple[float, float]] = {}  # action index -> (sign, until)
        self.keys_seen: list[tuple[float, str]] = []  # (time, key) of every key, for latency measurements

    def feed(self, chunk: bytes, t: float) -> None:
        self._handle(self.parser.feed(chunk, t), t)

    def _handle(self, keys: list[str], t: float) -> None:
        for key in keys:
            self.events += 1
            self.last_event_t = t
            self.keys_seen.append((t, key))
            if key == "ctrl-c":  # a terminal in full raw mode: behave as if ISIG had sent SIGINT
                raise KeyboardInterrupt
            if key not in self._motion_keys and key not in self.config.buttons and len(key) == 1 and key.lower() != key:
                key = key.lower()  # Caps Lock or Shift: W moves like w unless W has its own entry
            if key in self._motion_keys:
                index, sign = self._motion_keys[key]
                self._hold[index] = (sign, t + self.config.hold_s)
            else:
                self._press(key)

    def motion(self, t: float) -> np.ndarray:
        self._handle(self.parser.flush(t), t)
        out = np.zeros(6, dtype=np.float32)
        for index, (sign, until) in self._hold.items():
            if t < until:
                out[index] = sign * self.config.scale_of(index)
        return np.clip(out, -1.0, 1.0)

    def describe(self) -> str:
        """One line naming the keys, for a status screen."""
        moves = " ".join(f"{k}{v}" for k, v in self.config.keys.items())
        roles = " ".join(f"{k}={v}" for k, v in self.config.buttons.items())
        return f"keys: {moves} | {roles}"


def _describe_fd(fd: int) -> str:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as exc:
        return f"not open ({exc.strerror})"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISCHR(mode):
        return "a character device that is not a terminal (e.g. /dev/null)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a terminal"


class TerminalReader(DeviceFileReader):
    """Non-blocking reads of key bytes from a terminal in cbreak mode; the old mode is restored on close."""

    chunk = 1024

    def __init__(self, fd: int | None = None):
        import termios

        self.fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self.fd):
            raise DeviceNotFoundError(
                f"keyboard teleop reads keys from a terminal, but fd {self.fd} is {_describe_fd(self.fd)}: "
                "found no terminal. Run the command in an interactive terminal (over SSH use `ssh -t`; under "
                "tmux/screen it works as is); no X server or /dev/input permission is needed")
        self._termios = termios
        self._saved = termios.tcgetattr(self.fd)
        mode = termios.tcgetattr(self.fd)
        mode[3] &= ~(termios.ICANON | termios.ECHO)  # lflags: no line buffering, no echo; ISIG kept
        mode[6][termios.VMIN] = 0
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd, termios.TCSANOW, mode)

    def _ready(self) -> bool:
        # the terminal stays blocking for the shell we return it to: ask select whether a key is queued
        return bool(select.select([self.fd], [], [], 0)[0])

    def close(self) -> None:
        if self.fd is not None and self._saved is not None:
            try:
                self._termios.tcsetattr(self.fd, self._termios.TCSADRAIN, self._saved)
            except self._termios.error:
                pass
        self._saved = None
        self.fd = None
