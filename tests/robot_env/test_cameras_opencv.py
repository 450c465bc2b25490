"""OpenCV backend against a generated video file (the same VideoCapture path as a webcam)."""

from __future__ import annotations

import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from robot_env.cameras import OpenCVCamera  # noqa: E402
from robot_env.hardware import CAMERAS, DeviceError  # noqa: E402


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (80, 60))
    assert writer.isOpened()
    for i in range(10):
        bgr = np.zeros((60, 80, 3), np.uint8)
        bgr[..., 0] = 200  # blue in BGR: must come out as RGB blue
        bgr[:, : 8 * (i + 1), 1] = 255
        writer.write(bgr)
    writer.release()
    return path


def test_video_file_frames_are_rgb_resized_and_fresh(video):
    cam = CAMERAS.make({"type": "opencv", "source": str(video), "width": 40, "height": 30, "fps": 50})
    assert isinstance(cam, OpenCVCamera) and cam.shape == (30, 40)
    with cam:
        f1 = cam.read()
        time.sleep(0.1)
        f2 = cam.read()
        assert f2.stamp > f1.stamp
        assert f2.color.shape == (30, 40, 3) and f2.color.dtype == np.uint8
        assert f2.color[..., 2].mean() > 150 and f2.color[..., 0].mean() < 30  # BGR -> RGB
        time.sleep(0.3)  # > 10 frames at 50 Hz: looping keeps it alive
        assert time.monotonic() - cam.read().stamp < 0.2


def test_end_of_file_without_loop_is_an_error(video):
    cam = CAMERAS.make({"type": "opencv", "source": str(video), "width": 80, "height": 60,
                        "fps": 100, "loop": False, "max_age_s": 0.05})
    with cam:
        time.sleep(0.3)
        with pytest.raises(DeviceError, match="end of video file"):
            cam.read()


def test_missing_source_is_a_clear_error(tmp_path):
    cam = CAMERAS.make({"type": "opencv", "source": str(tmp_path / "nope.avi")})
    with pytest.raises(DeviceError, match="could not open"):
        cam.connect()
    assert not cam.is_connected
