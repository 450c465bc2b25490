"""The env's stale-data policy against a fake ROS2 driver (real rclpy publishers on loopback DDS).

A few hundred milliseconds of silence: the env holds the arm, counts and continues, and no
command reaches the arm while its state is stale. A sustained loss: the episode ends
cleanly (``truncated``, ``info["stale_abort"]``) and ``reset()`` raises ``DataLossError``.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest

import robot_env
from robot_env.hardware import StaleDataError
from robot_env.ros import runtime
from robot_env.stale import DataLossError
from tests.robot_env._ros_fakes import FakeDriver, arm_config, unique_prefix

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]
ARM_MAX_AGE_S = 0.1


def _rig(stale: dict, **arm_kw):
    cfg = arm_config(unique_prefix(), max_state_age_s=ARM_MAX_AGE_S, home_pos=(0.4, 0.1, 0.3),
                     home_quat=(1.0, 0.0, 0.0, 0.0), task_state_topic=None, reset_service=None, **arm_kw)
    driver = FakeDriver(cfg)
    env = robot_env.make_env({"robot": {"type": "ros", **dataclasses.asdict(cfg)}, "task": {"name": "reach"},
                              "control": {"mode": "free_running", "stale": stale}})  # free_running -> realtime
    assert env.unwrapped.control.mode == "realtime"
    return driver, env


def _stamps(msgs) -> np.ndarray:
    return np.array([runtime.stamp_to_seconds(m.header.stamp) for m in msgs])


def test_short_loss_holds_the_arm_and_the_episode_continues():
    driver, env = _rig({"policy": "hold", "max_consecutive_s": 2.0})
    try:
        env.reset(seed=0)
        gap = {}

        def silence():
            time.sleep(0.35)
            gap["start"] = time.time()
            driver.publishing = False
            time.sleep(0.4)
            gap["end"] = time.time()
            driver.publishing = True

        threading.Thread(target=silence, daemon=True).start()
        infos = []
        for _ in range(14):
            _, _, terminated, truncated, info = env.step(np.array([0.2, 0, 0, 0, 0, 0, -1], np.float32))
            assert not (terminated or truncated)
            infos.append(info)
        assert infos[-1]["stale_steps"] >= 1 and any(i["stale_hold"] for i in infos)
        assert not any(i["stale_abort"] for i in infos)
        assert all(("ee_target" in i) != i["action_dropped"] for i in infos)  # a dropped action sent nothing
        held = sum(i["stale_held_s"] for i in infos)
        sent = _stamps(driver.received("pose"))
        # the last command may leave while the state is just under its age limit; none after that
        inside = sent[(sent > gap["start"] + ARM_MAX_AGE_S + 0.03) & (sent < gap["end"])]
        assert inside.size == 0, f"{inside.size} commands reached the arm while its state was stale"
        assert sent.max() > gap["end"]  # and control resumed with fresh data
        print(f"\n0.4 s of silence: {infos[-1]['stale_steps']} held step(s), held {held:.2f} s, "
              f"0 commands sent on stale state, episode went on")
    finally:
        env.close()
        driver.close()


@pytest.mark.parametrize("command_mode", ["pose", "twist"])
def test_sustained_loss_ends_the_episode_cleanly(command_mode):
    driver, env = _rig({"policy": "hold", "max_consecutive_s": 0.5}, command_mode=command_mode)
    try:
        env.reset(seed=0)
        for _ in range(2):
            env.step(np.array([0.5, 0, 0, 0, 0, 0, 1], np.float32))  # moving when the data stops
        lost = time.time()
        driver.publishing = False
        for _ in range(20):
            _, reward, terminated, truncated, info = env.step(np.array([0.5, 0, 0, 0, 0, 0, 1], np.float32))
            if truncated:
                break
        ended = time.time() - lost
        assert truncated and not terminated and info["stale_abort"] and reward == 0.0
        assert "max_consecutive_s=0.5" in info["stale_error"]
        assert ended < 1.5, ended
        if command_mode == "pose":  # pose unknown: nothing is sent, the robot keeps its last target
            assert not np.any(_stamps(driver.received("pose")) > lost + ARM_MAX_AGE_S + 0.03)
        else:  # the last twist was a motion; the hold stops it with a zero twist
            twists = driver.received("twist")
            assert any(m.twist.linear.x > 0 for m in twists) and _stamps(twists[-1:])[0] > lost
            assert twists[-1].twist.linear.x == 0.0
        t0 = time.monotonic()
        with pytest.raises(DataLossError, match="moving home"):
            env.reset(seed=1)
        assert time.monotonic() - t0 < 1.5
    finally:
        env.close()
        driver.close()


def test_raise_policy_keeps_the_strict_behaviour():
    driver, env = _rig({"policy": "raise"})
    try:
        env.reset(seed=0)
        env.step(np.zeros(7, np.float32))
        driver.publishing = False
        time.sleep(0.3)
        with pytest.raises(StaleDataError, match="ms old") as err:
            env.step(np.zeros(7, np.float32))
        assert not isinstance(err.value, DataLossError)
    finally:
        env.close()
        driver.close()
