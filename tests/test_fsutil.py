"""The one atomic-write helper: content lands, no temp file survives, a failed write keeps the old file."""
from __future__ import annotations

import json
import os
import threading

import pytest

from robolearn.data.fsutil import (atomic_target, atomic_write_bytes, atomic_write_json, atomic_write_text,
                                   temp_sibling)


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_writes_bytes_text_and_json(tmp_path):
    assert atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01") == tmp_path / "a.bin"
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    atomic_write_text(tmp_path / "b.txt", "h\u00e9llo\n")
    assert (tmp_path / "b.txt").read_bytes() == "h\u00e9llo\n".encode("utf-8")
    atomic_write_json(tmp_path / "c.json", {"b": 1, "a": [1.5, None]}, indent=1, sort_keys=True)
    text = (tmp_path / "c.json").read_text()
    assert text == json.dumps({"b": 1, "a": [1.5, None]}, indent=1, sort_keys=True)
    atomic_write_json(tmp_path / "d.json", {"x": 1}, durable=False)  # status files: atomic, not fsync'd
    assert json.loads((tmp_path / "d.json").read_text()) == {"x": 1}
    assert _siblings(tmp_path / "a.bin") == ["a.bin", "b.txt", "c.json", "d.json"]  # no temp files left


def test_replaces_an_existing_file_and_keeps_no_temp(tmp_path):
    path = tmp_path / "index.json"
    path.write_text("old")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert _siblings(path) == ["index.json"]


def test_unserialisable_json_leaves_the_old_file(tmp_path):
    path = tmp_path / "index.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(TypeError, match="not JSON serializable"):
        atomic_write_json(path, {"v": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert _siblings(path) == ["index.json"]


def test_a_write_that_fails_after_the_temp_exists_removes_it(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "a str is not bytes")  # fails inside the open temp file
    assert path.read_bytes() == b"old"
    assert _siblings(path) == ["data.bin"]
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_target(path, temp_sibling(path, keep_suffix=True)) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer died")
    assert path.read_bytes() == b"old"
    assert _siblings(path) == ["data.bin"]


def test_a_missing_directory_is_an_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        atomic_write_text(tmp_path / "nope" / "x.txt", "x")


def test_temp_names_are_hidden_unique_siblings(tmp_path):
    path = tmp_path / "clip.mp4"
    a, b = temp_sibling(path), temp_sibling(path, keep_suffix=True)
    assert a.parent == b.parent == tmp_path and a != b
    assert a.name.startswith(".clip.mp4.") and a.name.endswith(".tmp")
    assert b.name.startswith(".clip.") and b.suffix == ".mp4" and str(os.getpid()) in b.name


def test_concurrent_writers_never_tear_the_file(tmp_path):
    """Readers racing many writers only ever see one writer's complete document."""
    path = tmp_path / "status.json"
    atomic_write_json(path, {"writer": -1, "pad": "x" * 50_000})
    stop = threading.Event()
    bad: list[str] = []

    def read():
        while not stop.is_set():
            try:
                doc = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                bad.append(str(exc))
                return
            if len(doc["pad"]) != 50_000:
                bad.append(f"short pad from writer {doc['writer']}")

    def write(i):
        for _ in range(30):
            atomic_write_json(path, {"writer": i, "pad": "x" * 50_000}, durable=False)

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    reader.join()
    assert not bad, bad
    assert _siblings(path) == ["status.json"]
