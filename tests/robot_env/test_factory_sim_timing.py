"""The in-process sim is never stale: `make_env` sets age limits only for asynchronous devices.

`hilr record` (realtime, two sim cameras) failed on loaded machines with "camera 'front' frame
is 334-529 ms old": the age measured our own render and sleep time, not stale data.
"""

from __future__ import annotations

import time

import numpy as np

import robot_env


def test_realtime_sim_has_no_default_age_limits_and_survives_a_slow_step():
    cams = {"front": {"type": "mujoco"}, "wrist": {"type": "mujoco"}}
    env = robot_env.make_env({"task": {"name": "reach"}, "camera": cams, "control": {"mode": "realtime"}})
    assert env.unwrapped.control.max_frame_age_s is None and env.unwrapped.control.max_state_age_s is None
    env.reset(seed=0)
    for _ in range(2):
        time.sleep(0.4)  # a loaded machine: 4 control periods pass between steps
        obs, *_ = env.step(np.zeros(7, np.float32))
    assert obs["front"].shape == (128, 128, 3)
    env.close()


def test_explicit_age_limits_still_apply_in_sim():
    env = robot_env.make_env({"task": {"name": "reach"},
                              "control": {"mode": "realtime", "max_frame_age_s": 0.3, "max_state_age_s": 0.2}})
    assert (env.unwrapped.control.max_frame_age_s, env.unwrapped.control.max_state_age_s) == (0.3, 0.2)
    env.close()


def test_real_camera_with_the_sim_arm_says_what_to_pick():
    import pytest

    from robot_env.app import UserError

    with pytest.raises(UserError, match="use camera=sim .* with robot=sim, or pair camera=realsense with a real robot"):
        robot_env.make_env({"camera": {"front": {"type": "realsense"}}})
    with pytest.raises(UserError, match="with robot=ros_sim use camera=ros_sim"):
        robot_env.make_env({"robot": {"type": "ros"}, "camera": {"front": {"type": "mujoco"}}})
