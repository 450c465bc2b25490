"""A sim-robot node killed mid-episode: the env raises StaleDataError promptly, never hangs."""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import robot_env
from robot_env.hardware import DeviceError, StaleDataError
from robot_env.ros import runtime
from tests.robot_env._sim_robot_proc import profile, start_sim_robot, stop

pytestmark = [pytest.mark.ros, pytest.mark.timeout(120)]


def test_killed_sim_node_makes_the_env_raise(tmp_path):
    proc = start_sim_robot(tmp_path / "run", "camera={}")  # state only: the fastest start
    # limits sized for a CPU-starved CI box, so nothing trips before the kill
    env = robot_env.make_env({"robot": {**profile("robot", "ros_sim"), "max_state_age_s": 0.5},
                              "task": {"name": "reach"},
                              "control": {"mode": "realtime", "max_state_age_s": 0.6}})
    try:
        obs, info = env.reset(seed=0)
        for _ in range(5):
            obs, *_ = env.step(np.zeros(7, np.float32))
        proc.send_signal(signal.SIGKILL)  # no goodbye: the process is just gone
        proc.wait(timeout=10)
        killed = time.monotonic()
        with pytest.raises(StaleDataError, match="stalled or gone|old"):
            for _ in range(100):  # 10 s of steps at 10 Hz if it never raised
                env.step(np.zeros(7, np.float32))
        waited = time.monotonic() - killed
        print(f"\nenv raised {waited:.2f} s after the sim node was SIGKILLed")
        assert waited < 2.0
        with pytest.raises(DeviceError):  # reset cannot silently succeed either
            env.unwrapped.arm.move_home()
    finally:
        env.close()
        stop(proc)
    assert runtime.active_nodes() == 0
