"""A sim-robot node killed mid-episode: the env holds, then ends the episode cleanly, never hangs."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import robot_env
from robot_env.hardware import DeviceError
from robot_env.ros import runtime
from robot_env.stale import DataLossError
from tests.robot_env._sim_robot_proc import profile, start_sim_robot, stop

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def test_killed_sim_node_ends_the_episode_cleanly(tmp_path):
    proc = start_sim_robot(tmp_path / "run", "camera={}")  # state only: the fastest start
    # limits sized for a CPU-starved CI box, so nothing trips before the kill
    env = robot_env.make_env({"robot": {**profile("robot", "ros_sim"), "max_state_age_s": 0.5},
                              "task": {"name": "reach"},
                              "control": {"mode": "realtime", "max_state_age_s": 0.6,
                                          "stale": {"policy": "hold", "max_consecutive_s": 1.0}}})
    try:
        obs, info = env.reset(seed=0)
        for _ in range(5):
            obs, *_ = env.step(np.zeros(7, np.float32))
        proc.send_signal(signal.SIGKILL)  # no goodbye: the process is just gone
        proc.wait(timeout=10)
        killed = time.monotonic()
        for _ in range(100):  # 10 s of steps at 10 Hz if it never ended
            obs, reward, terminated, truncated, info = env.step(np.zeros(7, np.float32))
            if truncated or terminated:
                break
        waited = time.monotonic() - killed
        print(f"\nepisode ended (stale_abort) {waited:.2f} s after the sim node was SIGKILLed")
        assert truncated and not terminated and info["stale_abort"] and "max_consecutive_s=1.0" in info["stale_error"]
        assert waited < 3.0
        with pytest.raises(DataLossError, match="robot driver stalled or gone"):  # reset cannot succeed either
            env.reset(seed=1)
        with pytest.raises(DeviceError):
            env.unwrapped.arm.move_home()
    finally:
        env.close()
        stop(proc)
    assert runtime.active_nodes() == 0
