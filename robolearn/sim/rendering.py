"""Offscreen camera rendering: one renderer per image size, reused across frames.

A fresh ``mujoco.Renderer`` costs a GL context; reusing one and rendering without shadows or
multisampling (set in the scene) keeps a 128 px frame at a few ms on a CPU rasteriser.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np

_GL_PACKAGES = {
    "egl": "libegl1 (and libgl1); e.g. `apt-get install libegl1 libgl1`",
    "osmesa": "libosmesa6; e.g. `apt-get install libosmesa6`",
    "glfw": "a display (X server) and libglfw3; offscreen use MUJOCO_GL=egl instead",
}


class RenderBackendError(RuntimeError):
    pass


class CameraRenderer:
    def __init__(self, model: mujoco.MjModel, size: int):
        backend = os.environ.get("MUJOCO_GL", "(unset)")
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size)
        except Exception as exc:  # the GL layer raises several unrelated types
            hint = _GL_PACKAGES.get(backend, "set MUJOCO_GL=egl (needs apt package libegl1) or osmesa (libosmesa6)")
            raise RenderBackendError(
                f"MuJoCo could not create an offscreen OpenGL context with MUJOCO_GL={backend}: {exc}. "
                f"Install {hint}. Set MUJOCO_GL before importing mujoco (importing robolearn first does it)."
            ) from exc
        self.size = size

    def render(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        self._renderer.update_scene(data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()
