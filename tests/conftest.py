"""Test-wide settings: headless rendering, an isolated ROS2 domain per test session."""

from __future__ import annotations

import os
import random

# Headless MuJoCo rendering (EGL) unless the caller chose a backend.
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# DDS traffic stays on loopback, and parallel test sessions never hear each other.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(random.Random(os.getpid()).randint(1, 200)))
os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
