"""ROS2 arm backend against a fake driver made of real rclpy publishers (loopback DDS)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_env.hardware import ARMS, DeviceError, StaleDataError
from robot_env.ros import RosArm, runtime
from tests.robot_env._ros_fakes import FakeDriver, arm_config, unique_prefix

pytestmark = pytest.mark.ros


@pytest.fixture
def rig():
    cfg = arm_config(unique_prefix())
    driver = FakeDriver(cfg)
    arm = ARMS.make(cfg)
    assert isinstance(arm, RosArm) and not arm.is_connected
    arm.connect()
    yield driver, arm
    arm.disconnect()
    driver.close()
    assert runtime.active_nodes() == 0  # the last node shut the runtime down


def test_state_is_read_without_spinning_and_commands_arrive(rig):
    driver, arm = rig
    state = arm.read_state()
    assert time.monotonic() - state.stamp < 0.5
    np.testing.assert_allclose(state.ee_pos, driver.pos)
    np.testing.assert_allclose(state.ee_quat, driver.quat)
    np.testing.assert_allclose(state.joint_pos, driver.joints)
    assert state.ee_twist[0] == pytest.approx(0.01) and state.wrench[2] == pytest.approx(-2.0)
    assert state.gripper_width == pytest.approx(0.05)
    arm.command_pose(np.array([0.41, 0.1, 0.3]), np.array([0.0, 1.0, 0.0, 0.0]))
    arm.command_gripper(0.5)  # clipped to the max width
    (pose,) = driver.wait_for("pose", 1)
    assert pose.header.frame_id == "base" and pose.pose.position.x == pytest.approx(0.41)
    assert pose.pose.orientation.y == pytest.approx(1.0)
    (grip,) = driver.wait_for("gripper", 1)
    assert grip.data == pytest.approx(0.085)


def test_bad_commands_never_reach_the_robot(rig):
    driver, arm = rig
    with pytest.raises(ValueError, match="nothing sent"):
        arm.command_pose(np.array([np.nan, 0, 0.3]), np.array([1.0, 0, 0, 0]))
    with pytest.raises(ValueError, match="nothing sent"):
        arm.command_pose(np.zeros(2), np.array([1.0, 0, 0, 0]))
    with pytest.raises(ValueError, match="nothing sent"):
        arm.command_gripper(float("inf"))
    time.sleep(0.2)
    assert driver.received("pose") == [] and driver.received("gripper") == []


def test_stale_state_raises_and_blocks_commands(rig):
    driver, arm = rig
    driver.publishing = False
    time.sleep(0.7)
    with pytest.raises(StaleDataError, match="ms old"):
        arm.read_state()
    with pytest.raises(StaleDataError):
        arm.command_pose(driver.pos, driver.quat)
    time.sleep(0.2)
    assert driver.received("pose") == []
    driver.publishing = True
    time.sleep(0.1)
    arm.read_state()  # fresh again


def test_malformed_state_is_a_clear_error(rig):
    driver, arm = rig
    driver.nan_joints = True
    time.sleep(0.1)
    with pytest.raises(DeviceError, match="non-finite joint position"):
        arm.read_state()


def test_estop_holds_and_drops_commands(rig):
    driver, arm = rig
    driver.estop(True)
    deadline = time.monotonic() + 2.0
    while not arm.estopped and time.monotonic() < deadline:
        time.sleep(0.01)
    assert arm.estopped
    (hold,) = driver.wait_for("pose", 1)  # one hold at the current pose when it trips
    assert hold.pose.position.x == pytest.approx(driver.pos[0])
    arm.command_pose(driver.pos + [0.05, 0, 0], driver.quat)
    arm.command_gripper(0.0)  # dropped silently (counted), never sent
    time.sleep(0.2)
    assert len(driver.received("pose")) == 1 and driver.received("gripper") == []
    assert arm.dropped_commands == 2
    with pytest.raises(DeviceError, match="e-stop"):
        arm.move_home()
    driver.estop(False)
    time.sleep(0.2)
    arm.command_pose(driver.pos, driver.quat)
    assert len(driver.wait_for("pose", 2)) == 2


def test_disconnect_sends_hold(rig):
    driver, arm = rig
    arm.disconnect()
    (hold,) = driver.wait_for("pose", 1)
    np.testing.assert_allclose([hold.pose.position.x, hold.pose.position.y], driver.pos[:2])


def test_twist_mode_servos_toward_pose_within_speed_limits():
    cfg = arm_config(unique_prefix(), command_mode="twist", max_linear_speed=0.1, twist_gain=2.0)
    driver = FakeDriver(cfg)
    try:
        with ARMS.make(cfg) as arm:
            # reliable keep-last-1 commands: latest wins, so wait for each before the next
            arm.command_pose(driver.pos + [0.01, 0.0, 0.0], driver.quat)
            driver.wait_for("twist", 1)
            arm.command_pose(driver.pos + [1.0, 0.0, 0.0], driver.quat)
            driver.wait_for("twist", 2)
            arm.command_twist(np.array([0.0, 0.0, 0.5, 0.0, 0.0, 0.0]))
            small, big, direct = driver.wait_for("twist", 3)
            assert small.twist.linear.x == pytest.approx(0.02)  # gain * error
            assert big.twist.linear.x == pytest.approx(0.1)  # clipped to max_linear_speed
            assert direct.twist.linear.z == pytest.approx(0.1)
            assert driver.received("pose") == []
        assert driver.wait_for("twist", 4)[-1].twist.linear.x == 0.0  # zero twist on disconnect
    finally:
        driver.close()


def test_pose_mode_refuses_twists(rig):
    _, arm = rig
    with pytest.raises(NotImplementedError, match="moveit_servo"):
        arm.command_twist(np.zeros(6))


def test_connect_without_driver_names_the_silent_topics():
    cfg = arm_config(unique_prefix(), connect_timeout_s=0.5)
    arm = ARMS.make(cfg)
    with pytest.raises(DeviceError, match=r"joint_states.*ee_pose"):
        arm.connect()
    assert not arm.is_connected and runtime.active_nodes() == 0


def test_profile_validation():
    with pytest.raises(ValueError, match="command_mode"):
        arm_config("/x", command_mode="torque")
    with pytest.raises(ValueError, match="gripper_command_type"):
        arm_config("/x", gripper_command_type="franka_msgs/Grasp")
