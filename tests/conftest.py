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

# A suite started in the background of a non-interactive shell (`make test &`, some CI runners)
# inherits SIGINT *ignored*, and every child process would inherit that too: the tests that
# press Ctrl-C on a child (`hilr record` keeps its finished episodes; the sim robot stops
# cleanly) would then test nothing. Children get Ctrl-C as a user at a terminal has it.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
