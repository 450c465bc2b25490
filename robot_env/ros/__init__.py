"""ROS2 backends: ``ARMS["ros"]``, ``CAMERAS["ros"]``, the sim task link, and the sim-robot node.

Importing this package registers the ROS2 arm and camera; rclpy is imported only when a
backend connects (``robot_env.ros.runtime``). The sim-robot node (``hilr sim-robot``)
lives in :mod:`robot_env.ros.sim_robot_node`.
"""

from robot_env.ros.arm import RosArm
from robot_env.ros.arm_config import RosArmConfig
from robot_env.ros.camera import RosCamera, RosCameraConfig

__all__ = ["RosArm", "RosArmConfig", "RosCamera", "RosCameraConfig"]
