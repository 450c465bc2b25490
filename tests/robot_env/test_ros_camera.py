"""ROS2 camera backend: Image (rgb8/bgr8/mono8 + 16UC1 depth), CompressedImage, bad encodings, staleness."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_env.hardware import CAMERAS, DeviceError, StaleDataError
from robot_env.ros import RosCamera, runtime
from robot_env.ros.camera import image_to_array
from tests.robot_env._ros_fakes import unique_prefix

pytestmark = pytest.mark.ros
H, W = 24, 32


def _image(encoding: str, array: np.ndarray):
    from sensor_msgs.msg import Image

    msg = Image()
    msg.height, msg.width, msg.encoding = array.shape[0], array.shape[1], encoding
    msg.step = array.shape[1] * (array[0, 0].nbytes if array.ndim == 2 else array[0, 0].nbytes)
    msg.data = array.tobytes()
    return msg


class ImagePublisher:
    """Publishes one message repeatedly at 50 Hz from the shared executor."""

    def __init__(self, topic: str, msg, kind=None) -> None:
        from sensor_msgs.msg import Image

        self.node = runtime.create_node("fake_camera")
        self.msg, self.on = msg, True
        self.pub = self.node.create_publisher(kind or Image, topic, runtime.make_qos("sensor_data"))
        self.node.create_timer(0.02, self._tick)

    def _tick(self):
        if self.on:
            self.msg.header.stamp = self.node.get_clock().now().to_msg()
            self.pub.publish(self.msg)

    def close(self):
        runtime.destroy_node(self.node)


def _rgb() -> np.ndarray:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[:, :10, 1] = 100
    return rgb


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "mono8"])
def test_colour_encodings_become_rgb(encoding):
    rgb = _rgb()
    data = {"rgb8": rgb, "bgr8": rgb[..., ::-1].copy(), "mono8": rgb[..., 0].copy()}[encoding]
    topic = unique_prefix() + "/image_raw"
    pub = ImagePublisher(topic, _image(encoding, data))
    cam = CAMERAS.make({"type": "ros", "name": "front", "topic": topic, "width": W, "height": H,
                        "connect_timeout_s": 5.0, "max_age_s": 0.5})
    assert isinstance(cam, RosCamera) and cam.shape == (H, W)
    try:
        with cam:
            frame = cam.read()
            expect = rgb if encoding != "mono8" else np.repeat(rgb[..., :1], 3, axis=2)
            np.testing.assert_array_equal(frame.color, expect)
            assert time.monotonic() - frame.stamp < 0.5 and frame.device_stamp > 0
    finally:
        pub.close()


def test_depth_16uc1_is_metres_and_images_are_resized():
    prefix = unique_prefix()
    colour = ImagePublisher(f"{prefix}/color", _image("rgb8", _rgb()))
    depth_mm = np.full((H, W), 750, np.uint16)
    depth = ImagePublisher(f"{prefix}/depth", _image("16UC1", depth_mm))
    cam = CAMERAS.make({"type": "ros", "topic": f"{prefix}/color", "depth_topic": f"{prefix}/depth",
                        "width": 16, "height": 12, "max_age_s": 0.5})
    try:
        with cam:
            deadline = time.monotonic() + 3.0
            while True:  # colour arrived first (connect); depth may still be discovering
                try:
                    frame = cam.read()
                    break
                except StaleDataError:
                    assert time.monotonic() < deadline
                    time.sleep(0.02)
            assert frame.color.shape == (12, 16, 3) and frame.depth.shape == (12, 16)
            np.testing.assert_allclose(frame.depth, 0.75)
            depth.on = False
            time.sleep(0.7)
            colour.msg.header.stamp = colour.node.get_clock().now().to_msg()
            with pytest.raises(StaleDataError, match="depth"):
                cam.read()
    finally:
        colour.close()
        depth.close()


def test_unknown_encoding_is_a_clear_error():
    topic = unique_prefix() + "/image_raw"
    msg = _image("rgb8", _rgb())
    pub = ImagePublisher(topic, msg)
    cam = CAMERAS.make({"type": "ros", "topic": topic, "width": W, "height": H, "max_age_s": 0.2})
    try:
        with cam:
            msg.encoding = "yuv422"
            time.sleep(0.5)
            with pytest.raises(DeviceError, match="unsupported image encoding 'yuv422'"):
                cam.read()
            msg.encoding = "16UC1"
            time.sleep(0.5)
            with pytest.raises(DeviceError, match="is depth"):
                cam.read()
    finally:
        pub.close()


def test_compressed_jpeg_and_staleness():
    import cv2
    from sensor_msgs.msg import CompressedImage

    ok, jpg = cv2.imencode(".jpg", _rgb()[..., ::-1])
    assert ok
    msg = CompressedImage(format="jpeg", data=jpg.tobytes())
    topic = unique_prefix() + "/image_raw/compressed"
    pub = ImagePublisher(topic, msg, kind=CompressedImage)
    cam = CAMERAS.make({"type": "ros", "topic": topic, "msg_type": "sensor_msgs/CompressedImage",
                        "width": W, "height": H, "max_age_s": 0.3})
    try:
        with cam:
            frame = cam.read()
            assert abs(int(frame.color[..., 0].mean()) - 200) < 8  # jpeg is lossy
            pub.on = False
            time.sleep(0.5)
            with pytest.raises(StaleDataError, match="stalled"):
                cam.read()
    finally:
        pub.close()


def test_no_publisher_connect_times_out():
    cam = CAMERAS.make({"type": "ros", "topic": unique_prefix() + "/none", "connect_timeout_s": 0.3})
    with pytest.raises(DeviceError, match="no frame within"):
        cam.connect()
    assert runtime.active_nodes() == 0


def test_image_decoding_checks_sizes():
    msg = _image("rgb8", _rgb())
    msg.step = 5
    with pytest.raises(ValueError, match="do not fit"):
        image_to_array(msg)
