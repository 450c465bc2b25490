"""Hand-eye and intrinsics on rendered ChArUco images with known truth.

Bounds asserted (12 poses, 640x480, noise sigma 2 grey levels, barrel distortion k1 = -0.05,
intrinsics estimated from the same images, detection on the rendered images):
    hand-eye: translation error < 2 mm, rotation error < 0.5 deg, both mountings, every method;
    intrinsics: focal lengths within 0.5 %, principal point within 3 px, RMS < 0.3 px.
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration.errors import BoardNotFoundError, CalibrationError, DegeneratePosesError
from calibration.handeye import calibrate_hand_eye, have_opencv_hand_eye
from calibration.intrinsics import calibrate_intrinsics
from calibration.procedures import board_poses
from calibration.transforms import exp_so3, from_rt, pose_to_matrix, transform_error
from tests.calibration.conftest import K_TRUE

TRANS_BOUND_M = 0.002
ROT_BOUND_DEG = 0.5
METHODS = ["tsai", "park", "horaud", "andreff", "daniilidis"]


def _intrinsics(session):
    return calibrate_intrinsics([s.detection for s in session["samples"]])


def test_intrinsics_recovered_from_rendered_views(eye_in_hand_session):
    intr = _intrinsics(eye_in_hand_session)
    assert abs(intr.fx - K_TRUE["fx"]) / K_TRUE["fx"] < 0.005
    assert abs(intr.fy - K_TRUE["fy"]) / K_TRUE["fy"] < 0.005
    assert abs(intr.cx - K_TRUE["cx"]) < 3.0
    assert abs(intr.cy - K_TRUE["cy"]) < 3.0
    assert intr.rms < 0.3
    assert intr.dist_coeffs[0] < -0.02  # the barrel distortion is seen


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("session_name", ["eye_in_hand_session", "eye_to_hand_session"])
def test_hand_eye_recovers_known_transform(request, session_name, method):
    session = request.getfixturevalue(session_name)
    samples = session["samples"]
    assert len(samples) >= 10, f"board found in only {len(samples)} views"
    intr = _intrinsics(session)
    T_cam_board, _ = board_poses(session["board"], [s.detection for s in samples], intr)
    mounting = session_name.replace("_session", "")
    result = calibrate_hand_eye([s.T_base_ee for s in samples], T_cam_board, mounting, method, backend="numpy")
    dt, dr = transform_error(result.transform, session["truth"])
    assert dt < TRANS_BOUND_M, f"{mounting}/{method}: translation error {dt * 1000:.2f} mm"
    assert np.degrees(dr) < ROT_BOUND_DEG, f"{mounting}/{method}: rotation error {np.degrees(dr):.3f} deg"
    assert result.residuals["target_spread_trans_mm"] < 2.0
    assert len(result.residuals["axxb_rot_deg"]) == len(samples) - 1


@pytest.mark.skipif(not have_opencv_hand_eye(), reason="this OpenCV build has no calibrateHandEye")
def test_numpy_solver_matches_opencv(eye_in_hand_session):
    session = eye_in_hand_session
    intr = _intrinsics(session)
    T_cam_board, _ = board_poses(session["board"], [s.detection for s in session["samples"]], intr)
    T_ee = [s.T_base_ee for s in session["samples"]]
    a = calibrate_hand_eye(T_ee, T_cam_board, method="park", backend="numpy").transform
    b = calibrate_hand_eye(T_ee, T_cam_board, method="park", backend="opencv").transform
    dt, dr = transform_error(a, b)
    assert dt < 1e-4 and dr < 1e-4


def _synthetic_pairs(T_base_ee, X, T_base_board):
    return [np.linalg.inv(T @ X) @ T_base_board for T in T_base_ee]


def test_too_few_poses_rejected():
    T_ee = [from_rt(exp_so3([0.3 * k, 0.2, 0.1 * k]), [0.5, 0.0, 0.4]) for k in range(4)]
    pairs = _synthetic_pairs(T_ee, np.eye(4), pose_to_matrix([0.5, 0, 0], [1, 0, 0, 0]))
    with pytest.raises(DegeneratePosesError, match="too few poses"):
        calibrate_hand_eye(T_ee, pairs, min_poses=6)


def test_pure_translation_rejected():
    T_ee = [pose_to_matrix([0.4 + 0.03 * k, 0.02 * (k % 3), 0.4], [1, 0, 0, 0]) for k in range(12)]
    pairs = _synthetic_pairs(T_ee, np.eye(4), pose_to_matrix([0.5, 0, 0], [1, 0, 0, 0]))
    with pytest.raises(DegeneratePosesError, match="[Pp]ure translations"):
        calibrate_hand_eye(T_ee, pairs)


def test_single_rotation_axis_rejected():
    T_ee = [from_rt(exp_so3([0.0, 0.0, 0.1 * k]), [0.5, 0.01 * k, 0.4]) for k in range(10)]
    pairs = _synthetic_pairs(T_ee, np.eye(4), pose_to_matrix([0.5, 0, 0], [1, 0, 0, 0]))
    with pytest.raises(DegeneratePosesError, match="same axis"):
        calibrate_hand_eye(T_ee, pairs)


def test_inconsistent_data_rejected(eye_in_hand_session):
    """The board was bumped half-way through: the residuals must expose it."""
    session = eye_in_hand_session
    intr = _intrinsics(session)
    T_cam_board, _ = board_poses(session["board"], [s.detection for s in session["samples"]], intr)
    bump = from_rt(exp_so3([0.0, 0.0, 0.05]), [0.03, 0.0, 0.0])
    half = len(T_cam_board) // 2
    bumped = T_cam_board[:half] + [T @ bump for T in T_cam_board[half:]]
    with pytest.raises(CalibrationError, match="inconsistent"):
        calibrate_hand_eye([s.T_base_ee for s in session["samples"]], bumped)


def test_unknown_method_and_mounting():
    with pytest.raises(CalibrationError, match="mounting"):
        calibrate_hand_eye([], [], mounting="eye_on_table")
    T = [np.eye(4)] * 3
    from calibration.handeye import solve_ax_xb

    with pytest.raises(CalibrationError, match="unknown hand-eye method"):
        solve_ax_xb(T, T, method="magic")


def test_board_not_found_in_blank_or_foreign_image(eye_in_hand_session):
    board = eye_in_hand_session["board"]
    with pytest.raises(BoardNotFoundError, match="not found"):
        board.detect(np.full((480, 640, 3), 128, np.uint8))
    from calibration.board import CharucoBoard, CharucoBoardConfig

    other = CharucoBoard(CharucoBoardConfig(dictionary="4X4_50"))
    foreign = np.repeat(other.image(560, 40)[:, :, None], 3, axis=2)
    with pytest.raises(BoardNotFoundError):
        board.detect(foreign)
