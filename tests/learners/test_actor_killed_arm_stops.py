"""Kill the actor mid-episode: the arm stops.

`hilr sim-robot` runs as its own process (the robot), `hilr actor` drives it over ROS2 with
random warm-up actions (large motions), then the actor is SIGKILLed: no goodbye, no stop
command. The robot side's command watchdog must hold the pose: the arm moved before the
kill and stays still after the watchdog period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from robot_env.hardware import ARMS, StaleDataError
from tests.robot_env._sim_robot_proc import profile, start_sim_robot, stop

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(240)]


def _read(arm, timeout_s: float = 10.0):
    """The arm's state, waiting out a stale moment: on a loaded CI box the sim robot process (its
    physics and its publisher alike) can miss a second; the observer then waits, it never
    reads positions older than ``max_state_age_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return arm.read_state()
        except StaleDataError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _travel(arm, seconds: float) -> float:
    """Largest distance of the TCP from where it was at the start of the window, metres (fresh
    states only; at least a few dozen of them in the window)."""
    start = _read(arm).ee_pos.copy()
    far, fresh, t_end = 0.0, 0, time.monotonic() + seconds
    while time.monotonic() < t_end:
        try:
            far = max(far, float(np.linalg.norm(arm.read_state().ee_pos - start)))
            fresh += 1
        except StaleDataError:
            pass
        time.sleep(0.02)
    assert fresh >= seconds * 10, f"only {fresh} fresh arm states in {seconds} s: the sim robot stalled"
    return far


def test_killing_the_actor_stops_the_arm(tmp_path):
    import robot_env.ros  # noqa: F401  (registers ARMS "ros")

    node = start_sim_robot(tmp_path / "sim", "camera={}", "task=reach")
    actor = None
    watcher = ARMS.make({**profile("robot", "ros_sim"), "max_state_age_s": 1.0})
    try:
        watcher.connect()  # a read-only observer: it never publishes a command
        cmd = [sys.executable, "-m", "learners.cli", "actor", f"hydra.run.dir={tmp_path / 'actor'}",
               "robot=ros_sim", "camera=none", "task=reach", "~teleop", "learn=false", "progress=false",
               "control.mode=realtime", "++control.max_state_age_s=1.0", "robot.max_state_age_s=1.0",
               "learner.mode=rlpd", "learner.warmup_steps=100000", "learner.num_critics=2",
               "actor.total_steps=100000", "actor.log_every_episodes=0"]
        actor = subprocess.Popen(cmd, env=dict(os.environ), stdout=open(tmp_path / "actor.log", "w"),
                                 stderr=subprocess.STDOUT)
        # wait until the actor drives the arm
        deadline, moving = time.monotonic() + 120, 0.0
        while moving < 0.01:
            assert actor.poll() is None, (tmp_path / "actor.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the actor never moved the arm"
            moving = _travel(watcher, 1.0)
        actor.send_signal(signal.SIGKILL)  # mid-episode, no stop command
        actor.wait(timeout=10)
        time.sleep(1.0)  # the watchdog holds after node.command_timeout_s = 0.5 s
        still = _travel(watcher, 2.0)
        print(f"\narm travel: {moving * 1000:.1f} mm/s while driven, {still * 1000:.2f} mm in 2 s after the kill")
        assert still < 0.002, f"the arm kept moving {still * 1000:.1f} mm after the actor died"
    finally:
        if actor is not None and actor.poll() is None:
            actor.kill()
        watcher.disconnect()
        stop(node)
