"""Offscreen camera rendering: one renderer per image size, reused across frames.

A fresh ``mujoco.Renderer`` costs a GL context; reusing one and rendering without shadows or
multisampling (set in the scene) keeps a 128 px frame at a few ms on a CPU rasteriser.
"""
from __future__ import annotations

import atexit
import os
import weakref

import mujoco
import numpy as np

from robolearn.sim import RenderBackendError, gl_hint


_LIVE: "weakref.WeakSet[CameraRenderer]" = weakref.WeakSet()
_EXIT_HOOKED = False


def _close_all() -> None:
    """Free GL contexts before interpreter teardown, when EGL can no longer be called cleanly.

    Registered after MuJoCo's EGL module registers its own exit hook (on the first context), so
    it runs before the display is terminated.
    """
    for renderer in list(_LIVE):
        renderer.close()


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
        _LIVE.add(self)
        global _EXIT_HOOKED
        if not _EXIT_HOOKED:
            atexit.register(_close_all)
            _EXIT_HOOKED = True

    def render(self, data: mujoco.MjData, camera: str | int) -> np.ndarray:
        self._renderer.update_scene(data, camera=camera)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
