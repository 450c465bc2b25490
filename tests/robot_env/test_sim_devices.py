"""The sim arm and camera as registered hardware: lifecycle, commands, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from robot_env.geometry import apply_rotvec, quat_angle
from robot_env.hardware import ARMS, CAMERAS, DeviceError
import robot_env.sim.devices  # noqa: F401  (registers ARMS["mujoco"], CAMERAS["mujoco"])
from robot_env.sim.world import SimWorld


def test_standalone_arm_lifecycle_and_commands():
    arm = ARMS.make({"type": "mujoco", "task": "reach"})
    with pytest.raises(DeviceError, match="not connected"):
        arm.read_state()
    with arm:
        world = arm.world
        state = arm.read_state()
        assert state.ee_pos.shape == (3,) and state.joint_pos.shape == (7,) and state.wrench.shape == (6,)
        target = state.ee_pos + np.array([0.05, -0.03, 0.02])
        quat = apply_rotvec(state.ee_quat, [0.0, 0.0, 0.3])
        arm.command_pose(target, quat)
        arm.command_gripper(0.0)
        world.step(1.0)
        state = arm.read_state()
        assert np.linalg.norm(state.ee_pos - target) < 0.003
        assert quat_angle(state.ee_quat, quat) < 0.01
        assert state.gripper_width < 0.01
        arm.move_home()
        assert np.linalg.norm(arm.read_state().ee_pos - np.asarray(world.task_config.home_pos)) < 0.006
        arm.stop()
        with pytest.raises(ValueError, match="bad TCP target"):
            arm.command_pose(np.array([np.nan, 0, 0]), quat)
    assert not arm.is_connected


def test_camera_needs_a_world_and_a_known_camera():
    with pytest.raises(DeviceError, match="world"):
        CAMERAS.make({"type": "mujoco"}).connect()
    world = SimWorld("reach")
    with pytest.raises(DeviceError, match="no camera"):
        CAMERAS.make({"type": "mujoco", "camera": "ceiling"}, world=world).connect()
    cam = CAMERAS.make({"type": "mujoco", "camera": "wrist", "height": 48, "width": 64}, world=world)
    with cam:
        frame = cam.read()
    assert frame.color.shape == (48, 64, 3) and frame.color.dtype == np.uint8
    assert cam.shape == (48, 64)
    world.close()
