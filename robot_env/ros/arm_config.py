"""Config of the ROS2 arm backend: topics, message types, frames, QoS and safety limits.

The defaults are the ``sim`` profile (the topics ``hilr sim-robot`` serves). The shipped
profiles live in ``launch/config/robot/ros_{sim,franka,moveit_servo}.yaml``; each key is
commented there.
"""

from __future__ import annotations

import dataclasses

from robot_env.ros.runtime import QOS_NAMES

#: Message types accepted for the gripper state topic (how the width is read).
GRIPPER_STATE_TYPES = ("std_msgs/Float64", "sensor_msgs/JointState")
#: Message types accepted for the gripper command topic (how the width is written).
GRIPPER_COMMAND_TYPES = ("std_msgs/Float64", "std_msgs/Float64MultiArray", "std_msgs/Bool")
COMMAND_MODES = ("pose", "twist")


@dataclasses.dataclass
class RosArmConfig:
    """A Cartesian-controlled arm behind ROS2 topics.

    Attributes:
        profile: name of the profile these values came from (for logs only).
        joint_states_topic: ``sensor_msgs/JointState`` of the arm joints.
        joint_names: joints to read from it, in order; empty = every joint in the message.
        ee_pose_topic: ``geometry_msgs/PoseStamped`` of the end effector (TCP), base frame.
        ee_twist_topic: ``geometry_msgs/TwistStamped`` of the TCP; null = finite
            difference of consecutive ``ee_pose`` messages (their header stamps).
        wrench_topic: ``geometry_msgs/WrenchStamped`` external wrench, base frame; null = none.
        gripper_state_topic: gripper opening; null = report the last commanded width.
        gripper_state_type: ``std_msgs/Float64`` (metres) or ``sensor_msgs/JointState``
            (opening = sum of the finger joint positions, as franka_gripper publishes).
        command_mode: ``pose`` (``PoseStamped`` targets, e.g. a Cartesian impedance
            controller) or ``twist`` (``TwistStamped`` velocities, e.g. MoveIt Servo).
        pose_command_topic: ``geometry_msgs/PoseStamped`` TCP target topic (pose mode).
        twist_command_topic: ``geometry_msgs/TwistStamped`` TCP velocity topic (twist mode).
        gripper_command_topic: where gripper commands go.
        gripper_command_type: one of ``GRIPPER_COMMAND_TYPES``: width in metres
            (``Float64``/``Float64MultiArray``) or ``Bool`` (True = close).
        estop_topic: ``std_msgs/Bool``; while True no command is sent and the arm holds.
        base_frame: ``frame_id`` stamped on outgoing commands.
        state_qos: QoS of the state subscriptions (``sensor_data``, ``reliable``, ``best_effort``).
        command_qos: QoS of the command publishers.
        max_state_age_s: a state older than this is ``StaleDataError``; commands are refused.
        connect_timeout_s: ``connect()`` waits this long for the first full state, s.
        gripper_max_width: largest opening, metres.
        twist_gain: twist mode: TCP velocity per metre/radian of pose error, 1/s.
        max_linear_speed: twist mode and ``move_home``: TCP speed limit, m/s.
        max_angular_speed: twist mode and ``move_home``: TCP angular speed limit, rad/s.
        home_pos: (3,) home TCP position, metres, base frame.
        home_quat: (4,) home TCP orientation, xyzw, base frame.
        home_tolerance_m: ``move_home`` is done within this distance, metres.
        home_timeout_s: ``move_home`` gives up after this long, s.
        task_state_topic: ``std_msgs/String`` JSON task report (``success``, ``failure``,
            ``task_state``, ``episode``) published by a sim robot; null on real robots.
        reset_service: ``std_srvs/Trigger`` that re-randomises a sim robot's scene; null
            on real robots. Both feed :class:`robot_env.ros.task_feed.RosTaskFeed`.
    """

    profile: str = "sim"
    joint_states_topic: str = "/sim_robot/joint_states"
    joint_names: list = dataclasses.field(default_factory=list)
    ee_pose_topic: str = "/sim_robot/ee_pose"
    ee_twist_topic: str | None = "/sim_robot/ee_twist"
    wrench_topic: str | None = "/sim_robot/wrench"
    gripper_state_topic: str | None = "/sim_robot/gripper/width"
    gripper_state_type: str = "std_msgs/Float64"
    command_mode: str = "pose"
    pose_command_topic: str = "/sim_robot/target_pose"
    twist_command_topic: str = "/sim_robot/target_twist"
    gripper_command_topic: str = "/sim_robot/gripper/command"
    gripper_command_type: str = "std_msgs/Float64"
    estop_topic: str | None = "/sim_robot/estop"
    base_frame: str = "base"
    state_qos: str = "sensor_data"
    command_qos: str = "reliable"
    max_state_age_s: float = 0.1
    connect_timeout_s: float = 10.0
    gripper_max_width: float = 0.085
    twist_gain: float = 4.0
    max_linear_speed: float = 0.25
    max_angular_speed: float = 1.0
    home_pos: tuple = (0.45, 0.0, 0.25)
    home_quat: tuple = (1.0, 0.0, 0.0, 0.0)
    home_tolerance_m: float = 0.01
    home_timeout_s: float = 10.0
    task_state_topic: str | None = "/sim_robot/task_state"
    reset_service: str | None = "/sim_robot/reset"

    def __post_init__(self) -> None:
        if self.command_mode not in COMMAND_MODES:
            raise ValueError(f"command_mode must be one of {COMMAND_MODES}, got {self.command_mode!r}")
        if self.gripper_state_type not in GRIPPER_STATE_TYPES:
            raise ValueError(f"gripper_state_type must be one of {GRIPPER_STATE_TYPES}, got {self.gripper_state_type!r}")
        if self.gripper_command_type not in GRIPPER_COMMAND_TYPES:
            raise ValueError(
                f"gripper_command_type must be one of {GRIPPER_COMMAND_TYPES}, got {self.gripper_command_type!r}")
        for key in ("state_qos", "command_qos"):
            if getattr(self, key) not in QOS_NAMES:
                raise ValueError(f"{key} must be one of {QOS_NAMES}, got {getattr(self, key)!r}")
        for key in ("max_state_age_s", "connect_timeout_s", "gripper_max_width", "twist_gain",
                    "max_linear_speed", "max_angular_speed", "home_tolerance_m", "home_timeout_s"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{key} must be > 0, got {getattr(self, key)}")
        self.joint_names = list(self.joint_names or [])
        self.home_pos = tuple(float(v) for v in self.home_pos)
        self.home_quat = tuple(float(v) for v in self.home_quat)
        if len(self.home_pos) != 3 or len(self.home_quat) != 4:
            raise ValueError(f"home_pos must be xyz and home_quat xyzw, got {self.home_pos}, {self.home_quat}")
