"""USB webcam (or video file) camera through ``cv2.VideoCapture``.

A reader thread grabs frames as the device delivers them and keeps only the newest one,
converted to RGB and resized to the configured size if the device ignored the requested
resolution. A video file is paced at ``fps`` (a file would otherwise be read as fast as
the disk allows) and can loop, which is how the backend is tested without a webcam.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from robot_env.cameras.latest import ThreadedCamera
from robot_env.hardware import CAMERAS, DeviceError, Frame

log = logging.getLogger(__name__)


@dataclasses.dataclass
class OpenCVCameraConfig:
    """Config of an OpenCV ``VideoCapture`` camera.

    Attributes:
        name: camera name (observation key).
        source: device index (``0`` = /dev/video0), a device path, or a video file path.
        width: output width, pixels (requested from the device; resized if it differs).
        height: output height, pixels.
        fps: requested device rate; also the pacing rate of a video file, Hz.
        fourcc: optional four-character pixel format to request, e.g. ``"MJPG"``.
        loop: rewind a video file at its end (otherwise end of file is an error).
        max_age_s: ``read()`` raises ``StaleDataError`` for a frame older than this, s.
        frame_timeout_s: no frame for this long means the camera is frozen/unplugged, s.
        connect_timeout_s: ``connect()`` waits this long for the first frame, s.
    """

    name: str = "front"
    source: Any = 0
    width: int = 640
    height: int = 480
    fps: float = 30.0
    fourcc: str | None = None
    loop: bool = True
    max_age_s: float = 0.2
    frame_timeout_s: float = 1.0
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width/height/fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise ValueError(f"fourcc must have 4 characters, got {self.fourcc!r}")


@CAMERAS.register("opencv", OpenCVCameraConfig)
class OpenCVCamera(ThreadedCamera):
    """A ``cv2.VideoCapture`` camera read by a background thread; frames are RGB uint8.

    Args:
        cfg: :class:`OpenCVCameraConfig`.
    """

    thread_prefix = "opencv"

    def __init__(self, cfg: OpenCVCameraConfig) -> None:
        super().__init__(cfg)
        self._cap = None
        self._is_file = False

    def _open(self) -> Any:
        import cv2

        src = self.cfg.source
        if isinstance(src, str) and src.isdigit():
            src = int(src)
        self._is_file = isinstance(src, str) and not src.startswith("/dev/")
        cap = cv2.VideoCapture(src)
        if not cap.isOpened():
            raise DeviceError(f"camera {self.name!r}: cv2.VideoCapture({src!r}) could not open the source")
        if not self._is_file:
            if self.cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.cfg.fourcc))
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.cfg.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.cfg.height)
            cap.set(cv2.CAP_PROP_FPS, self.cfg.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of old ones
        return cap

    def _reader(self) -> None:
        import cv2

        dt = 1.0 / self.cfg.fps
        next_t = time.monotonic()
        last = time.monotonic()
        while not self._stop.is_set():
            if self._is_file:  # pace a file at fps; a device paces itself
                self._stop.wait(max(0.0, next_t - time.monotonic()))
                next_t = max(next_t + dt, time.monotonic() - dt)
            ok, bgr = self._cap.read()
            if not ok:
                if self._is_file and self.cfg.loop:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, bgr = self._cap.read()
                if not ok:
                    silent = time.monotonic() - last
                    reason = "end of video file" if self._is_file else f"no frame for {silent:.1f} s (unplugged?)"
                    if self._is_file or silent >= self.cfg.frame_timeout_s:
                        self._latest.fail(reason)
                    time.sleep(0.01)
                    continue
            stamp = time.monotonic()
            device_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            if bgr.shape[:2] != self.shape:
                bgr = cv2.resize(bgr, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_AREA)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            self._latest.put(Frame(stamp=stamp, color=rgb,
                                   device_stamp=device_ms / 1e3 if device_ms > 0 else None))
            last = stamp

    def _open_source(self) -> None:
        self._cap = self._open()

    def _close_source(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
