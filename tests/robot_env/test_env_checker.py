"""Every task passes gymnasium's env checker, state-only and with two cameras."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import robot_env

SIM_CAMERAS = {"front": {"type": "mujoco"}, "wrist": {"type": "mujoco", "camera": "wrist"}}


@pytest.mark.parametrize("task", ["reach", "pick_cube", "peg_insert"])
def test_check_env_state_only(task):
    env = robot_env.make_env({"robot": {"type": "mujoco"}, "camera": {}, "task": {"name": task}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert set(obs) == {"state"} and obs["state"].shape == (20,) and obs["state"].dtype == np.float32
    assert env.action_space.shape == (7,)
    for key in ("success", "is_success", "task_state", "safety_clipped", "control_overruns"):
        assert key in info
    env.close()


@pytest.mark.parametrize("task", ["reach", "pick_cube", "peg_insert"])
def test_check_env_with_images(task):
    env = robot_env.make_env({"camera": SIM_CAMERAS, "task": {"name": task, "image_size": [64, 80]}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    for name in ("front", "wrist"):
        img = obs[name]
        assert img.shape == (64, 80, 3) and img.dtype == np.uint8
        assert img.std() > 5, f"{name} image looks blank"
    assert not np.array_equal(obs["front"], obs["wrist"])
    env.close()
