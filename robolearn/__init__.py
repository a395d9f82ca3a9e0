"""robolearn: learn robot manipulation from demos and online RL, deploy on the controller loop."""
from __future__ import annotations

import os

# MuJoCo picks its GL backend at import time; EGL renders offscreen on the CPU with no extra package.
os.environ.setdefault("MUJOCO_GL", "egl")
if os.environ["MUJOCO_GL"] in ("egl", "osmesa"):
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

__version__ = "0.1.0"


def make(name: str, **overrides):
    """Build a registered env: ``robolearn.make("sim/pick_cube", cameras=["front"])``."""
    from robolearn.envs.registry import make as _make

    return _make(name, **overrides)


def registered_envs() -> list[str]:
    from robolearn.envs.registry import registered

    return registered()
