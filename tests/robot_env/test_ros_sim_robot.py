"""Simulated hardware in the loop: ``hilr sim-robot`` in its own process, ``RobotEnv`` over ROS2.

The env uses the shipped ``robot=ros_sim camera=ros_sim`` profiles, so every observation
and command crosses DDS on loopback exactly as on a robot PC.
"""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import robot_env
from robot_env.hardware import ARMS
from robot_env.ros import runtime
from robot_env.sim.experts import make_expert
from tests.robot_env._sim_robot_proc import profile, start_sim_robot, stop

pytestmark = [pytest.mark.ros, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def sim_robot(tmp_path_factory):
    proc = start_sim_robot(tmp_path_factory.mktemp("sim_robot") / "run", "node.command_timeout_s=0.5")
    yield proc
    stop(proc)
    assert proc.returncode == 0, proc.log_path.read_text()[-3000:]


def _env():
    # staleness limits sized for a CPU-starved 2-core CI box (the defaults are 2.5 control periods)
    cameras = {name: {**spec, "max_age_s": 0.6} for name, spec in profile("camera", "ros_sim").items()}
    return robot_env.make_env({"robot": profile("robot", "ros_sim"), "camera": cameras,
                               "task": {"name": "pick_cube"},
                               "control": {"mode": "realtime", "max_state_age_s": 0.3, "max_frame_age_s": 0.6}})


def test_expert_succeeds_through_ros2(sim_robot):
    env = _env()
    expert = make_expert("pick_cube", noise=0.05, seed=0)
    successes, steps_run = [], 0
    try:
        for episode in range(2):
            obs, info = env.reset(seed=episode)
            assert obs["front"].shape == (128, 128, 3) and obs["wrist"].shape == (128, 128, 3)
            assert obs["front"].std() > 5 and obs["wrist"].std() > 5  # real renders, not blanks
            cube0 = info["task_state"]["cube_pos"].copy()
            expert.reset()
            for _ in range(env.unwrapped.task.episode_steps):
                obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
                steps_run += 1
                if terminated or truncated:
                    break
            successes.append(bool(info["success"]))
            assert info["task_state"]["cube_pos"][2] > cube0[2] + 0.05 or not info["success"]
        overruns = info["control_overruns"]
    finally:
        env.close()
    print(f"\nHIL pick_cube over ROS2: successes {successes}, {steps_run} steps, "
          f"{overruns} overruns in the last episode")
    assert all(successes)
    assert runtime.active_nodes() == 0


def test_a_frozen_robot_is_held_and_the_episode_goes_on(sim_robot):
    """The robot process frozen for 0.5 s (SIGSTOP): every stream arrives late at once, as in
    issue 14 (``joint_states`` 265 ms old killed the actor). The env holds the arm, counts the
    held step and goes on with fresh data; the episode does not end."""
    env = _env()  # default stale policy: hold
    thaw = threading.Timer(0.5, sim_robot.send_signal, args=(signal.SIGCONT,))
    try:
        env.reset(seed=5)
        for _ in range(3):
            env.step(np.zeros(7, np.float32))
        sim_robot.send_signal(signal.SIGSTOP)
        thaw.start()
        infos = []
        for _ in range(10):
            _, _, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            assert not truncated and not info["stale_abort"]
            infos.append(info)
        held = [round(i["stale_held_s"], 2) for i in infos if i["stale_hold"]]
        print(f"\nsim robot frozen 0.5 s: {infos[-1]['stale_steps']} held step(s) {held} s, episode went on")
        assert infos[-1]["stale_steps"] >= 1 and not infos[-1]["stale_hold"]  # fresh again at the end
    finally:
        thaw.cancel()
        sim_robot.send_signal(signal.SIGCONT)
        env.close()


def test_state_stream_rate_and_camera_rate(sim_robot):
    """Rates at the publisher, from header stamps received through a deep best-effort queue
    (so a CPU-starved test process does not count its own lag against the node)."""
    from sensor_msgs.msg import Image, JointState

    arm_cfg = profile("robot", "ros_sim")
    cam_cfg = profile("camera", "ros_sim")
    node = runtime.create_node("rate_probe")
    stamps = {"joints": [], "front": []}
    deep = runtime.make_qos("best_effort", 500)
    node.create_subscription(JointState, arm_cfg["joint_states_topic"],
                             lambda m: stamps["joints"].append(runtime.stamp_to_seconds(m.header.stamp)), deep)
    node.create_subscription(Image, cam_cfg["front"]["topic"],
                             lambda m: stamps["front"].append(runtime.stamp_to_seconds(m.header.stamp)), deep)
    try:
        deadline = time.monotonic() + 30  # node start-up + discovery
        while not all(stamps.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        for v in stamps.values():
            v.clear()
        time.sleep(4.0)
    finally:
        runtime.destroy_node(node)
    rate = {k: (len(set(v)) - 1) / (max(v) - min(v)) for k, v in stamps.items()}
    print(f"\nsim-robot measured: arm state {rate['joints']:.0f} Hz, front camera {rate['front']:.1f} Hz "
          f"(publisher stamps)")
    # nominal 125 Hz and 10 Hz; the bounds leave room for a starved CI box (measured 60 Hz for the
    # arm state at load average 10 on 2 cores) while a stream that stalls or floods still fails
    assert 40 <= rate["joints"] <= 140
    assert 3 <= rate["front"] <= 11


def _arm(**kw):
    spec = {**profile("robot", "ros_sim"), **kw}
    return ARMS.make(spec)


def _wait_settled(arm, seconds=0.3):
    time.sleep(seconds)
    return arm.read_state().ee_pos


def test_watchdog_holds_when_commands_stop(sim_robot):
    """A twist sent once and never again: the robot moves briefly, then the watchdog holds."""
    with _arm(command_mode="twist", max_linear_speed=0.1) as arm:
        arm.read_state()
        start = arm.read_state().ee_pos
        arm.command_twist(np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0]))  # +z 0.1 m/s, then the "actor dies"
        time.sleep(1.2)  # watchdog 0.5 s
        held = arm.read_state().ee_pos
        time.sleep(1.0)
        later = arm.read_state().ee_pos
        moved = held[2] - start[2]
        print(f"\nwatchdog: moved {moved * 1e3:.1f} mm in the 0.5 s before holding, "
              f"{abs(later[2] - held[2]) * 1e3:.2f} mm in the next 1 s")
        assert 0.01 < moved < 0.09  # it did move, and stopped well before 1.2 s * 0.1 m/s
        assert abs(later[2] - held[2]) < 0.003


def test_estop_halts_motion(sim_robot):
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import Bool

    arm_cfg = profile("robot", "ros_sim")
    node = runtime.create_node("estop_button")
    button = node.create_publisher(Bool, arm_cfg["estop_topic"], runtime.make_qos("reliable", 10))
    try:
        with _arm() as arm:
            time.sleep(0.5)
            button.publish(Bool(data=True))
            deadline = time.monotonic() + 3
            while not arm.estopped and time.monotonic() < deadline:
                time.sleep(0.01)
            assert arm.estopped
            before = arm.read_state()
            target = before.ee_pos + np.array([0.0, 0.0, 0.05])
            for _ in range(10):  # the actor keeps trying: dropped here, and ignored by the robot
                arm.command_pose(target, before.ee_quat)
                time.sleep(0.05)
            # a second, misbehaving client that ignores the e-stop: the robot side holds anyway
            rogue = node.create_publisher(PoseStamped, arm_cfg["pose_command_topic"], runtime.make_qos("reliable"))
            for _ in range(10):
                msg = PoseStamped()
                msg.header.stamp, msg.header.frame_id = node.get_clock().now().to_msg(), "base"
                msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in target)
                o = msg.pose.orientation
                o.x, o.y, o.z, o.w = (float(v) for v in before.ee_quat)
                rogue.publish(msg)
                time.sleep(0.05)
            after = arm.read_state()
            assert np.linalg.norm(after.ee_pos - before.ee_pos) < 0.003 and arm.dropped_commands == 10
            button.publish(Bool(data=False))
            time.sleep(0.3)
            for _ in range(20):
                arm.command_pose(target, before.ee_quat)
                time.sleep(0.05)
            assert arm.read_state().ee_pos[2] > before.ee_pos[2] + 0.03  # moves again once released
    finally:
        runtime.destroy_node(node)


def test_stale_commands_are_dropped_by_the_robot(sim_robot):
    """A target stamped 2 s ago (a replayed or delayed message) is never executed."""
    from geometry_msgs.msg import PoseStamped
    from rclpy.duration import Duration

    arm_cfg = profile("robot", "ros_sim")
    with _arm() as arm:
        node = runtime.create_node("replayer")
        pub = node.create_publisher(PoseStamped, arm_cfg["pose_command_topic"], runtime.make_qos("reliable"))
        try:
            before = arm.read_state()
            for _ in range(10):
                msg = PoseStamped()
                msg.header.stamp = (node.get_clock().now() - Duration(seconds=2.0)).to_msg()
                msg.header.frame_id = "base"
                msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (
                    float(before.ee_pos[0]), float(before.ee_pos[1]), float(before.ee_pos[2] + 0.05))
                o = msg.pose.orientation
                o.x, o.y, o.z, o.w = (float(v) for v in before.ee_quat)
                pub.publish(msg)
                time.sleep(0.05)
            time.sleep(0.3)
            assert np.linalg.norm(arm.read_state().ee_pos - before.ee_pos) < 0.003
        finally:
            runtime.destroy_node(node)


def test_reset_service_randomises_the_scene(sim_robot):
    from robot_env.ros.task_feed import RosTaskFeed

    with _arm() as arm:
        feed = arm.task_feed()
        assert isinstance(feed, RosTaskFeed)
        cubes = []
        for _ in range(2):
            feed.reset()
            cubes.append(feed.task_state()["cube_pos"].copy())
            assert not feed.success({})
        assert np.linalg.norm(cubes[0][:2] - cubes[1][:2]) > 1e-3  # a new random placement
