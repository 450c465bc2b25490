"""The MuJoCo ``SimWorld`` as a ROS2 robot, behind exactly the ``sim`` profile's topics.

One thread owns the physics (``run()``): at ``state_hz`` it applies the newest command,
steps physics by one period (real time, absolute deadlines) and publishes the arm state
and the task report; at ``camera_hz`` it hands a copy of the joint state to a render
thread, which renders each camera from its own ``MjData`` and publishes the images (a
software render takes tens of ms and must not delay the state stream). ROS callbacks (on
the shared executor thread) only store commands behind a lock.

Robot-side safety, as a real controller would have it:
    * command watchdog: no fresh pose/twist command for ``command_timeout_s`` -> hold the
      current pose (a stale target is never executed; an actor that dies stops the arm);
    * a command whose header stamp is older than ``max_command_age_s`` is dropped;
    * the e-stop topic (``std_msgs/Bool``) holds the arm and ignores commands while True;
    * targets are clipped to the task workspace.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from typing import Any

import numpy as np

from robot_env.geometry import apply_rotvec, quat_normalize, slerp
from robot_env.ros import runtime
from robot_env.ros.arm_config import RosArmConfig
from robot_env.ros.task_feed import encode_report

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SimRobotConfig:
    """Settings of the sim-robot node (topics come from the arm and camera profiles).

    Attributes:
        state_hz: physics step and arm-state publish rate, Hz (>= 100).
        camera_hz: camera render/publish rate, Hz.
        report_hz: task report (success, task state) publish rate, Hz.
        command_timeout_s: watchdog: hold the current pose after this long without a command, s.
        max_command_age_s: drop commands whose header stamp is older than this, s (same-host clock).
        seed: seed of the first randomised reset.
        duration_s: stop after this long (null = run until Ctrl-C), s.
        ping_topic: ``std_msgs/Header`` echoed at once on ``pong_topic`` (ROS2 round-trip probe).
        pong_topic: where pings are echoed.
    """

    state_hz: float = 125.0
    camera_hz: float = 10.0
    report_hz: float = 25.0
    command_timeout_s: float = 0.5
    max_command_age_s: float = 0.5
    seed: int = 0
    duration_s: float | None = None
    ping_topic: str = "/sim_robot/ping"
    pong_topic: str = "/sim_robot/pong"

    def __post_init__(self) -> None:
        if self.state_hz < 100:
            raise ValueError(f"state_hz must be >= 100, got {self.state_hz}")
        if not 0 < self.camera_hz <= self.state_hz:
            raise ValueError(f"camera_hz must be in (0, state_hz], got {self.camera_hz}")
        if self.command_timeout_s <= 0 or self.max_command_age_s <= 0:
            raise ValueError("command_timeout_s and max_command_age_s must be > 0")


class SimRobotNode:
    """Publishes a ``SimWorld`` on ROS2 and executes commands sent to it.

    Args:
        world: the ``SimWorld`` (owned by the thread that calls ``run()``).
        arm: the ``sim`` arm profile (topic names, frames).
        cameras: camera name -> ``{"topic": ..., "height": ..., "width": ...}``.
        cfg: node settings.
    """

    def __init__(self, world: Any, arm: RosArmConfig, cameras: dict[str, dict], cfg: SimRobotConfig) -> None:
        self.world, self.arm, self.cameras, self.cfg = world, arm, cameras, cfg
        self._lock = threading.Lock()
        self._pose_cmd: tuple[float, np.ndarray, np.ndarray] | None = None
        self._twist_cmd: tuple[float, np.ndarray] | None = None
        self._gripper_cmd: float | None = None
        self._estop = False
        self._reset_request = threading.Event()
        self._reset_done = threading.Condition(self._lock)
        self.episode = 0
        self.holding = True  # no command yet: hold
        self.stats = {"ticks": 0, "overruns": 0, "stale_commands": 0, "watchdog_holds": 0, "frames": 0}
        self._stop = threading.Event()
        self._snap = None
        self._snap_ready = threading.Event()
        self._ramp: tuple | None = None  # (command stamp, start time, duration, start pose, goal pose)
        self.node = None

    # ------------------------------------------------------------------ ROS side (executor thread)
    def _open(self) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Bool, Float64, String
        from std_srvs.srv import Trigger

        a = self.arm
        node = self.node = runtime.create_node("sim_robot")
        state_qos, cmd_qos = runtime.make_qos(a.state_qos), runtime.make_qos(a.command_qos)
        self.pub = {
            "joints": node.create_publisher(JointState, a.joint_states_topic, state_qos),
            "pose": node.create_publisher(PoseStamped, a.ee_pose_topic, state_qos),
            "twist": node.create_publisher(TwistStamped, a.ee_twist_topic, state_qos),
            "wrench": node.create_publisher(WrenchStamped, a.wrench_topic, state_qos),
            "gripper": node.create_publisher(Float64, a.gripper_state_topic, state_qos),
            "task": node.create_publisher(String, a.task_state_topic, runtime.make_qos("reliable", 5)),
        }
        self.image_pub = {name: node.create_publisher(Image, c["topic"], runtime.make_qos("sensor_data"))
                          for name, c in self.cameras.items()}
        node.create_subscription(PoseStamped, a.pose_command_topic, self._on_pose, cmd_qos)
        node.create_subscription(TwistStamped, a.twist_command_topic, self._on_twist, cmd_qos)
        node.create_subscription(Float64, a.gripper_command_topic, self._on_gripper, runtime.make_qos("reliable", 10))
        node.create_subscription(Bool, a.estop_topic, self._on_estop, runtime.make_qos("reliable", 10))
        node.create_service(Trigger, a.reset_service, self._on_reset)
        from std_msgs.msg import Header

        pong = node.create_publisher(Header, self.cfg.pong_topic, runtime.make_qos("reliable", 10))
        node.create_subscription(Header, self.cfg.ping_topic, pong.publish, runtime.make_qos("reliable", 10))

    def _fresh(self, header: Any) -> bool:
        age = (self.node.get_clock().now().nanoseconds * 1e-9) - runtime.stamp_to_seconds(header.stamp)
        if age > self.cfg.max_command_age_s:
            self.stats["stale_commands"] += 1
            return False
        return True

    def _on_pose(self, msg: Any) -> None:
        p, o = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([o.x, o.y, o.z, o.w])
        if not self._fresh(msg.header) or not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            return
        if np.linalg.norm(quat) < 0.5:
            return
        with self._lock:
            self._pose_cmd, self._twist_cmd = (time.monotonic(), pos, quat_normalize(quat)), None

    def _on_twist(self, msg: Any) -> None:
        v, w = msg.twist.linear, msg.twist.angular
        twist = np.array([v.x, v.y, v.z, w.x, w.y, w.z])
        if self._fresh(msg.header) and np.all(np.isfinite(twist)):
            with self._lock:
                self._twist_cmd, self._pose_cmd = (time.monotonic(), twist), None

    def _on_gripper(self, msg: Any) -> None:
        if np.isfinite(msg.data):
            with self._lock:
                self._gripper_cmd = float(msg.data)

    def _on_estop(self, msg: Any) -> None:
        with self._lock:
            self._estop = bool(msg.data)

    def _on_reset(self, request: Any, response: Any) -> Any:
        with self._lock:
            target = self.episode + 1
            self._reset_request.set()
            ok = self._reset_done.wait_for(lambda: self.episode >= target or self._stop.is_set(), timeout=10.0)
        response.success = bool(ok and self.episode >= target)
        response.message = json.dumps({"episode": self.episode})
        return response

    # ------------------------------------------------------------------ physics thread
    def _apply_commands(self, now: float, dt: float) -> None:
        w, tc = self.world, self.world.task_config
        with self._lock:
            pose, twist, grip, estop = self._pose_cmd, self._twist_cmd, self._gripper_cmd, self._estop
            self._gripper_cmd = None
        last = pose[0] if pose else (twist[0] if twist else None)
        if estop or last is None or now - last > self.cfg.command_timeout_s:
            if not self.holding:  # freeze where the arm is now; never chase the old target
                self.stats["watchdog_holds"] += 0 if estop else 1
                log.warning("sim robot: %s: holding the current pose",
                            "e-stop" if estop else f"no command for {self.cfg.command_timeout_s} s")
                w.set_ee_target(w.tcp_pos(), w.tcp_quat())
                self.holding = True
                self._ramp = None
            return
        self.holding = False
        if pose is not None:
            target_pos, target_quat = self._ramped(pose, now)
        else:
            cur_pos, cur_quat = w.ee_target()
            target_pos = cur_pos + twist[1][:3] * dt
            target_quat = apply_rotvec(cur_quat, twist[1][3:] * dt)
        w.set_ee_target(np.clip(target_pos, tc.workspace_low, tc.workspace_high), target_quat)
        if grip is not None:
            w.set_gripper(grip)

    def _ramped(self, pose: tuple, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Setpoint on the way to the newest pose target.

        A real impedance controller filters its equilibrium target; here each new target is
        approached with the in-process sim's profile (cosine speed, ``ramp_fraction`` of the
        interval between commands), so a 10 Hz command stream moves the arm as smoothly
        over ROS2 as it does in process.
        """
        stamp, goal_pos, goal_quat = pose
        if self._ramp is None or self._ramp[0] != stamp:
            prev = self._ramp[0] if self._ramp is not None else None
            interval = 0.1 if prev is None else float(np.clip(stamp - prev, 0.01, 0.2))
            start_pos, start_quat = self.world.ee_target()
            fraction = getattr(self.world.config, "ramp_fraction", 0.6)
            self._ramp = (stamp, now, fraction * interval, start_pos, start_quat, goal_pos, goal_quat)
        _, t0, duration, start_pos, start_quat, goal_pos, goal_quat = self._ramp
        t = min(1.0, (now - t0) / max(duration, 1e-6))
        frac = 0.5 - 0.5 * np.cos(np.pi * t)
        return start_pos + frac * (goal_pos - start_pos), slerp(start_quat, goal_quat, frac)

    def _reset_world(self) -> None:
        self.world.reset(seed=self.cfg.seed if self.episode == 0 else None)
        with self._lock:
            self._pose_cmd = self._twist_cmd = self._gripper_cmd = None
            self.holding = True
            self._ramp = None
            self.episode += 1
            self._reset_request.clear()
            self._reset_done.notify_all()

    def _publish_state(self, with_report: bool = True) -> None:
        from geometry_msgs.msg import PoseStamped, TwistStamped, WrenchStamped
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64, String

        s, frame = self.world.arm_state(), self.arm.base_frame
        now = self.node.get_clock().now().to_msg()
        js = JointState(name=[f"joint{i}" for i in range(1, 8)], position=[float(v) for v in s.joint_pos])
        js.header.stamp = now
        ps = PoseStamped()
        ps.header.stamp, ps.header.frame_id = now, frame
        ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = (float(v) for v in s.ee_pos)
        o = ps.pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in s.ee_quat)
        tw = TwistStamped()
        tw.header.stamp, tw.header.frame_id = now, frame
        l, a = tw.twist.linear, tw.twist.angular
        l.x, l.y, l.z, a.x, a.y, a.z = (float(v) for v in s.ee_twist)
        wr = WrenchStamped()
        wr.header.stamp, wr.header.frame_id = now, frame
        f, t = wr.wrench.force, wr.wrench.torque
        f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in s.wrench)
        for key, msg in (("joints", js), ("pose", ps), ("twist", tw), ("wrench", wr)):
            self.pub[key].publish(msg)
        self.pub["gripper"].publish(Float64(data=float(s.gripper_width)))
        if with_report:
            w = self.world
            self.pub["task"].publish(String(data=encode_report(
                self.episode, w.success(), w.failure(), w.time, w.task_state())))

    def _snapshot(self) -> None:
        """Hand the render thread a copy of the physics state (latest wins, never queued)."""
        d = self.world.data
        snap = (d.qpos.copy(), d.mocap_pos.copy(), d.mocap_quat.copy(), self.node.get_clock().now().to_msg())
        with self._lock:
            self._snap = snap
        self._snap_ready.set()

    def _render_loop(self) -> None:
        """Render thread: owns its GL contexts and its own MjData, so a slow software render
        (tens of ms on llvmpipe) never delays the state loop."""
        import mujoco
        from sensor_msgs.msg import Image

        model = self.world.model
        data = mujoco.MjData(model)
        renderers = {}
        try:
            while not self._stop.is_set():
                if not self._snap_ready.wait(0.1):
                    continue
                self._snap_ready.clear()
                with self._lock:
                    qpos, mocap_pos, mocap_quat, stamp = self._snap
                data.qpos[:], data.mocap_pos[:], data.mocap_quat[:] = qpos, mocap_pos, mocap_quat
                mujoco.mj_forward(model, data)
                for name, c in self.cameras.items():
                    key = (int(c["height"]), int(c["width"]))
                    if key not in renderers:
                        renderers[key] = mujoco.Renderer(model, height=key[0], width=key[1])
                        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                                     mujoco.mjtRndFlag.mjRND_SKYBOX):
                            renderers[key].scene.flags[flag] = 0
                    renderers[key].update_scene(data, camera=c.get("camera", name))
                    rgb = renderers[key].render()
                    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
                    msg.header.stamp, msg.header.frame_id = stamp, f"{name}_camera"
                    msg.data = rgb.tobytes()
                    self.image_pub[name].publish(msg)
                    self.stats["frames"] += 1
        finally:
            for r in renderers.values():
                r.close()

    def stop(self) -> None:
        """Ask ``run()`` to return (thread-safe)."""
        self._stop.set()

    def run(self) -> dict[str, int]:
        """Serve until ``stop()``, Ctrl-C or ``duration_s``; returns counters."""
        self._open()
        self._reset_world()
        dt = 1.0 / self.cfg.state_hz
        cam_every = max(1, round(self.cfg.state_hz / self.cfg.camera_hz))
        report_every = max(1, round(self.cfg.state_hz / self.cfg.report_hz))
        t0 = time.monotonic()
        end = None if self.cfg.duration_s is None else t0 + self.cfg.duration_s
        log.info("sim robot: %s at %.0f Hz, cameras %s at %.0f Hz", self.world.task_config.name,
                 self.cfg.state_hz, list(self.cameras), self.cfg.state_hz / cam_every)
        renderer = threading.Thread(target=self._render_loop, name="sim-robot-render", daemon=True)
        if self.cameras:
            renderer.start()
        try:
            i = 0
            while not self._stop.is_set() and (end is None or time.monotonic() < end):
                if self._reset_request.is_set():
                    self._reset_world()
                self._apply_commands(time.monotonic(), dt)
                self.world.step(dt)
                self._publish_state(with_report=i % report_every == 0)
                if i % cam_every == 0 and self.cameras:
                    self._snapshot()
                i += 1
                self.stats["ticks"] = i
                deadline = t0 + i * dt
                lag = time.monotonic() - deadline
                if lag > 0:
                    # late (CPU starved): catch up tick by tick so sim time keeps pace with the
                    # wall clock and the state rate holds on average; re-anchor only when hopeless
                    self.stats["overruns"] += 1
                    if lag > 1.0:
                        t0 = time.monotonic() - i * dt
                else:
                    time.sleep(-lag)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop.set()
            with self._lock:
                self._reset_done.notify_all()
            if renderer.is_alive():
                renderer.join(timeout=2.0)
            runtime.destroy_node(self.node)
            self.world.close()
        return dict(self.stats)
