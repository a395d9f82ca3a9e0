"""robolearn: learn robot manipulation from demos and online RL, deploy on the controller loop."""
from __future__ import annotations

import os

# MuJoCo picks its GL backend at import time; EGL renders offscreen on the CPU with no extra package.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

__version__ = "0.1.0"

# The Python API (robolearn/api.py): ``robolearn.collect(...)``, ``robolearn.train_bc(...)``... It imports
# torch and the trainers, so it loads on first use (PEP 562): ``import robolearn`` stays light for the CLI.
_API = ("collect", "train_bc", "train_rl", "evaluate", "load_policy")


def __getattr__(name: str):
    if name in _API or name == "api":
        import importlib

        api = importlib.import_module("robolearn.api")  # by string: the API sits above every layer
        return api if name == "api" else getattr(api, name)
    raise AttributeError(f"module 'robolearn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API, "api"})


def make(name: str, **overrides):
    """Build a registered env: ``robolearn.make("sim/pick_cube", cameras=["front"])``."""
    from robolearn.envs.registry import make as _make

    return _make(name, **overrides)


def registered_envs() -> list[str]:
    from robolearn.envs.registry import registered

    return registered()
