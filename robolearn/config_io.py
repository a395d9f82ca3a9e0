"""YAML/JSON <-> typed dataclass configs. Unknown keys are an error that names the key."""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    pass


def from_dict(cls: type[T], data: dict[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclass fields are built recursively."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints.get(name)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_dict(hint, value, where=f"{where or cls.__name__}.{name}")
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        elif isinstance(value, str) and _accepts(hint, float) and not _accepts(hint, str):
            # YAML 1.1 reads "1e-5" (an exponent without a dot) as text: a float field takes it as a number
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where or cls.__name__}.{name}: expected a number, got {value!r}") from None
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
    return from_dict(cls, data, where=str(path))


def save_json(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(cfg), indent=2, sort_keys=True))
