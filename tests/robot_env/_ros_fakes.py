"""A tiny fake robot driver for ROS2 backend tests: real rclpy publishers on loopback DDS."""

from __future__ import annotations

import itertools
import threading
import time

import numpy as np

from robot_env.ros import runtime
from robot_env.ros.arm_config import RosArmConfig

_ids = itertools.count()


def unique_prefix() -> str:
    """A topic prefix no other test uses (tests share one DDS domain)."""
    return f"/t{time.monotonic_ns() % 10**9}_{next(_ids)}"


def arm_config(prefix: str, **kw) -> RosArmConfig:
    """The ``sim`` profile moved under ``prefix``."""
    base = dict(
        joint_states_topic=f"{prefix}/joint_states", ee_pose_topic=f"{prefix}/ee_pose",
        ee_twist_topic=f"{prefix}/ee_twist", wrench_topic=f"{prefix}/wrench",
        gripper_state_topic=f"{prefix}/gripper/width", pose_command_topic=f"{prefix}/target_pose",
        twist_command_topic=f"{prefix}/target_twist", gripper_command_topic=f"{prefix}/gripper/command",
        estop_topic=f"{prefix}/estop", connect_timeout_s=5.0, max_state_age_s=0.5)
    base.update(kw)
    return RosArmConfig(**base)


class FakeDriver:
    """Publishes a robot state at ``hz`` and records the commands it receives."""

    def __init__(self, cfg: RosArmConfig, hz: float = 100.0) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float64

        self.cfg = cfg
        self.node = runtime.create_node("fake_driver")
        self.pos = np.array([0.4, 0.1, 0.3])
        self.quat = np.array([1.0, 0.0, 0.0, 0.0])
        self.joints = np.linspace(0.0, 0.6, 7)
        self.publishing = True
        self.poses, self.twists, self.grippers = [], [], []
        self.lock = threading.Lock()
        qos = runtime.make_qos("sensor_data")
        n = self.node
        self.pub = {
            "joints": n.create_publisher(JointState, cfg.joint_states_topic, qos),
            "pose": n.create_publisher(PoseStamped, cfg.ee_pose_topic, qos),
            "twist": n.create_publisher(TwistStamped, cfg.ee_twist_topic, qos),
            "wrench": n.create_publisher(WrenchStamped, cfg.wrench_topic, qos),
            "gripper": n.create_publisher(Float64, cfg.gripper_state_topic, qos),
        }
        self.estop_pub = n.create_publisher(Bool, cfg.estop_topic, runtime.make_qos("reliable", 10))
        rel = runtime.make_qos("reliable")
        n.create_subscription(PoseStamped, cfg.pose_command_topic, self._rec(self.poses), rel)
        n.create_subscription(TwistStamped, cfg.twist_command_topic, self._rec(self.twists), rel)
        n.create_subscription(Float64, cfg.gripper_command_topic, self._rec(self.grippers), rel)
        self.nan_joints = False
        n.create_timer(1.0 / hz, self._tick)

    def _rec(self, out: list):
        def cb(msg):
            with self.lock:
                out.append(msg)
        return cb

    def _tick(self) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64

        if not self.publishing:
            return
        now = self.node.get_clock().now().to_msg()
        js = JointState()
        js.header.stamp = now
        js.name = [f"joint{i}" for i in range(1, 8)]
        js.position = [float("nan")] * 7 if self.nan_joints else [float(v) for v in self.joints]
        self.pub["joints"].publish(js)
        ps = PoseStamped()
        ps.header.stamp = now
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = (float(v) for v in self.pos)
        o = ps.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in self.quat)
        self.pub["pose"].publish(ps)
        tw = TwistStamped()
        tw.twist.linear.x = 0.01
        self.pub["twist"].publish(tw)
        wr = WrenchStamped()
        wr.wrench.force.z = -2.0
        self.pub["wrench"].publish(wr)
        self.pub["gripper"].publish(Float64(data=0.05))

    def estop(self, on: bool) -> None:
        from std_msgs.msg import Bool

        self.estop_pub.publish(Bool(data=on))

    def received(self, kind: str) -> list:
        with self.lock:
            return list({"pose": self.poses, "twist": self.twists, "gripper": self.grippers}[kind])

    def wait_for(self, kind: str, count: int, timeout: float = 2.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.received(kind)) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received(kind)

    def close(self) -> None:
        runtime.destroy_node(self.node)
