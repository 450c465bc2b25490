"""Hardware interfaces: one small abstract class per device kind.

Conventions used everywhere in hilr:
    * positions in metres, angles in radians, time in seconds from ``time.monotonic()``;
    * quaternions are ``(x, y, z, w)`` (ROS / scipy order), unit norm;
    * poses are in the arm's base frame unless a name says otherwise;
    * twists are ``(vx, vy, vz, wx, wy, wz)``, m/s and rad/s, base frame;
    * wrenches are ``(fx, fy, fz, tx, ty, tz)``, N and N·m, base frame.

No implementation does I/O in ``__init__``: build anything without the robot, then
``connect()``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np

from robot_env.registry import Registry


class DeviceError(RuntimeError):
    """A device is unplugged, frozen, not connected, or answered nonsense."""


class StaleDataError(DeviceError):
    """The newest sample is older than the configured maximum age: never act on it."""


class ConnectionMixin(abc.ABC):
    """``connect``/``disconnect`` lifecycle plus the context-manager boilerplate, once."""

    @abc.abstractmethod
    def connect(self) -> None:
        """Open the device. Idempotent."""

    @abc.abstractmethod
    def disconnect(self) -> None:
        """Release the device; safe to call twice and after a failed ``connect``."""

    #: Set by ``connect``/``disconnect`` of implementations that use the default ``is_connected``.
    _connected: bool = False

    @property
    def is_connected(self) -> bool:
        """True between a successful ``connect`` and ``disconnect`` (default: ``self._connected``)."""
        return self._connected

    def _require_connected(self) -> None:
        if not self.is_connected:
            raise DeviceError(f"{type(self).__name__} is not connected; call connect() first")

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


@dataclasses.dataclass(frozen=True)
class ArmState:
    """One timestamped arm reading.

    Attributes:
        stamp: ``time.monotonic()`` when the sample arrived on this PC, seconds.
        ee_pos: (3,) float64 end-effector position, metres, base frame.
        ee_quat: (4,) float64 end-effector orientation, quaternion xyzw, base frame.
        joint_pos: (n,) float64 joint positions, radians.
        ee_twist: (6,) float64 end-effector twist, m/s and rad/s, base frame.
        gripper_width: opening between the fingers, metres.
        wrench: (6,) float64 external wrench at the end effector, N and N·m, or None.
    """

    stamp: float
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    joint_pos: np.ndarray
    ee_twist: np.ndarray
    gripper_width: float
    wrench: np.ndarray | None = None


class Arm(ConnectionMixin):
    """A Cartesian-controlled arm with a parallel gripper."""

    #: Maximum gripper opening in metres (used to normalise gripper commands).
    gripper_max_width: float = 0.08

    @abc.abstractmethod
    def read_state(self) -> ArmState:
        """Latest state. Raises ``StaleDataError`` if older than the configured max age."""

    @abc.abstractmethod
    def command_pose(self, ee_pos: np.ndarray, ee_quat: np.ndarray) -> None:
        """Send an end-effector pose target (metres; quaternion xyzw; base frame)."""

    def command_twist(self, twist: np.ndarray) -> None:
        """Send an end-effector twist target (6,), m/s and rad/s, base frame."""
        raise NotImplementedError(f"{type(self).__name__} has no twist interface")

    @abc.abstractmethod
    def command_gripper(self, width: float) -> None:
        """Command the gripper opening in metres, 0 = closed."""

    @abc.abstractmethod
    def move_home(self, pos: np.ndarray | None = None, quat: np.ndarray | None = None) -> None:
        """Move to the configured home pose, or to ``pos``/``quat`` (metres, xyzw, base frame) when
        given: a perturbed reset pose that the env has already clipped to the task's safety box
        (blocking until reached or timed out)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop motion now: hold the current pose, drop any pending target."""


@dataclasses.dataclass(frozen=True)
class Frame:
    """One timestamped camera frame.

    Attributes:
        stamp: ``time.monotonic()`` on this PC when the frame arrived, seconds.
        color: (H, W, 3) uint8, RGB.
        depth: (H, W) float32 metres, or None.
        device_stamp: the device's own timestamp in seconds when it has one, else None.
    """

    stamp: float
    color: np.ndarray
    depth: np.ndarray | None = None
    device_stamp: float | None = None


class Camera(ConnectionMixin):
    """A colour (optionally depth) camera; ``read()`` returns the newest frame."""

    #: (height, width) of the frames ``read()`` returns, readable before ``connect()``.
    shape: tuple[int, int] = (0, 0)

    @abc.abstractmethod
    def read(self) -> Frame:
        """Newest frame. Raises ``StaleDataError`` if older than the configured max age."""


ARMS: Registry[Arm] = Registry("arm")
CAMERAS: Registry[Camera] = Registry("camera")
