"""Small filesystem helpers shared by the writers that must survive crashes.

Every file robolearn rewrites in place (episode-store index, checkpoint pointers, benchmark JSON,
status files) goes through :func:`atomic_write_bytes` and its text/JSON wrappers, so a reader or a
crash sees either the old file or the new one, never a torn one, and the durability is the same
everywhere: the data is fsync'd before the rename and the directory entry after it.
"""
from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (a temp file's writer may still be running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_path(path) -> None:
    """fsync a file or directory by path; best effort (some filesystems refuse directories)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_sibling(path: str | os.PathLike, *, keep_suffix: bool = False) -> Path:
    """A unique hidden temp name next to ``path`` (same directory, so the final rename is atomic).

    The pid and a random tag make concurrent writers of the same file never share a temp name;
    ``keep_suffix`` keeps the extension last for writers that pick a format from it (imageio).
    """
    path = Path(path)
    tag = f"{os.getpid()}.{uuid.uuid4().hex[:8]}"
    if keep_suffix:
        return path.with_name(f".{path.stem}.{tag}.tmp{path.suffix}")
    return path.with_name(f".{path.name}.{tag}.tmp")


@contextlib.contextmanager
def atomic_target(path: Path, tmp: Path, *, durable: bool = True):
    """Yield ``tmp`` to write; on success rename it onto ``path``; never leave it behind.

    With ``durable`` the temp file is fsync'd before the rename and the directory after it, so
    after a power loss ``path`` holds the old or the new content, and the new name survives.
    """
    path, tmp = Path(path), Path(tmp)
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_path(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> Path:
    """Replace ``path`` with ``data`` atomically (temp sibling, flush, fsync, rename, fsync the dir).

    ``durable=False`` keeps the atomic rename but skips both fsyncs: for status snapshots rewritten
    several times a second, where losing the last one on power loss is harmless and an fsync
    stall would delay the loop that writes them.
    """
    path = Path(path)
    with atomic_target(path, temp_sibling(path), durable=durable) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(data)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, durable: bool = True, **json_kwargs) -> Path:
    """Replace ``path`` with ``json.dumps(obj, **json_kwargs)`` atomically (see :func:`atomic_write_bytes`).

    The object is serialised before any file is created, so an object JSON cannot encode raises
    ``TypeError`` and leaves the old file untouched.
    """
    return atomic_write_text(path, json.dumps(obj, **json_kwargs), durable=durable)
