"""Synthetic hand-eye sessions with known truth, shared by the calibration tests.

Each session drives the registered kinematic fake arm through a generated pose list; a
``charuco_synthetic`` camera renders the board (Gaussian noise, sigma 2 grey levels,
mild barrel distortion) at the arm's measured pose; detection runs on those images.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration.accuracy import eye_in_hand_scenario, eye_to_hand_scenario
from calibration.drive import DriveConfig, collect_hand_eye_samples
from calibration.guidance import generate_pose_list
from calibration.synthetic import SyntheticBoardCameraConfig
from calibration.transforms import matrix_to_pose
from robot_env.hardware import ARMS, CAMERAS
from tests.calibration import fake_arm  # noqa: F401  (registers calib_kinematic)

K_TRUE = dict(fx=600.0, fy=605.0, cx=322.0, cy=238.0)
DIST_TRUE = [-0.05, 0.02, 0.0, 0.0, 0.0]
# targets jump (the kinematic fake arm glides on its own); tests/calibration/test_drive.py tests the glide
FAST_DRIVE = DriveConfig(settle_s=0.0, poll_s=0.001, reach_timeout_s=2.0, max_speed=None, max_rot_speed_deg=None)


def _session(mounting: str, camera_pose: np.ndarray, board_pose: np.ndarray, center: np.ndarray,
             pivot: float, n_poses: int = 12, seed: int = 0):
    pos, quat = matrix_to_pose(center)
    arm = ARMS.make({"type": "calib_kinematic", "home_pos": pos.tolist(), "home_quat": quat.tolist()})
    cp, cq = matrix_to_pose(camera_pose)
    bp, bq = matrix_to_pose(board_pose)
    cam_cfg = SyntheticBoardCameraConfig(
        mounting=mounting, camera_pose=[*cp, *cq], board_pose=[*bp, *bq], dist_coeffs=DIST_TRUE,
        noise_sigma=2.0, seed=seed, serial="synthetic-7", **K_TRUE)
    camera = CAMERAS.make(cam_cfg, arm=arm)
    poses = generate_pose_list(pos, quat, n_poses=n_poses, tilt_deg=20.0, pivot_distance=pivot, seed=seed)
    with arm, camera:
        samples, missed = collect_hand_eye_samples(arm, camera, camera.board, poses, FAST_DRIVE, progress=False)
    return {"samples": samples, "missed": missed, "truth": camera_pose, "board": camera.board,
            "arm": arm, "camera": camera, "poses": poses}


@pytest.fixture(scope="session")
def eye_in_hand_session():
    """Wrist camera 5 cm ahead of the flange, board on the table; truth = T_ee_cam."""
    sc = eye_in_hand_scenario()
    return _session(sc.mounting, sc.truth, sc.board, sc.center, pivot=sc.pivot)


@pytest.fixture(scope="session")
def eye_to_hand_session():
    """Fixed camera above and behind, board on the flange; truth = T_base_cam."""
    sc = eye_to_hand_scenario()
    return _session(sc.mounting, sc.truth, sc.board, sc.center, pivot=sc.pivot, seed=1)
