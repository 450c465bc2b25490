"""Rotation maths of actions, fixed-rate control with overrun accounting, reset randomisation."""

from __future__ import annotations

import time

import numpy as np
import pytest

import robot_env
from robot_env.env import STATE_LAYOUT
from robot_env.geometry import apply_rotvec, matrix_to_quat, quat_angle, quat_to_matrix


def _euler_xyz(q):
    """Extrinsic roll-pitch-yaw of a quaternion (what an add-Euler controller integrates)."""
    m = quat_to_matrix(q)
    return np.array([np.arctan2(m[2, 1], m[2, 2]), -np.arcsin(np.clip(m[2, 0], -1, 1)),
                     np.arctan2(m[1, 0], m[0, 0])])


def _from_euler_xyz(rpy):
    r, p, y = rpy
    rx = np.array([[1, 0, 0], [0, np.cos(r), -np.sin(r)], [0, np.sin(r), np.cos(r)]])
    ry = np.array([[np.cos(p), 0, np.sin(p)], [0, 1, 0], [-np.sin(p), 0, np.cos(p)]])
    rz = np.array([[np.cos(y), -np.sin(y), 0], [np.sin(y), np.cos(y), 0], [0, 0, 1]])
    return matrix_to_quat(rz @ ry @ rx)


def test_rotation_action_rotates_as_a_rotation_not_an_euler_sum():
    env = robot_env.make_env({"task": {"name": "pick_cube", "reset_yaw_noise": 0.0}})
    obs, _ = env.reset(seed=0)
    q0 = obs["state"][STATE_LAYOUT["ee_quat"]].astype(float)
    max_rot = env.unwrapped.task.max_rotation
    action = np.array([0, 0, 0, 0.5, 0.5, 0.5, -1], np.float32)
    n = 5
    for _ in range(n):
        obs, _, _, _, info = env.step(action)
        assert not info["safety_clipped"]
    q = obs["state"][STATE_LAYOUT["ee_quat"]].astype(float)
    rv_total = n * action[3:6].astype(float) * max_rot
    as_rotation = apply_rotvec(q0, rv_total)                        # exp(rv) ⊗ q0, base axes
    as_euler_sum = _from_euler_xyz(_euler_xyz(q0) + rv_total)       # hil-serl's shortcut
    assert quat_angle(q, as_rotation) < 0.03
    assert quat_angle(as_rotation, as_euler_sum) > 0.2  # the two really differ here...
    assert quat_angle(q, as_euler_sum) > 0.15           # ...and the arm did not do the sum
    env.close()


def test_commanded_target_composes_rotation_vectors():
    env = robot_env.make_env({"task": {"name": "reach"}})
    obs, _ = env.reset(seed=2)
    action = np.array([0.2, -0.1, 0.3, 0.3, -0.4, 0.8, -1], np.float32)
    pos, quat = obs["state"][:3].astype(float), obs["state"][3:7].astype(float)
    _, _, _, _, info = env.step(action)
    task = env.unwrapped.task
    np.testing.assert_allclose(info["ee_target"][:3], pos + action[:3] * task.max_translation, atol=1e-6)
    expected = apply_rotvec(quat, action[3:6].astype(float) * task.max_rotation)
    assert quat_angle(info["ee_target"][3:], expected) < 1e-5
    env.close()


def test_realtime_mode_keeps_the_rate_with_absolute_deadlines():
    env = robot_env.make_env({"task": {"name": "reach", "control_hz": 20},
                              "control": {"mode": "realtime"}})
    env.reset(seed=0)
    t0 = time.monotonic()
    for _ in range(10):
        _, _, _, _, info = env.step(np.zeros(7, np.float32))
    elapsed = time.monotonic() - t0
    assert 0.48 <= elapsed < 0.65, elapsed
    assert info["control_overruns"] <= 2  # a shared CI box may preempt us once or twice
    env.close()


def test_overruns_are_counted_and_reset():
    cams = {"front": {"type": "mujoco"}, "wrist": {"type": "mujoco"}}
    env = robot_env.make_env({"task": {"name": "reach", "control_hz": 1000}, "camera": cams,
                              "control": {"mode": "realtime", "max_state_age_s": 60.0,
                                          "max_frame_age_s": 60.0}})  # overruns, not staleness, are tested
    env.reset(seed=0)
    counts = []
    for i in range(8):
        _, _, _, _, info = env.step(np.zeros(7, np.float32))
        counts.append(info["control_overruns"])
        # each period ends at its deadline, then the cameras render: two 128x128 software
        # renders take far longer than 1 ms, so every period after the first starts late
        if i > 0:
            assert info["control_lateness_s"] > 0
    assert counts == sorted(counts) and counts[-1] >= 7 - 1
    _, info = env.reset(seed=1)
    assert info["control_overruns"] == 0
    env.close()


def test_free_running_is_not_paced():
    env = robot_env.make_env({"task": {"name": "reach"}})
    env.reset(seed=0)
    t0 = time.monotonic()
    for _ in range(20):
        _, _, _, _, info = env.step(np.zeros(7, np.float32))
    assert time.monotonic() - t0 < 20 * env.unwrapped.dt / 2
    assert info["control_overruns"] == 0
    env.close()


@pytest.mark.parametrize(("task", "key"), [("reach", "target_pos"), ("pick_cube", "cube_pos"),
                                           ("peg_insert", "hole_pos")])
def test_reset_is_randomised_and_seeded(task, key):
    env = robot_env.make_env({"task": {"name": task}})
    starts, objects = [], []
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        starts.append(obs["state"][:3].copy())
        objects.append(info["task_state"][key].copy())
    assert np.min(np.ptp(np.array(objects)[:, :2], axis=0)) > 0.02  # objects move in x and y
    assert np.min(np.ptp(np.array(starts), axis=0)) > 0.005         # so does the TCP
    obs_a, info_a = env.reset(seed=3)
    np.testing.assert_allclose(obs_a["state"][:3], starts[3], atol=0)
    np.testing.assert_allclose(info_a["task_state"][key], objects[3], atol=0)
    env.close()


def test_zero_action_holds_the_pose():
    """A zero action must not creep: the target is the observed pose, so any force that
    pushes the TCP off its target (e.g. an elbow posture torque) would accumulate."""
    env = robot_env.make_env({"task": {"name": "pick_cube"}})
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        start = obs["state"][:7].copy()
        for _ in range(20):
            obs, *_ = env.step(np.array([0, 0, 0, 0, 0, 0, -1], np.float32))
        assert np.linalg.norm(obs["state"][:3] - start[:3]) < 0.001
        assert quat_angle(obs["state"][3:7], start[3:7]) < 0.002
    env.close()
