"""``CAMERAS["ros"]``: a camera read from ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``.

The subscription uses the sensor-data QoS (best effort, keep last): a late frame is
dropped, never queued. Each callback decodes the image into the latest-frame slot,
stamped with ``time.monotonic()`` on arrival; the message header stamp is kept as
``device_stamp``. Colour encodings ``rgb8``/``bgr8``/``mono8`` become RGB uint8; an
optional depth topic takes ``16UC1`` (millimetres) or ``32FC1`` (metres). Any other
encoding makes ``read()`` raise a ``DeviceError`` that names it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from robot_env.cameras.latest import LatestFrame
from robot_env.hardware import CAMERAS, Camera, DeviceError, Frame, StaleDataError
from robot_env.ros import runtime

COLOR_ENCODINGS = ("rgb8", "bgr8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")
MSG_TYPES = ("sensor_msgs/Image", "sensor_msgs/CompressedImage")


@dataclasses.dataclass
class RosCameraConfig:
    """A camera behind a ROS2 image topic.

    Attributes:
        name: camera name (observation key).
        topic: colour image topic.
        msg_type: ``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage`` (jpeg/png).
        depth_topic: optional aligned depth ``sensor_msgs/Image`` (16UC1 mm or 32FC1 m).
        width: output width, pixels (images of another size are resized).
        height: output height, pixels.
        qos: ``sensor_data`` (default for cameras), ``reliable`` or ``best_effort``.
        max_age_s: ``read()`` raises ``StaleDataError`` for a frame older than this, s.
        connect_timeout_s: ``connect()`` waits this long for the first frame, s.
    """

    name: str = "front"
    topic: str = "/sim_robot/front/image_raw"
    msg_type: str = "sensor_msgs/Image"
    depth_topic: str | None = None
    width: int = 128
    height: int = 128
    qos: str = "sensor_data"
    max_age_s: float = 0.2
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if self.msg_type not in MSG_TYPES:
            raise ValueError(f"msg_type must be one of {MSG_TYPES}, got {self.msg_type!r}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"width/height must be positive, got {self.width}x{self.height}")
        if self.qos not in runtime.QOS_NAMES:
            raise ValueError(f"qos must be one of {runtime.QOS_NAMES}, got {self.qos!r}")


def image_to_array(msg: Any) -> np.ndarray:
    """Decode a ``sensor_msgs/Image`` into a numpy array (no copy of the pixels kept).

    Returns:
        (H, W, 3) uint8 RGB for rgb8/bgr8/mono8, (H, W) float32 metres for 16UC1/32FC1.

    Raises:
        ValueError: unknown encoding, or a data/step size that does not match.
    """
    h, w, enc = int(msg.height), int(msg.width), msg.encoding
    layout = {"rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "mono8": (np.uint8, 1),
              "16UC1": (np.uint16, 1), "32FC1": (np.float32, 1)}
    if enc not in layout:
        raise ValueError(f"unsupported image encoding {enc!r}; supported: {sorted(layout)}")
    dtype, channels = layout[enc]
    itemsize = np.dtype(dtype).itemsize
    row = w * channels * itemsize
    if msg.step < row or len(msg.data) < msg.step * h:
        raise ValueError(f"{enc} image {w}x{h}: step {msg.step} / {len(msg.data)} bytes do not fit")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(h, msg.step)[:, :row]
    wire = np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<")
    arr = np.ascontiguousarray(buf).view(wire).astype(dtype).reshape(h, w, channels)
    if enc == "rgb8":
        return arr
    if enc == "bgr8":
        return arr[..., ::-1].copy()
    if enc == "mono8":
        return np.repeat(arr, 3, axis=2)
    if enc == "16UC1":
        return arr[..., 0].astype(np.float32) / 1000.0
    return arr[..., 0].astype(np.float32)


@CAMERAS.register("ros", RosCameraConfig)
class RosCamera(Camera):
    """Latest frame of a ROS2 image topic. See the module docstring.

    Args:
        cfg: :class:`RosCameraConfig`.
    """

    def __init__(self, cfg: RosCameraConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.shape = (cfg.height, cfg.width)
        self._latest = LatestFrame(cfg.name, cfg.max_age_s)
        self._depth_lock = threading.Lock()
        self._depth: tuple[float, np.ndarray] | None = None
        self._depth_error: str | None = None
        self._node = None

    def connect(self) -> None:
        """Subscribe and wait for the first frame (``connect_timeout_s``)."""
        if self._node is not None:
            return
        from sensor_msgs.msg import CompressedImage, Image

        cfg = self.cfg
        self._latest.clear()
        self._node = runtime.create_node(f"camera_{cfg.name}")
        kind = CompressedImage if cfg.msg_type.endswith("CompressedImage") else Image
        qos = runtime.make_qos(cfg.qos)
        self._node.create_subscription(kind, cfg.topic, self._on_image, qos)
        if cfg.depth_topic:
            self._node.create_subscription(Image, cfg.depth_topic, self._on_depth, qos)
        try:
            self._latest.wait_first(cfg.connect_timeout_s)
        except DeviceError as exc:
            self.disconnect()
            raise DeviceError(f"{exc} on ROS2 topic {cfg.topic}") from None

    def disconnect(self) -> None:
        """Destroy the node (safe to call twice)."""
        if self._node is not None:
            runtime.destroy_node(self._node)
            self._node = None

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()``."""
        return self._node is not None

    def _resize(self, image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == self.shape:
            return image
        import cv2

        return cv2.resize(image, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_AREA)

    def _on_image(self, msg: Any) -> None:
        stamp = time.monotonic()
        try:
            if hasattr(msg, "encoding"):
                if msg.encoding in DEPTH_ENCODINGS:
                    raise ValueError(f"encoding {msg.encoding!r} is depth; put it on depth_topic, "
                                     f"colour takes {COLOR_ENCODINGS}")
                rgb = image_to_array(msg)
            else:
                rgb = self._decode_compressed(msg)
        except ValueError as exc:
            self._latest.fail(f"topic {self.cfg.topic}: {exc}")
            return
        self._latest.put(Frame(stamp=stamp, color=self._resize(rgb),
                               device_stamp=runtime.stamp_to_seconds(msg.header.stamp)))

    @staticmethod
    def _decode_compressed(msg: Any) -> np.ndarray:
        import cv2

        bgr = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"could not decode compressed image (format {msg.format!r})")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def _on_depth(self, msg: Any) -> None:
        stamp = time.monotonic()
        try:
            if msg.encoding not in DEPTH_ENCODINGS:
                raise ValueError(f"depth encoding must be one of {DEPTH_ENCODINGS}, got {msg.encoding!r}")
            depth = image_to_array(msg)
        except ValueError as exc:
            with self._depth_lock:
                self._depth_error = f"topic {self.cfg.depth_topic}: {exc}"
            return
        if depth.shape != self.shape:
            import cv2

            depth = cv2.resize(depth, (self.cfg.width, self.cfg.height), interpolation=cv2.INTER_NEAREST)
        with self._depth_lock:
            self._depth, self._depth_error = (stamp, depth), None

    def read(self) -> Frame:
        """Newest frame (with depth if configured).

        Raises:
            StaleDataError: no frame yet or older than ``max_age_s`` (colour or depth).
            DeviceError: the stream carries an unsupported encoding or undecodable data.
        """
        self._require_connected()
        frame = self._latest.get()
        if not self.cfg.depth_topic:
            return frame
        with self._depth_lock:
            depth, error = self._depth, self._depth_error
        if error is not None:
            raise DeviceError(f"camera {self.name!r}: {error}")
        if depth is None or time.monotonic() - depth[0] > self.cfg.max_age_s:
            raise StaleDataError(f"camera {self.name!r}: depth on {self.cfg.depth_topic} missing or stale")
        return dataclasses.replace(frame, depth=depth[1])
