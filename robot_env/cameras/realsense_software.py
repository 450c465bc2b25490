"""``realsense_software``: a RealSense made of ``pyrealsense2.software_device``.

The physical edge only: a feeder thread synthesises frames (a moving colour gradient and a
depth ramp) and injects them with ``software_sensor.on_video_frame`` at ``fps``; from there
librealsense's own syncer/align code and :class:`RealSenseCamera`'s reader handle them
exactly as they would a USB camera. ``freeze()``, ``unplug()`` and ``replug()`` simulate a
stalled or disconnected camera for tests.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from robot_env.cameras.realsense import RealSenseCamera, RealSenseConfig
from robot_env.hardware import CAMERAS, DeviceError


@dataclasses.dataclass
class SoftwareRealSenseConfig(RealSenseConfig):
    """:class:`RealSenseConfig` plus the synthetic device's identity.

    Attributes:
        serial: serial number the software device reports (default ``"000000000001"``).
        depth_mm: depth at the image's left edge in millimetres; grows 1 mm per column.
        device_fps: the only rate the device offers; None = the requested ``fps``
            (set it differently to test the unsupported-profile error).
    """

    serial: str | None = "000000000001"
    depth_mm: int = 500
    device_fps: int | None = None

    @property
    def offered_fps(self) -> int:
        """Frame rate the software device streams at, Hz."""
        return self.fps if self.device_fps is None else self.device_fps


@CAMERAS.register("realsense_software", SoftwareRealSenseConfig)
class SoftwareRealSenseCamera(RealSenseCamera):
    """A :class:`RealSenseCamera` whose device is a ``pyrealsense2.software_device``."""

    def __init__(self, cfg: SoftwareRealSenseConfig) -> None:
        super().__init__(cfg)
        self._plugged = True
        self._feeding = threading.Event()
        self._feeding.set()
        self._feeder: threading.Thread | None = None
        self._feeder_stop = threading.Event()
        self.frames_fed = 0

    # -- test controls ----------------------------------------------------------------
    def freeze(self) -> None:
        """Stop producing frames (the device stays 'plugged')."""
        self._feeding.clear()

    def unplug(self) -> None:
        """Stop producing frames and make the serial disappear."""
        self._plugged = False
        self._feeding.clear()

    def replug(self) -> None:
        """Make the device findable again and resume frames."""
        self._plugged = True
        self._feeding.set()

    # -- device source ------------------------------------------------------------------
    def _find_device(self) -> Any:
        import pyrealsense2 as rs

        if not self._plugged:
            raise DeviceError(f"camera {self.name!r}: RealSense serial {self.cfg.serial} not found (unplugged?)")
        cfg = self.cfg
        device = rs.software_device()
        intr = rs.intrinsics()
        intr.width, intr.height = cfg.width, cfg.height
        intr.fx = intr.fy = 0.8 * cfg.width
        intr.ppx, intr.ppy = cfg.width / 2, cfg.height / 2
        intr.model, intr.coeffs = rs.distortion.none, [0.0] * 5
        color = device.add_sensor("RGB Camera")
        color_profile = color.add_video_stream(self._stream(rs.stream.color, rs.format.rgb8, 3, 0, intr))
        # option_range(min, max, step, default); values must sit on the step grid.
        color.add_option(rs.option.enable_auto_exposure, rs.option_range(0, 1, 1, 1), True)
        color.add_option(rs.option.exposure, rs.option_range(1, 10000, 1, 1), True)
        streams = [(color, color_profile, 3, rs.format.rgb8)]
        if cfg.depth:
            depth = device.add_sensor("Stereo Module")
            depth_profile = depth.add_video_stream(self._stream(rs.stream.depth, rs.format.z16, 2, 1, intr))
            depth.add_read_only_option(rs.option.depth_units, 0.001)
            ext = rs.extrinsics()
            ext.rotation, ext.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0.0, 0.0, 0.0]
            depth_profile.register_extrinsics_to(color_profile, ext)
            streams.append((depth, depth_profile, 2, rs.format.z16))
        device.register_info(rs.camera_info.serial_number, str(cfg.serial))
        device.register_info(rs.camera_info.name, "hilr software RealSense")
        device.create_matcher(rs.matchers.default)
        self._start_feeder(streams)
        return device

    def _stream(self, kind: Any, fmt: Any, bpp: int, uid: int, intr: Any) -> Any:
        import pyrealsense2 as rs

        s = rs.video_stream()
        s.type, s.index, s.uid = kind, 0, uid
        s.width, s.height, s.fps, s.bpp, s.fmt, s.intrinsics = (
            self.cfg.width, self.cfg.height, self.cfg.offered_fps, bpp, fmt, intr)
        return s

    def _start_feeder(self, streams: list) -> None:
        self._stop_feeder()
        self._feeder_stop = threading.Event()
        self._feeder = threading.Thread(target=self._feed, args=(streams, self._feeder_stop),
                                        name=f"rs-software-{self.name}", daemon=True)
        self._feeder.start()

    def _stop_feeder(self) -> None:
        self._feeder_stop.set()
        if self._feeder is not None and self._feeder is not threading.current_thread():
            self._feeder.join(timeout=2.0)
        self._feeder = None

    def _feed(self, streams: list, stop: threading.Event) -> None:
        import pyrealsense2 as rs

        h, w, dt = self.cfg.height, self.cfg.width, 1.0 / self.cfg.offered_fps
        cols = np.arange(w, dtype=np.int64)
        t0, i = time.monotonic(), 0
        while not stop.is_set():
            stop.wait(max(0.0, t0 + i * dt - time.monotonic()))
            if stop.is_set():
                break
            if not self._feeding.is_set():
                t0, i = time.monotonic(), 0
                time.sleep(dt)
                continue
            for sensor, profile, bpp, fmt in streams:
                if fmt == rs.format.rgb8:
                    row = ((cols + i) % 256).astype(np.uint8)
                    pixels = np.empty((h, w, 3), np.uint8)
                    pixels[..., 0], pixels[..., 1], pixels[..., 2] = row, i % 256, 255 - row
                else:
                    pixels = np.broadcast_to((self.cfg.depth_mm + cols).astype(np.uint16), (h, w)).copy()
                f = rs.software_video_frame()
                f.pixels, f.stride, f.bpp = pixels, w * bpp, bpp
                f.timestamp, f.frame_number = (self.frames_fed * dt) * 1e3, self.frames_fed
                f.domain, f.profile = rs.timestamp_domain.hardware_clock, profile.as_video_stream_profile()
                sensor.on_video_frame(f)
            self.frames_fed += 1
            i += 1

    def _close_streams(self) -> None:
        self._stop_feeder()
        super()._close_streams()
