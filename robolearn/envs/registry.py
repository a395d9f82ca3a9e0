"""Name -> env factory. Names are ``family/task``; a family may claim a whole prefix (``dmc/``)."""
from __future__ import annotations

import difflib
import importlib
from typing import Callable

_FACTORIES: dict[str, str | Callable] = {}
_PREFIXES: dict[str, str | Callable] = {}
_BUILTINS_LOADED = False

# Built-in registrations live in the modules that implement them; importing these registers them.
_BUILTIN_MODULES = ("robolearn.sim.tasks", "robolearn.envs.dmc")


class UnknownEnvError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(name: str, factory: str | Callable, *, prefix: bool = False) -> None:
    """Register ``factory(**overrides) -> env`` (or a ``"module:attr"`` string, imported lazily)."""
    (_PREFIXES if prefix else _FACTORIES)[name] = factory


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            # Only a family module that does not exist (yet) is skipped; an import error
            # inside an existing module still surfaces.
            if exc.name != mod:
                raise


def _resolve(factory: str | Callable) -> Callable:
    if callable(factory):
        return factory
    module, _, attr = factory.partition(":")
    return getattr(importlib.import_module(module), attr)


def registered() -> list[str]:
    _load_builtins()
    return sorted(_FACTORIES)


def make(name: str, **overrides):
    _load_builtins()
    if name in _FACTORIES:
        return _resolve(_FACTORIES[name])(**overrides)
    for pfx, factory in _PREFIXES.items():
        if name.startswith(pfx):
            return _resolve(factory)(name[len(pfx):], **overrides)
    names = registered()
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownEnvError(f"unknown env {name!r}.{hint} Registered envs: {', '.join(names)}")


# Real robots (and sim-robot driven as one): ``real/<robot config name or path>``. A string entry point,
# so envs never imports the deploy layer that implements it (DDS transport, safety filter).
register("real/", "robolearn.deploy.real_env:make_real_env", prefix=True)
