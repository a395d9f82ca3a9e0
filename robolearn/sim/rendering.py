"""Offscreen camera rendering: one renderer per image size, reused across frames.

A fresh ``mujoco.Renderer`` costs a GL context; reusing one and rendering without shadows or
multisampling (set in the scene) keeps a 128 px frame at a few ms on a CPU rasteriser.
"""
from __future__ import annotations

import os

import mujoco
import numpy as np

from robolearn.sim import RenderBackendError, gl_hint


class CameraRenderer:
    def __init__(self, model: mujoco.MjModel, size: int):
        backend = os.environ.get("MUJOCO_GL", "(unset)")
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size)
        except Exception as exc:  # the GL layer raises several unrelated types
            hint = gl_hint(backend)
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
