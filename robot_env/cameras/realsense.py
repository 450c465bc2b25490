"""Intel RealSense colour (+ aligned depth) camera through pyrealsense2, no ROS.

The camera is opened at the sensor level (``sensor.open(profile)``, ``sensor.start(syncer)``)
rather than with ``rs.pipeline``: the same code then runs unchanged on a real device and on
``pyrealsense2.software_device`` (which ``rs.pipeline`` cannot open), so the driver path is
tested without hardware through the registered ``realsense_software`` camera.

A reader thread keeps only the newest frame, stamped on arrival with ``time.monotonic()``
and carrying the device timestamp. When no frame arrives for ``frame_timeout_s`` (camera
frozen or unplugged) ``read()`` raises :class:`~robot_env.hardware.DeviceError` with the
reason, and the reader reopens the device by serial if ``reconnect`` is set. Nothing here
ever waits on keyboard input.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from robot_env.cameras.latest import ThreadedCamera
from robot_env.hardware import CAMERAS, DeviceError, Frame

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RealSenseConfig:
    """Config of a RealSense camera.

    Attributes:
        name: camera name (observation key), e.g. ``"front"`` or ``"wrist"``.
        serial: serial number to open; None opens the only connected device.
        width: colour width, pixels.
        height: colour height, pixels.
        fps: frame rate, Hz.
        exposure_us: fixed colour exposure in microseconds; None = auto exposure.
        depth: also stream depth (z16), aligned to the colour image, metres.
        max_age_s: ``read()`` raises ``StaleDataError`` for a frame older than this, s.
        frame_timeout_s: no frame for this long means frozen/unplugged, s.
        reconnect: reopen the device by serial after a timeout (else stay failed).
        connect_timeout_s: ``connect()`` waits this long for the first frame, s.
    """

    name: str = "front"
    serial: str | None = None
    width: int = 640
    height: int = 480
    fps: int = 30
    exposure_us: float | None = None
    depth: bool = False
    max_age_s: float = 0.2
    frame_timeout_s: float = 1.0
    reconnect: bool = True
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"width/height/fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.exposure_us is not None and self.exposure_us <= 0:
            raise ValueError(f"exposure_us must be positive or null (auto), got {self.exposure_us}")
        if self.max_age_s <= 0 or self.frame_timeout_s <= 0:
            raise ValueError("max_age_s and frame_timeout_s must be positive")


def _find_profile(device: Any, stream: Any, fmt: Any, width: int, height: int, fps: int):
    """(sensor, profile) on ``device`` streaming ``stream``/``fmt`` at ``width``x``height``@``fps``."""
    seen = []
    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() != stream or not profile.is_video_stream_profile():
                continue
            video = profile.as_video_stream_profile()
            seen.append(f"{video.width()}x{video.height()}@{profile.fps()} {profile.format()}")
            if (profile.format() == fmt and profile.fps() == fps
                    and video.width() == width and video.height() == height):
                return sensor, profile
    raise DeviceError(
        f"RealSense has no {stream} {fmt} profile {width}x{height}@{fps}; available: {sorted(set(seen))}"
    )


@CAMERAS.register("realsense", RealSenseConfig)
class RealSenseCamera(ThreadedCamera):
    """A RealSense camera read by a background thread (colour RGB, optional aligned depth).

    Args:
        cfg: :class:`RealSenseConfig`.

    Subclasses change where the device comes from by overriding :meth:`_find_device`
    (the software-device fake does); everything after that is shared.
    """

    thread_prefix = "realsense"

    def __init__(self, cfg: RealSenseConfig) -> None:
        super().__init__(cfg)
        self._sensors: list[Any] = []
        self._syncer = None
        self._align = None
        self.reconnects = 0

    # -- device source (override point) ---------------------------------------------
    def _find_device(self) -> Any:
        """The ``rs.device`` with ``cfg.serial`` (or the only one). Raises DeviceError."""
        import pyrealsense2 as rs

        devices = list(rs.context().query_devices())
        serials = [d.get_info(rs.camera_info.serial_number) for d in devices]
        if not devices:
            raise DeviceError(f"camera {self.name!r}: no RealSense connected (unplugged? USB power?)"
                              + (f"; wanted serial {self.cfg.serial}" if self.cfg.serial else ""))
        if self.cfg.serial is None:
            if len(devices) != 1:
                raise DeviceError(
                    f"camera {self.name!r}: set serial; found {len(devices)} RealSense devices {serials}"
                )
            return devices[0]
        for device, serial in zip(devices, serials):
            if serial == str(self.cfg.serial):
                return device
        raise DeviceError(
            f"camera {self.name!r}: RealSense serial {self.cfg.serial} not found "
            f"(unplugged?); connected: {serials}"
        )

    # -- opening and closing the streams --------------------------------------------
    def _open_streams(self) -> None:
        import pyrealsense2 as rs

        cfg = self.cfg
        device = self._find_device()
        color_sensor, color_profile = _find_profile(
            device, rs.stream.color, rs.format.rgb8, cfg.width, cfg.height, cfg.fps)
        opened = [(color_sensor, color_profile)]
        if cfg.depth:
            opened.append(_find_profile(device, rs.stream.depth, rs.format.z16,
                                        cfg.width, cfg.height, cfg.fps))
        self._set_exposure(color_sensor)
        self._syncer = rs.syncer()
        self._align = rs.align(rs.stream.color) if cfg.depth else None
        self._device = device  # keep the device (and a software device's sensors) alive
        for sensor, profile in opened:
            sensor.open(profile)
            sensor.start(self._syncer)
            self._sensors.append(sensor)

    def _set_exposure(self, sensor: Any) -> None:
        import pyrealsense2 as rs

        auto = self.cfg.exposure_us is None
        if sensor.supports(rs.option.enable_auto_exposure):
            sensor.set_option(rs.option.enable_auto_exposure, 1.0 if auto else 0.0)
        elif not auto:
            raise DeviceError(f"camera {self.name!r}: colour sensor cannot turn auto exposure off")
        if not auto:
            if not sensor.supports(rs.option.exposure):
                raise DeviceError(f"camera {self.name!r}: colour sensor has no exposure option")
            sensor.set_option(rs.option.exposure, float(self.cfg.exposure_us))

    def _close_streams(self) -> None:
        for sensor in self._sensors:
            for step in (sensor.stop, sensor.close):
                try:
                    step()
                except RuntimeError:  # already stopped, or the device vanished
                    pass
        self._sensors = []
        self._syncer = None
        self._device = None

    # -- reader thread --------------------------------------------------------------
    def _to_frame(self, frames: Any) -> Frame | None:
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        image = np.asanyarray(color.get_data()).copy()
        depth = None
        if self._align is not None:
            d = frames.get_depth_frame()
            if not d:
                return None  # depth asked for: never hand out a frame without it
            depth = np.asanyarray(d.get_data()).astype(np.float32) * np.float32(d.get_units())
        return Frame(stamp=time.monotonic(), color=image, depth=depth,
                     device_stamp=color.get_timestamp() / 1e3)

    def _reader(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            ok, frames = (False, None)
            if self._syncer is not None:
                ok, frames = self._syncer.try_wait_for_frames(100)
            else:
                time.sleep(0.1)
            if ok:
                frame = self._to_frame(frames)
                if frame is not None:
                    self._latest.put(frame)
                    last = frame.stamp
                continue
            silent = time.monotonic() - last
            if silent < self.cfg.frame_timeout_s:
                continue
            self._latest.fail(f"no frame for {silent:.1f} s: camera frozen or unplugged")
            if self.cfg.reconnect:
                self._try_reopen()
                last = time.monotonic()

    def _try_reopen(self) -> None:
        self._close_streams()
        try:
            self._open_streams()
            self.reconnects += 1
            log.warning("camera %r: reopened after a stall", self.name)
        except (DeviceError, RuntimeError) as exc:
            self._close_streams()
            self._latest.fail(f"frozen or unplugged, reconnect failed: {exc}")

    # -- ThreadedCamera hooks ----------------------------------------------------------
    def _open_source(self) -> None:
        self._open_streams()

    def _close_source(self) -> None:
        self._close_streams()
