"""MuJoCo tasks built with dm_control.mjcf, scripted experts, randomization.

Importing this package imports MuJoCo, whose import already initialises the GL backend named
by ``MUJOCO_GL``; a missing system library there surfaces as an obscure OpenGL error, so it is
translated into one that names the package to install.
"""
from __future__ import annotations

import os

import robolearn  # noqa: F401  (sets MUJOCO_GL=egl by default)

GL_PACKAGES = {
    "egl": "libegl1 and libgl1 (apt-get install libegl1 libgl1)",
    "osmesa": "libosmesa6 (apt-get install libosmesa6)",
    "glfw": "libglfw3 and a display; for offscreen rendering use MUJOCO_GL=egl",
}


class RenderBackendError(RuntimeError):
    pass


def gl_hint(backend: str) -> str:
    return GL_PACKAGES.get(backend, "set MUJOCO_GL=egl (apt package libegl1) or osmesa (apt package libosmesa6)")


try:
    import mujoco  # noqa: F401
except (ImportError, AttributeError, OSError) as exc:  # pragma: no cover - depends on system libraries
    backend = os.environ.get("MUJOCO_GL", "(unset)")
    raise RenderBackendError(
        f"MuJoCo could not load the OpenGL backend MUJOCO_GL={backend} ({type(exc).__name__}: {exc}). "
        f"Install {gl_hint(backend)}, or choose another backend with MUJOCO_GL."
    ) from exc
