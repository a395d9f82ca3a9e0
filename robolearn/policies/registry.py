"""Policy type name -> (config class, model class); checkpoints record the name, loading checks it."""
from __future__ import annotations

import difflib
import importlib

_POLICIES: dict[str, tuple[str, str]] = {
    "diffusion": ("robolearn.policies.diffusion.configuration:DiffusionConfig",
                  "robolearn.policies.diffusion.modeling:DiffusionPolicy"),
    "consistency": ("robolearn.policies.consistency.configuration:ConsistencyConfig",
                    "robolearn.policies.consistency.modeling:ConsistencyPolicy"),
    "gaussian": ("robolearn.policies.gaussian.configuration:GaussianConfig",
                 "robolearn.policies.gaussian.modeling:GaussianPolicy"),
    # refinement methods' exported policies: the base chunk policy plus what the method learned on top
    "residual": ("robolearn.policies.residual.configuration:ResidualPolicyConfig",
                 "robolearn.policies.residual.modeling:ResidualPolicy"),
    "expo": ("robolearn.policies.expo.configuration:ExpoPolicyConfig",
             "robolearn.policies.expo.modeling:ExpoPolicy"),
}


class UnknownPolicyError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _resolve(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def names() -> list[str]:
    return sorted(_POLICIES)


def register(name: str, config_spec: str, model_spec: str) -> None:
    _POLICIES[name] = (config_spec, model_spec)


def _entry(name: str) -> tuple[str, str]:
    if name not in _POLICIES:
        close = difflib.get_close_matches(str(name), names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownPolicyError(f"unknown policy type {name!r}{hint}; known: {', '.join(names())}")
    return _POLICIES[name]


def config_class(name: str):
    return _resolve(_entry(name)[0])


def policy_class(name: str):
    return _resolve(_entry(name)[1])
