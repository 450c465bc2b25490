"""Safety: NaN/inf refused, out-of-bounds clipped before the arm and reported, stale state raises."""

from __future__ import annotations

import time

import numpy as np
import pytest

import robot_env
from robot_env.env import STATE_LAYOUT, InvalidActionError
from robot_env.geometry import quat_angle
from robot_env.hardware import StaleDataError


@pytest.fixture
def env():
    e = robot_env.make_env({"task": {"name": "pick_cube"}})
    yield e
    e.close()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_is_refused_and_never_reaches_the_arm(env, bad):
    env.reset(seed=0)
    world = env.unwrapped.world
    before = world.ee_target()
    action = np.zeros(7, np.float32)
    action[4] = bad
    with pytest.raises(InvalidActionError, match=r"non-finite entries at indices \[4\]"):
        env.step(action)
    after = world.ee_target()
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    env.step(np.zeros(7, np.float32))  # the env is still usable


def test_wrong_shape_is_refused(env):
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match="shape"):
        env.step(np.zeros(6, np.float32))


def test_workspace_box_clips_before_the_arm_and_reports(env):
    env.reset(seed=0)
    task, world = env.unwrapped.task, env.unwrapped.world
    up = np.array([0, 0, 1, 0, 0, 0, -1], np.float32)
    clipped_steps = 0
    for _ in range(15):
        obs, _, _, _, info = env.step(up)
        target_pos, _ = world.ee_target()
        assert target_pos[2] <= task.workspace_high[2] + 1e-9, "target above the workspace reached the arm"
        if info["safety_clipped"]:
            clipped_steps += 1
            assert "workspace" in info["safety_reasons"]
            assert info["safe_action"][2] < 1.0
    assert clipped_steps > 5
    assert obs["state"][2] == pytest.approx(task.workspace_high[2], abs=0.01)


def test_out_of_range_action_and_step_limit_are_clipped(env):
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0, 0, 0, 0, 0, 0, 5.0], np.float32))
    assert info["safety_clipped"] and "action_range" in info["safety_reasons"]
    # (1, 1, 1) * 0.03 m has norm 0.052 > max_step_translation 0.04
    obs, _, _, _, info = env.step(np.array([1, 1, -1, 0, 0, 0, -1], np.float32))
    assert "step_translation" in info["safety_reasons"]
    safe = info["safe_action"][:3] * env.unwrapped.task.max_translation
    assert np.linalg.norm(safe) <= env.unwrapped.task.max_step_translation + 1e-6


def test_orientation_cone_clips_rotation(env):
    env.reset(seed=0)
    task, world = env.unwrapped.task, env.unwrapped.world
    home = np.asarray(task.home_quat)
    reported = False
    for _ in range(12):
        _, _, _, _, info = env.step(np.array([0, 0, 0, 1, 0, 0, -1], np.float32))
        _, target_quat = world.ee_target()
        assert quat_angle(target_quat, home) <= task.max_angle_from_home + 1e-6
        reported |= "orientation" in info["safety_reasons"]
    assert reported


def test_stale_state_raises_and_does_not_act():
    env = robot_env.make_env({"task": {"name": "reach"},
                              "control": {"mode": "realtime", "max_state_age_s": 0.15, "stale": {"policy": "raise"}}})
    env.reset(seed=0)
    env.step(np.zeros(7, np.float32))
    world = env.unwrapped.world
    before = world.ee_target()
    time.sleep(0.3)  # nothing advanced the sensor stream: the newest state is now old
    with pytest.raises(StaleDataError, match="old"):
        env.step(np.array([1, 0, 0, 0, 0, 0, -1], np.float32))
    assert np.array_equal(before[0], world.ee_target()[0])
    env.close()


def test_state_layout_and_quaternion_sign_is_continuous(env):
    obs, _ = env.reset(seed=3)
    quats = []
    for i in range(20):
        yaw = 0.5 if i < 10 else -0.5
        obs, *_ = env.step(np.array([0, 0, 0, 0, 0, yaw, -1], np.float32))
        quats.append(obs["state"][STATE_LAYOUT["ee_quat"]])
    quats = np.array(quats)
    np.testing.assert_allclose(np.linalg.norm(quats, axis=1), 1.0, atol=1e-5)
    assert np.all(quats @ np.asarray(env.unwrapped.task.home_quat) >= 0)
    assert np.max(np.linalg.norm(np.diff(quats, axis=0), axis=1)) < 0.2  # no sign flips
