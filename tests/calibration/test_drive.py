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


def test_default_hand_eye_dry_run_visits_all_15_poses_without_diverging(tmp_path):
    """`hilr calibrate intrinsics` then `handeye` with their defaults on the MuJoCo arm."""
    from hydra import compose, initialize_config_dir

    from calibration.runners import RUNNERS
    from robot_env.app import config_dir, to_container

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = to_container(compose(config_name="calibrate", overrides=[f"out_dir={tmp_path}"]))
    assert cfg["handeye"]["n_poses"] == 15
    intr = RUNNERS["intrinsics"](cfg)
    assert intr["n_views"] >= 14 and intr["rms_px"] < 0.3
    summary = RUNNERS["handeye"](cfg)
    assert summary["n_poses"] >= 14 and len(summary["missed_poses"]) <= 1 and summary["spread_mm"] < 1.0
