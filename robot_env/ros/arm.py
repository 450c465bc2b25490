"""``ARMS["ros"]``: a Cartesian-controlled arm behind ROS2 topics (franka_ros2, MoveIt Servo, sim).

State comes in on subscriptions (joint states, TCP pose, TCP twist, wrench, gripper
width); each callback stores the newest message behind a lock, stamped with
``time.monotonic()`` on arrival. ``read_state()`` only reads those slots: it never spins.
Commands go out as ``PoseStamped`` targets or ``TwistStamped`` velocities plus a gripper
command, on the topics and types of the config profile.

Safety on this side of the wire:
    * a state older than ``max_state_age_s`` raises ``StaleDataError``, and no command is
      sent while the state is stale (a target computed from old state is itself stale);
    * non-finite or malformed commands raise ``ValueError`` and are never published;
    * while the e-stop topic reads True every command is dropped (counted in
      ``dropped_commands``) and one hold command is sent when it trips;
    * ``disconnect()`` sends a hold command before leaving.
The robot side must still hold when commands stop arriving (the actor may die without
calling ``disconnect``): ``hilr sim-robot`` has a command watchdog; franka_ros2's and MoveIt
Servo's controllers have their own timeouts (see docs/sections/ros2.md).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from robot_env.geometry import quat_error_rotvec, quat_normalize, slerp
from robot_env.hardware import ARMS, Arm, ArmState, DeviceError, StaleDataError
from robot_env.ros import runtime
from robot_env.ros.arm_config import RosArmConfig

log = logging.getLogger(__name__)


def _finite(*arrays: np.ndarray) -> bool:
    return all(np.all(np.isfinite(a)) for a in arrays)


@ARMS.register("ros", RosArmConfig)
class RosArm(Arm):
    """An arm read and commanded over ROS2 topics. See the module docstring.

    Args:
        cfg: :class:`RosArmConfig` (defaults = the ``sim`` profile).
    """

    def __init__(self, cfg: RosArmConfig) -> None:
        self.cfg = cfg
        self.gripper_max_width = cfg.gripper_max_width
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[float, Any]] = {}
        self._errors: dict[str, tuple[float, str]] = {}
        self._prev_pose: tuple[float, np.ndarray, np.ndarray] | None = None
        self._node = None
        self._pub: dict[str, Any] = {}
        self._estop = False
        self._commanded_width = cfg.gripper_max_width
        self.dropped_commands = 0
        #: header stamp (ROS time = system clock, seconds) of the newest ee pose: end-to-end age probes
        self.pose_header_stamp: float | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def required(self) -> list[str]:
        """State streams that must all be fresh for ``read_state()`` to succeed."""
        keys = ["joints", "pose"]
        keys += ["twist"] if self.cfg.ee_twist_topic else []
        keys += ["wrench"] if self.cfg.wrench_topic else []
        keys += ["gripper"] if self.cfg.gripper_state_topic else []
        return keys

    def connect(self) -> None:
        """Create the node, subscriptions and publishers; wait for a full state.

        Raises:
            DeviceError: no complete state within ``connect_timeout_s`` (names the silent topics).
        """
        if self._node is not None:
            return
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool

        cfg = self.cfg
        node = self._node = runtime.create_node("arm")
        qos_in, qos_out = runtime.make_qos(cfg.state_qos), runtime.make_qos(cfg.command_qos)
        node.create_subscription(JointState, cfg.joint_states_topic, self._on_joints, qos_in)
        node.create_subscription(PoseStamped, cfg.ee_pose_topic, self._on_pose, qos_in)
        if cfg.ee_twist_topic:
            node.create_subscription(TwistStamped, cfg.ee_twist_topic, self._on_twist, qos_in)
        if cfg.wrench_topic:
            node.create_subscription(WrenchStamped, cfg.wrench_topic, self._on_wrench, qos_in)
        if cfg.gripper_state_topic:
            node.create_subscription(runtime.import_message(cfg.gripper_state_type),
                                     cfg.gripper_state_topic, self._on_gripper, qos_in)
        if cfg.estop_topic:
            node.create_subscription(Bool, cfg.estop_topic, self._on_estop, runtime.make_qos("reliable", 10))
        if cfg.command_mode == "pose":
            self._pub["pose"] = node.create_publisher(PoseStamped, cfg.pose_command_topic, qos_out)
        else:
            self._pub["twist"] = node.create_publisher(TwistStamped, cfg.twist_command_topic, qos_out)
        # gripper commands are discrete events: keep a few so none is overwritten unsent
        self._pub["gripper"] = node.create_publisher(
            runtime.import_message(cfg.gripper_command_type), cfg.gripper_command_topic,
            runtime.make_qos(cfg.command_qos, depth=10))
        deadline = time.monotonic() + cfg.connect_timeout_s
        while True:
            with self._lock:
                missing = [k for k in self.required if k not in self._slots]
            if not missing:
                break
            if time.monotonic() > deadline:
                self.disconnect()
                raise DeviceError(f"ROS2 arm ({cfg.profile}): no message within {cfg.connect_timeout_s} s "
                                  f"on {self._topics(missing)}; is the robot driver running?")
            time.sleep(0.01)
        # wait until the command subscribers (the robot) are matched, so the first command is not lost
        pub = self._pub.get("pose") or self._pub["twist"]
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def disconnect(self) -> None:
        """Send a hold command (if the state is fresh), then destroy the node. Safe twice."""
        if self._node is None:
            return
        try:
            self.stop()
        except DeviceError:
            pass  # stale or e-stopped: nothing safe to send; the robot-side watchdog holds
        runtime.destroy_node(self._node)
        self._node, self._pub = None, {}
        with self._lock:
            self._slots.clear()
            self._errors.clear()
            self._prev_pose = None

    @property
    def is_connected(self) -> bool:
        """True between ``connect()`` and ``disconnect()``."""
        return self._node is not None

    @property
    def node(self):
        """The backend's ``rclpy`` node while connected (spun by the shared executor), else None."""
        return self._node

    def task_feed(self):
        """A ``SuccessSource`` reading the robot's task report, or None (real robots).

        Used by ``make_env`` when the profile names a ``task_state_topic`` (the sim robot).
        """
        if not self.cfg.task_state_topic:
            return None
        from robot_env.ros.task_feed import RosTaskFeed

        return RosTaskFeed(self)

    @property
    def estopped(self) -> bool:
        """True while the e-stop topic's latest message is True."""
        return self._estop

    def _topics(self, keys: list[str]) -> list[str]:
        c = self.cfg
        names = {"joints": c.joint_states_topic, "pose": c.ee_pose_topic, "twist": c.ee_twist_topic,
                 "wrench": c.wrench_topic, "gripper": c.gripper_state_topic}
        return [names[k] for k in keys]

    # ------------------------------------------------------------------ callbacks (executor thread)
    def _store(self, key: str, value: Any) -> None:
        with self._lock:
            self._slots[key] = (time.monotonic(), value)

    def _bad(self, key: str, why: str) -> None:
        with self._lock:
            self._errors[key] = (time.monotonic(), why)

    def _on_joints(self, msg: Any) -> None:
        names = self.cfg.joint_names
        if names:
            index = {n: i for i, n in enumerate(msg.name)}
            missing = [n for n in names if n not in index]
            if missing:
                return self._bad("joints", f"joint state lacks joints {missing}")
            q = np.array([msg.position[index[n]] for n in names], dtype=np.float64)
        else:
            q = np.array(msg.position, dtype=np.float64)
        if not _finite(q):
            return self._bad("joints", "non-finite joint position")
        self._store("joints", q)

    def _on_pose(self, msg: Any) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])
        if not _finite(pos, quat) or abs(np.linalg.norm(quat) - 1.0) > 1e-2:
            return self._bad("pose", f"bad end-effector pose {pos} {quat}")
        quat = quat_normalize(quat)
        self._store("pose", (pos, quat))
        self.pose_header_stamp = runtime.stamp_to_seconds(msg.header.stamp)
        if self.cfg.ee_twist_topic:
            return
        t = runtime.stamp_to_seconds(msg.header.stamp)
        prev, self._prev_pose = self._prev_pose, (t, pos, quat)
        if prev is not None and t > prev[0]:
            dt = t - prev[0]
            self._store("twist", np.concatenate([(pos - prev[1]) / dt, quat_error_rotvec(quat, prev[2]) / dt]))

    def _on_twist(self, msg: Any) -> None:
        v, w = msg.twist.linear, msg.twist.angular
        twist = np.array([v.x, v.y, v.z, w.x, w.y, w.z])
        if not _finite(twist):
            return self._bad("twist", "non-finite twist")
        self._store("twist", twist)

    def _on_wrench(self, msg: Any) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        wrench = np.array([f.x, f.y, f.z, t.x, t.y, t.z])
        if not _finite(wrench):
            return self._bad("wrench", "non-finite wrench")
        self._store("wrench", wrench)

    def _on_gripper(self, msg: Any) -> None:
        width = float(sum(msg.position)) if hasattr(msg, "position") else float(msg.data)
        if not np.isfinite(width):
            return self._bad("gripper", "non-finite gripper width")
        self._store("gripper", width)

    def _on_estop(self, msg: Any) -> None:
        tripped = bool(msg.data) and not self._estop
        self._estop = bool(msg.data)
        if tripped:
            log.warning("ROS2 arm: e-stop/pause active on %s: holding, commands dropped", self.cfg.estop_topic)
            try:
                self._send_hold()
            except DeviceError:
                pass

    # ------------------------------------------------------------------ Arm interface
    def read_state(self) -> ArmState:
        """Latest state; the stamp is the arrival time of its oldest part.

        Raises:
            StaleDataError: a required stream is older than ``max_state_age_s``.
            DeviceError: the newest message of a stream was malformed (NaN, missing joints).
        """
        self._require_connected()
        now = time.monotonic()
        with self._lock:
            slots, errors = dict(self._slots), dict(self._errors)
        for key in self.required:
            stamp = slots[key][0] if key in slots else -np.inf
            if key in errors and errors[key][0] >= stamp:
                raise DeviceError(f"ROS2 arm: {self._topics([key])[0]}: {errors[key][1]}")
            age = now - stamp
            if age > self.cfg.max_state_age_s:
                raise StaleDataError(
                    f"ROS2 arm: {self._topics([key])[0]} is {age * 1e3:.0f} ms old "
                    f"(max_state_age_s={self.cfg.max_state_age_s}); robot driver stalled or gone")
        pos, quat = slots["pose"][1]
        return ArmState(
            stamp=min(slots[k][0] for k in self.required),
            ee_pos=pos.copy(), ee_quat=quat.copy(), joint_pos=slots["joints"][1].copy(),
            ee_twist=slots["twist"][1].copy() if "twist" in slots else np.zeros(6),
            gripper_width=float(slots["gripper"][1]) if "gripper" in slots else self._commanded_width,
            wrench=slots["wrench"][1].copy() if "wrench" in slots else None)

    def command_pose(self, ee_pos: np.ndarray, ee_quat: np.ndarray) -> None:
        """Send a TCP pose target (metres, xyzw, base frame); in twist mode, servo toward it.

        Raises:
            ValueError: non-finite or mis-shaped target (nothing is sent).
            StaleDataError: the state is stale (nothing is sent).
        """
        pos = np.asarray(ee_pos, dtype=np.float64)
        quat = np.asarray(ee_quat, dtype=np.float64)
        if pos.shape != (3,) or quat.shape != (4,) or not _finite(pos, quat) or np.linalg.norm(quat) < 0.5:
            raise ValueError(f"bad TCP target pos={pos} quat={quat}; nothing sent")
        state = self.read_state()
        if self._drop_if_estopped():
            return
        quat = quat_normalize(quat)
        if self.cfg.command_mode == "pose":
            self._publish_pose(pos, quat)
        else:
            twist = self.cfg.twist_gain * np.concatenate(
                [pos - state.ee_pos, quat_error_rotvec(quat, state.ee_quat)])
            self._publish_twist(twist)

    def command_twist(self, twist: np.ndarray) -> None:
        """Send a TCP twist (6,), m/s and rad/s, base frame; twist mode only (clipped to the limits)."""
        twist = np.asarray(twist, dtype=np.float64)
        if twist.shape != (6,) or not _finite(twist):
            raise ValueError(f"bad twist {twist}; nothing sent")
        if self.cfg.command_mode != "twist":
            raise NotImplementedError("ROS2 arm in pose mode takes pose targets; use profile moveit_servo for twists")
        self.read_state()
        if not self._drop_if_estopped():
            self._publish_twist(twist)

    def command_gripper(self, width: float) -> None:
        """Command the gripper opening in metres (clipped to ``[0, gripper_max_width]``)."""
        if not np.isfinite(width):
            raise ValueError(f"bad gripper width {width}; nothing sent")
        self._require_connected()
        if self._drop_if_estopped():
            return
        width = float(np.clip(width, 0.0, self.cfg.gripper_max_width))
        msg = self._pub["gripper"].msg_type()
        if self.cfg.gripper_command_type == "std_msgs/Bool":
            msg.data = width < 0.5 * self.cfg.gripper_max_width
        elif self.cfg.gripper_command_type == "std_msgs/Float64MultiArray":
            msg.data = [width]
        else:
            msg.data = width
        self._pub["gripper"].publish(msg)
        self._commanded_width = width

    def stop(self) -> None:
        """Hold: pose mode sends the current pose as target, twist mode a zero twist."""
        self._require_connected()
        self._send_hold()

    def move_home(self, pos: np.ndarray | None = None, quat: np.ndarray | None = None) -> None:
        """Drive the TCP to ``home_pos``/``home_quat`` (or ``pos``/``quat``: a perturbed reset pose)
        along a speed-limited straight line.

        Raises:
            DeviceError: e-stop active, or home not reached within ``home_timeout_s``.
        """
        cfg = self.cfg
        start = self.read_state()
        home_pos = np.asarray(cfg.home_pos if pos is None else pos, dtype=np.float64)
        home_quat = quat_normalize(np.asarray(cfg.home_quat if quat is None else quat, dtype=np.float64))
        duration = max(np.linalg.norm(home_pos - start.ee_pos) / cfg.max_linear_speed,
                       np.linalg.norm(quat_error_rotvec(home_quat, start.ee_quat)) / cfg.max_angular_speed, 0.1)
        t0, period = time.monotonic(), 0.02
        deadline = t0 + cfg.home_timeout_s
        for i in range(1, 1 << 30):
            if self._estop:
                raise DeviceError("ROS2 arm: move_home aborted: e-stop active")
            frac = min(1.0, (time.monotonic() - t0) / duration)
            self.command_pose(start.ee_pos + frac * (home_pos - start.ee_pos), slerp(start.ee_quat, home_quat, frac))
            state = self.read_state()
            if frac >= 1.0 and np.linalg.norm(state.ee_pos - home_pos) < cfg.home_tolerance_m:
                break
            if time.monotonic() > deadline:
                self.stop()
                raise DeviceError(f"ROS2 arm: home not reached within {cfg.home_timeout_s} s "
                                  f"(at {np.round(state.ee_pos, 3)}, home {home_pos})")
            time.sleep(max(0.0, t0 + i * period - time.monotonic()))
        if cfg.command_mode == "twist":
            self.stop()

    # ------------------------------------------------------------------ publishing
    def _drop_if_estopped(self) -> bool:
        if self._estop:
            self.dropped_commands += 1
        return self._estop

    def _send_hold(self) -> None:
        if self.cfg.command_mode == "pose":
            state = self.read_state()
            self._publish_pose(state.ee_pos, state.ee_quat)
        else:
            self._publish_twist(np.zeros(6))

    def _header(self, msg: Any) -> Any:
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.header.frame_id = self.cfg.base_frame
        return msg

    def _publish_pose(self, pos: np.ndarray, quat: np.ndarray) -> None:
        from geometry_msgs.msg import PoseStamped

        msg = self._header(PoseStamped())
        p, o = msg.pose.position, msg.pose.orientation
        p.x, p.y, p.z = (float(v) for v in pos)
        o.x, o.y, o.z, o.w = (float(v) for v in quat)
        self._pub["pose"].publish(msg)

    def _publish_twist(self, twist: np.ndarray) -> None:
        from geometry_msgs.msg import TwistStamped

        lin, ang = twist[:3], twist[3:]
        lin = lin * min(1.0, self.cfg.max_linear_speed / max(np.linalg.norm(lin), 1e-12))
        ang = ang * min(1.0, self.cfg.max_angular_speed / max(np.linalg.norm(ang), 1e-12))
        msg = self._header(TwistStamped())
        v, w = msg.twist.linear, msg.twist.angular
        v.x, v.y, v.z = (float(x) for x in lin)
        w.x, w.y, w.z = (float(x) for x in ang)
        self._pub["twist"].publish(msg)
