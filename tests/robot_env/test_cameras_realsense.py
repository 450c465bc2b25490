"""RealSense backend through pyrealsense2.software_device: real librealsense frame path, no hardware."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_env.cameras import RealSenseCamera, SoftwareRealSenseCamera
from robot_env.hardware import CAMERAS, DeviceError, StaleDataError


def _cam(**kw) -> SoftwareRealSenseCamera:
    spec = {"type": "realsense_software", "name": "wrist", "width": 64, "height": 48, "fps": 30,
            "frame_timeout_s": 0.5, "max_age_s": 0.2, **kw}
    cam = CAMERAS.make(spec)
    assert isinstance(cam, SoftwareRealSenseCamera) and isinstance(cam, RealSenseCamera)
    return cam


def test_colour_and_aligned_depth_flow_with_device_timestamps():
    cam = _cam(depth=True, exposure_us=200.0)
    assert cam.shape == (48, 64) and not cam.is_connected
    with cam:
        import pyrealsense2 as rs

        colour_sensor = cam._sensors[0]  # fixed exposure reached the device's options
        assert colour_sensor.get_option(rs.option.enable_auto_exposure) == 0.0
        assert colour_sensor.get_option(rs.option.exposure) == 200.0
        f1 = cam.read()
        time.sleep(0.15)
        f2 = cam.read()
        # the latest frame only, newer each time, with the device's own clock
        assert f2.stamp > f1.stamp and f2.device_stamp > f1.device_stamp
        assert f2.color.shape == (48, 64, 3) and f2.color.dtype == np.uint8
        # the feeder writes R = (col + i) % 256, B = 255 - R: check it survived the pipeline
        np.testing.assert_array_equal(f2.color[..., 2].astype(int), 255 - f2.color[..., 0].astype(int))
        assert f2.depth.shape == (48, 64) and f2.depth.dtype == np.float32
        # depth_mm + col millimetres, aligned with identity extrinsics, in metres
        np.testing.assert_allclose(f2.depth[10, 5:60], (500 + np.arange(5, 60)) / 1000.0, atol=2e-3)
        assert time.monotonic() - f2.stamp < 0.2


def test_wrong_profile_is_a_clear_error():
    cam = _cam(device_fps=15)  # the device only offers 64x48@15
    with pytest.raises(DeviceError, match=r"no .* profile 64x48@30.*64x48@15"):
        cam.connect()
    assert not cam.is_connected


def test_frozen_camera_raises_then_recovers_by_reconnecting():
    cam = _cam()
    with cam:
        cam.read()
        cam.freeze()
        time.sleep(0.3)
        with pytest.raises(StaleDataError, match="stalled"):
            cam.read()
        time.sleep(0.5)
        with pytest.raises(DeviceError, match="frozen or unplugged"):
            cam.read()
        cam.replug()
        deadline = time.monotonic() + 3.0
        while True:
            try:
                frame = cam.read()
                break
            except DeviceError:
                assert time.monotonic() < deadline, "camera did not come back after replug"
                time.sleep(0.05)
        assert cam.reconnects >= 1 and frame.color.shape == (48, 64, 3)


def test_unplugged_camera_reports_serial_not_found():
    cam = _cam(serial="123456")
    with cam:
        cam.unplug()
        message, deadline = "", time.monotonic() + 3.0
        while "123456 not found" not in message and time.monotonic() < deadline:
            time.sleep(0.05)
            try:
                cam.read()
            except DeviceError as exc:  # stale first, then frozen, then not found
                message = str(exc)
        assert "123456 not found" in message


def test_no_reconnect_stays_failed_and_read_never_blocks():
    cam = _cam(reconnect=False)
    with cam:
        cam.freeze()
        time.sleep(0.7)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="frozen or unplugged"):
            cam.read()
        assert time.monotonic() - t0 < 0.05


def test_real_backend_without_device_is_a_clear_error():
    cam = CAMERAS.make({"type": "realsense", "serial": "999", "connect_timeout_s": 0.5})
    with pytest.raises(DeviceError, match="RealSense.*999"):  # none connected, or not this serial
        cam.connect()
