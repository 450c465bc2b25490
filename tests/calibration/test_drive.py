"""Driving between calibration poses: the commanded target glides at bounded speed.

The default 15-pose hand-eye list jumps 23-29 cm and 48-67 degrees between consecutive
poses; sent as one step target, pose 11 made the sim arm's physics diverge.
"""

from __future__ import annotations

import numpy as np

from calibration.drive import DriveConfig, move_and_wait
from calibration.guidance import pose_angle_deg
from robot_env.hardware import ARMS
from tests.calibration import fake_arm  # noqa: F401  (registers calib_kinematic)


class FakeClock:
    """Simulated time: ``sleep`` advances it, so glide steps are exact."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def test_target_glides_at_bounded_speed_then_arrives():
    arm = ARMS.make({"type": "calib_kinematic", "move_time_s": 0.0})
    goal_pos, goal_quat = np.array([0.3, 0.2, 0.3]), np.array([0.9659258, 0.0, 0.258819, 0.0])  # 30 deg away
    cfg = DriveConfig(settle_s=0.0, poll_s=0.01, max_speed=0.1, max_rot_speed_deg=30.0)
    clock = FakeClock()
    with arm:
        state = move_and_wait(arm, goal_pos, goal_quat, cfg, clock, clock.sleep)
    assert np.linalg.norm(state.ee_pos - goal_pos) < cfg.pos_tol
    targets = arm.commands
    steps = [np.linalg.norm(b[0] - a[0]) for a, b in zip(targets, targets[1:])]
    turns = [pose_angle_deg(a[1], b[1]) for a, b in zip(targets, targets[1:])]
    assert max(steps) <= 0.1 * cfg.poll_s * 1.01 and max(turns) <= 30.0 * cfg.poll_s * 1.01
    # 0.3 m from home at 0.1 m/s is the slower limit (30 deg at 30 deg/s takes 1 s)
    assert 2.99 < clock.t < 3.2
