"""YAML/JSON <-> typed dataclass configs. Unknown keys are an error that names the key."""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def unknown_keys_error(unknown, known, where: str, *, what: str = "key") -> ConfigError:
    """The error for keys a config does not have: each one with its nearest known key, then all of them.

    A typo in a recipe (``horizn``) is the common case, and the list of 30 known keys hides the one
    that was meant; the suggestion names it. Callers that check their own top-level sections
    (recipe ``type/policy/train``, RL ``algo/agent/train``) use this too, so every message reads alike.
    """
    known = sorted(map(str, known))
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    plural = "s" if len(parts) > 1 else ""
    return ConfigError(f"{where}: unknown {what}{plural} {', '.join(parts)}; known {what}s: {', '.join(known)}")


def check_keys(data: dict[str, Any], known, where: str, *, what: str = "key") -> None:
    """Raise ``unknown_keys_error`` when ``data`` has keys outside ``known``."""
    unknown = sorted(set(map(str, data)) - set(map(str, known)))
    if unknown:
        raise unknown_keys_error(unknown, known, where, what=what)


def _label(where: str, source: str | Path | None) -> str:
    if source is None or str(source) in where:
        return where
    return f"{source}: {where}"


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "", source: str | Path | None = None) -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively.

    ``where`` names the section (``recipe.policy``), ``source`` the file it came from; both appear in
    every error, so a message about a key says which file to open.
    """
    where = _label(where or cls.__name__, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    check_keys(data, fields, where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where=f"{where}.{name}")
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        elif isinstance(value, str) and _accepts(hint, float) and not _accepts(hint, str):
            # YAML 1.1 reads "1e-5" (an exponent without a dot) as text: a float field takes it as a number
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}.{name}: expected a number, got {value!r}") from None
        kwargs[name] = value
    return cls(**kwargs)


def _accepts(hint, kind: type) -> bool:
    """Whether a field's type hint is ``kind`` or a union containing it (e.g. ``float | None``)."""
    if hint is kind:
        return True
    return kind in typing.get_args(hint)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_yaml(cls: type[T], path: str | Path) -> T:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    return from_dict(cls, data, where=cls.__name__, source=path)


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))
