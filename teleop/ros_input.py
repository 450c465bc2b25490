"""ROS2 twist/joy input, compatible with ``spacenav_node`` (``/spacenav/twist``, ``/spacenav/joy``).

A thin I/O adapter: its own rclpy context and node, a background executor thread, the
latest messages behind a lock; ``read()`` never spins ROS. Liveness is checked from the
graph: with no publisher on the twist topic ``read()`` raises ``DeviceError`` (a dead
spacenav node is not "no input"), and a non-zero twist older than ``max_age_s`` is
dropped to zero so a stalled stream never keeps the arm moving.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import numpy as np

from robot_env.hardware import DeviceError
from teleop.base import TELEOPERATORS, AxisMapConfig, Teleoperator, TeleopState, map_axes


@dataclasses.dataclass
class Ros2TwistConfig:
    """Settings of the ROS2 twist/joy input (comments: launch/config/teleop/ros_twist.yaml).

    Attributes:
        twist_topic: ``geometry_msgs/Twist`` topic; empty string = do not subscribe.
        joy_topic: ``sensor_msgs/Joy`` topic (buttons; axes when ``use_joy_axes``).
        use_joy_axes: take the six axes from ``Joy.axes[0:6]`` instead of the twist.
        full_scale: raw value that maps to 1.0 (spacenav's twist is already ~[-1, 1]).
        axes: per-axis scale, sign, dead-zone, order and frame.
        close_button: index in ``Joy.buttons`` that closes the gripper (spacenav: 0 = left).
        open_button: index that opens the gripper (spacenav: 1 = right).
        intervention_button: index held to intervene; None = holding a gripper button
            for ``hold_s`` does it.
        hold_s: press-and-hold time for the gripper buttons to count as a hold, seconds.
        max_age_s: a twist older than this reads as zero, seconds.
        node_name: name of the rclpy node.
    """

    twist_topic: str = "/spacenav/twist"
    joy_topic: str = "/spacenav/joy"
    use_joy_axes: bool = False
    full_scale: float = 1.0
    axes: Any = dataclasses.field(default_factory=AxisMapConfig)
    close_button: int = 0
    open_button: int = 1
    intervention_button: int | None = None
    hold_s: float = 0.3
    max_age_s: float = 0.5
    node_name: str = "hilr_teleop_twist"

    def __post_init__(self) -> None:
        if isinstance(self.axes, dict) or hasattr(self.axes, "keys"):
            self.axes = AxisMapConfig(**dict(self.axes))
        if self.full_scale <= 0 or self.max_age_s <= 0:
            raise ValueError("full_scale and max_age_s must be > 0")
        if not self.twist_topic and not (self.joy_topic and self.use_joy_axes):
            raise ValueError("need a twist_topic, or a joy_topic with use_joy_axes=true")


@TELEOPERATORS.register("ros_twist", Ros2TwistConfig)
class Ros2Twist(Teleoperator):
    """Twist + joy subscriber (spacenav-compatible) as a teleoperator.

    Args:
        cfg: the config.
    """

    def __init__(self, cfg: Ros2TwistConfig) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._context = None
        self._node = None
        self._executor = None
        self._thread: threading.Thread | None = None
        self._axes = np.zeros(6)
        self._axes_stamp = -np.inf
        self._buttons: tuple[int, ...] = ()
        self._press_start: dict[int, float] = {}
        self._gripper: float | None = None
        self.messages_received = 0

    @property
    def is_connected(self) -> bool:
        """True while the executor thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def connect(self) -> None:
        """Create the node in its own context and spin it in a background thread."""
        if self._thread is not None:
            return
        import rclpy
        from geometry_msgs.msg import Twist
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Joy

        self._context = rclpy.Context()
        rclpy.init(context=self._context)
        self._node = rclpy.create_node(self.cfg.node_name, context=self._context,
                                       start_parameter_services=False)
        # Best effort matches both reliable and best-effort publishers; latest wins.
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        if self.cfg.twist_topic:
            self._node.create_subscription(Twist, self.cfg.twist_topic, self._on_twist, qos)
        if self.cfg.joy_topic:
            self._node.create_subscription(Joy, self.cfg.joy_topic, self._on_joy, qos)
        self._executor = SingleThreadedExecutor(context=self._context)
        self._executor.add_node(self._node)
        self._thread = threading.Thread(target=self._spin, name="ros-twist", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except Exception:  # context shut down under us: normal at disconnect
            pass

    def disconnect(self) -> None:
        """Stop spinning, destroy the node, shut the context down. Safe to call twice."""
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=1.0)
        if self._node is not None:
            self._node.destroy_node()
        if self._context is not None and self._context.ok():
            self._context.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self._thread = self._executor = self._node = self._context = None

    # -- callbacks (executor thread) --------------------------------------------------------
    def _set_axes(self, values: list[float]) -> None:
        axes = np.asarray(values, dtype=np.float64) / self.cfg.full_scale
        if not np.all(np.isfinite(axes)):
            return  # a malformed message never moves the arm; the last good one ages out
        with self._lock:
            self._axes = axes
            self._axes_stamp = time.monotonic()
            self.messages_received += 1

    def _on_twist(self, msg: Any) -> None:
        if not self.cfg.use_joy_axes:
            self._set_axes([msg.linear.x, msg.linear.y, msg.linear.z,
                            msg.angular.x, msg.angular.y, msg.angular.z])

    def _on_joy(self, msg: Any) -> None:
        if self.cfg.use_joy_axes and len(msg.axes) >= 6:
            self._set_axes(list(msg.axes[:6]))
        now = time.monotonic()
        buttons = tuple(int(b) for b in msg.buttons)
        with self._lock:
            self._buttons = buttons
            self.messages_received += 1
            roles = {self.cfg.close_button, self.cfg.open_button, self.cfg.intervention_button}
            for idx in roles - {None}:
                down = idx < len(buttons) and buttons[idx]
                if down and idx not in self._press_start:
                    self._press_start[idx] = now
                    if idx == self.cfg.close_button:
                        self._gripper = 1.0
                    elif idx == self.cfg.open_button:
                        self._gripper = -1.0
                elif not down:
                    self._press_start.pop(idx, None)

    # -- public API -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the latched gripper command."""
        with self._lock:
            self._gripper = None

    def read(self) -> TeleopState:
        """Newest state.

        Raises:
            DeviceError: not connected, or no publisher on the twist (or joy-axes) topic.
        """
        if not self.is_connected:
            raise DeviceError("ROS2 twist input is not connected; call connect() first")
        topic = self.cfg.joy_topic if self.cfg.use_joy_axes else self.cfg.twist_topic
        if self._node.count_publishers(topic) == 0:
            raise DeviceError(f"no publisher on {topic}: is spacenav_node (or the twist source) running?")
        now = time.monotonic()
        with self._lock:
            fresh = now - self._axes_stamp <= self.cfg.max_age_s
            raw = self._axes.copy() if fresh else np.zeros(6)
            stamp = self._axes_stamp if np.isfinite(self._axes_stamp) else now
            buttons, press, gripper = self._buttons, dict(self._press_start), self._gripper
        command, moved = map_axes(np.clip(raw, -1.0, 1.0), self.cfg.axes)
        if self.cfg.intervention_button is not None:
            held = self.cfg.intervention_button in press
        else:
            held = any(now - t0 >= self.cfg.hold_s for t0 in press.values())
        return TeleopState(stamp=stamp, command=command, gripper=gripper, buttons=buttons,
                           intervention_button=held, is_active=moved or held or bool(press),
                           frame=self.cfg.axes.frame)
