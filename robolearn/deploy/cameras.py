"""Cameras of a real robot env: OpenCV devices and files, or ROS 2 image topics over DDS.

Every camera keeps only its newest frame (RGB uint8) and when it arrived; the env reads that at each
step, so a camera never slows the control loop down and a slow camera shows as an old frame, not a
late step. Frames are centre-cropped to a square and resized to the env's ``image_size``, which is
what the sim envs render, so a policy sees the same kind of image on both.

OpenCV cameras are opened with the configured width, height and FPS, and what the device actually
delivers is checked against them: a camera silently falling back to another mode (640x480 instead of
1280x720, 15 instead of 30 FPS) would change the images a policy was trained on, so it is an error that
names both. A video file is a camera too (replayed in a loop at its own FPS): the way to test a
pipeline without hardware.
"""
from __future__ import annotations

import glob
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS_TOLERANCE = 0.01  # relative: 29.97 delivered for 30 configured is the same mode


class CameraError(RuntimeError):
    """A camera that cannot deliver what the config asks for (not found, another mode, stopped)."""


@dataclass
class CameraSpec:
    """One camera: ``source`` (an OpenCV device index, a device path such as /dev/video2, or a video
    file) with ``width``/``height``/``fps`` it must deliver, or ``topic``, a ROS 2 sensor_msgs/Image topic
    (a topic ending in /compressed carries CompressedImage) whose frames are checked against
    ``width``/``height`` when those are given."""

    name: str
    source: int | str | None = None
    topic: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0

    def __post_init__(self) -> None:
        where = f"camera {self.name!r}"
        if (self.source is None) == (not self.topic):
            raise ValueError(f"{where}: give exactly one of source (an OpenCV device index or path) or topic "
                             f"(a ROS 2 image topic), got source={self.source!r} topic={self.topic!r}")
        if isinstance(self.source, bool) or not isinstance(self.source, (int, str, type(None))):
            raise ValueError(f"{where}: source must be a device index or a path, got {self.source!r}")
        if isinstance(self.source, str) and self.source.strip().isdigit():
            self.source = int(self.source)
        if self.topic and not self.topic.startswith("/"):
            raise ValueError(f"{where}: topic must be an absolute ROS topic name, got {self.topic!r}")
        for key in ("width", "height"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{where}: {key} must be a whole number of pixels >= 0, got {value!r}")
        if not isinstance(self.fps, (int, float)) or not np.isfinite(self.fps) or self.fps < 0:
            raise ValueError(f"{where}: fps must be a number >= 0, got {self.fps!r}")
        if (self.width > 0) != (self.height > 0):
            raise ValueError(f"{where}: give both width and height (or neither for a topic camera)")
        if self.source is not None and not (self.width and self.height and self.fps):
            raise ValueError(f"{where}: an OpenCV camera needs width, height and fps: they are set on the "
                             f"device and what it delivers is checked against them (got {self.width}x"
                             f"{self.height} @ {self.fps:g} fps)")

    @property
    def mode(self) -> str:
        return f"{self.width}x{self.height}" + (f" @ {self.fps:g} fps" if self.fps else "")

    def describe(self) -> str:
        if self.topic:
            return f"topic {self.topic}"
        return f"device {self.source}" if isinstance(self.source, int) else f"{self.source}"


def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square, then resize to ``size`` x ``size`` (area averaging when shrinking)."""
    h, w = img.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = img[top:top + side, left:left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    import cv2

    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


class _Latest:
    """The newest frame and when it arrived (time.monotonic), shared between a producer and the env."""

    def __init__(self, spec: CameraSpec):
        self.spec = spec
        self._lock = threading.Lock()
        self._frame: np.ndarray | None = None
        self._t = 0.0
        self.frames = 0
        self.error = ""

    def _put(self, frame: np.ndarray) -> None:
        with self._lock:
            self._frame, self._t = frame, time.monotonic()
            self.frames += 1

    def latest(self) -> tuple[np.ndarray, float] | None:
        with self._lock:
            return None if self._frame is None else (self._frame, self._t)

    def close(self) -> None:
        pass


def video_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


class OpenCVCamera(_Latest):
    """``cv2.VideoCapture`` with the configured mode checked, read by a thread that keeps the newest frame."""

    def __init__(self, spec: CameraSpec):
        super().__init__(spec)
        import cv2

        src = spec.source
        if isinstance(src, str) and not src.startswith("/dev/") and "://" not in src and not Path(src).exists():
            raise CameraError(f"camera {spec.name!r}: no such video file {src!r}")
        self.is_file = isinstance(src, str) and Path(src).is_file()
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            cap.release()
            found = video_devices()
            raise CameraError(
                f"camera {spec.name!r}: OpenCV could not open {spec.describe()}; video devices here: "
                f"{', '.join(found) if found else 'none'} (is the camera plugged in, not used by another "
                f"process, and readable by this user - in the 'video' group?)")
        if not self.is_file:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
            cap.set(cv2.CAP_PROP_FPS, spec.fps)
        ok, frame = cap.read()
        if not ok or frame is None:
            cap.release()
            raise CameraError(f"camera {spec.name!r}: {spec.describe()} opened but delivered no frame")
        h, w = frame.shape[:2]
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.delivered_fps = fps
        fps_off = fps > 0 and abs(fps - spec.fps) > FPS_TOLERANCE * spec.fps
        if (w, h) != (spec.width, spec.height) or fps_off:
            cap.release()
            got = f"{w}x{h}" + (f" @ {fps:g} fps" if fps > 0 else " (fps not reported)")
            hint = ("set width/height/fps to the file's" if self.is_file else
                    "pick a mode the camera supports (v4l2-ctl --list-formats-ext -d DEVICE lists them)")
            raise CameraError(f"camera {spec.name!r} ({spec.describe()}): configured {spec.mode}, delivered {got}; "
                              f"{hint}")
        self.cap = cap
        self._put(frame[..., ::-1].copy())  # OpenCV delivers BGR
        self._running = True
        self._thread = threading.Thread(target=self._read, name=f"camera-{spec.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        import cv2

        period = 1.0 / self.spec.fps
        next_t = time.monotonic()
        while self._running:
            ok, frame = self.cap.read()
            if not ok or frame is None:
                if self.is_file:  # a file is replayed in a loop
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    continue
                self.error = f"{self.spec.describe()} stopped delivering frames"
                time.sleep(period)
                continue
            self._put(frame[..., ::-1].copy())
            if self.is_file:  # a device paces itself; a file is read at its frame rate
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))

    def close(self) -> None:
        self._running = False
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)
        self.cap.release()


class TopicCamera(_Latest):
    """Frames from a ROS 2 image topic on the env's DDS bus (decoded as ``serve`` decodes them)."""

    def __init__(self, spec: CameraSpec, bus):
        super().__init__(spec)
        from robolearn.deploy import ros_msgs as M

        compressed = spec.topic.endswith("/compressed")
        bus.reader(spec.topic, M.CompressedImage if compressed else M.Image, self.on_msg)

    def on_msg(self, msg) -> None:
        from robolearn.deploy.ros_io import compressed_image_from_msg, image_from_msg

        img = compressed_image_from_msg(msg) if hasattr(msg, "format") else image_from_msg(msg)
        spec = self.spec
        if spec.width and (img.shape[1], img.shape[0]) != (spec.width, spec.height):
            self.error = (f"camera {spec.name!r} ({spec.describe()}): configured {spec.width}x{spec.height}, "
                          f"delivered {img.shape[1]}x{img.shape[0]}")
            raise ValueError(self.error)  # dropped and counted by the bus
        self._put(img)


def open_camera(spec: CameraSpec, bus=None) -> _Latest:
    if spec.topic:
        if bus is None:
            raise ValueError(f"camera {spec.name!r}: a topic camera needs the env's DDS bus")
        return TopicCamera(spec, bus)
    return OpenCVCamera(spec)
