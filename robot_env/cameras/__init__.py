"""Camera backends that talk to devices directly (no ROS): RealSense and OpenCV.

Importing this package registers ``realsense``, ``realsense_software`` and ``opencv`` in
:data:`robot_env.hardware.CAMERAS`; pyrealsense2 and cv2 are imported only when a camera
connects. The ROS2 camera lives in :mod:`robot_env.ros`.
"""

from robot_env.cameras.opencv import OpenCVCamera, OpenCVCameraConfig
from robot_env.cameras.realsense import RealSenseCamera, RealSenseConfig
from robot_env.cameras.realsense_software import SoftwareRealSenseCamera, SoftwareRealSenseConfig

__all__ = [
    "OpenCVCamera",
    "OpenCVCameraConfig",
    "RealSenseCamera",
    "RealSenseConfig",
    "SoftwareRealSenseCamera",
    "SoftwareRealSenseConfig",
]
