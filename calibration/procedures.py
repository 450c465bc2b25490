"""The calibration procedures end to end: capture, solve, check, and build the file content.

Each ``*_file`` function turns a result into a ``CalibrationFile`` with its frames spelled
out; ``hilr calibrate`` (calibration/app.py) wires these to configured devices.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from calibration.board import BoardDetection, CharucoBoard
from calibration.drive import DriveConfig, HandEyeSample, collect_hand_eye_samples
from calibration.errors import BoardNotFoundError, CalibrationError, DegeneratePosesError
from calibration.files import CalibrationFile
from calibration.handeye import HandEyeResult, calibrate_hand_eye
from calibration.intrinsics import Intrinsics
from calibration.transforms import matrix_to_pose
from calibration.workspace import WorkspaceBounds
from robot_env.hardware import Arm, Camera

log = logging.getLogger(__name__)


def capture_views(
    camera: Camera,
    board: CharucoBoard,
    n_views: int,
    say: Callable[[str], None] = print,
    min_shift_px: float = 25.0,
    timeout_s: float = 300.0,
    poll_s: float = 0.1,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[BoardDetection], list[np.ndarray]]:
    """Collect board views while the operator moves the board (or the camera).

    A frame is kept when the board is found and its corners moved by at least
    ``min_shift_px`` on average since the last kept view (so still frames don't repeat).

    Returns:
        ``(detections, images)`` of the kept views.

    Raises:
        CalibrationError: fewer than ``n_views`` views before ``timeout_s``.
    """
    say(f"Show the board to the camera: {n_views} views, moving and tilting it between views "
        "(corners of the image, near and far, tilted up to ~45 deg).")
    detections, images, last = [], [], None
    deadline = clock() + timeout_s
    while len(detections) < n_views and clock() < deadline:
        frame = camera.read()
        try:
            det = board.detect(frame.color)
        except BoardNotFoundError:
            sleep(poll_s)
            continue
        if last is not None:
            common, a, b = np.intersect1d(last.ids, det.ids, return_indices=True)
            if len(common) and np.linalg.norm(last.corners[a] - det.corners[b], axis=1).mean() < min_shift_px:
                sleep(poll_s)
                continue
        detections.append(det)
        images.append(frame.color)
        last = det
        say(f"  view {len(detections)}/{n_views}: {len(det)} corners")
    if len(detections) < n_views:
        raise CalibrationError(f"only {len(detections)} of {n_views} board views within {timeout_s:g} s")
    return detections, images


def board_poses(
    board: CharucoBoard, detections: Sequence[BoardDetection], intrinsics: Intrinsics, max_rms_px: float = 2.0
) -> tuple[list[np.ndarray], list[float]]:
    """(4, 4) ``T_cam_board`` per detection and its PnP reprojection RMS (pixels).

    Raises:
        CalibrationError: a view reprojects worse than ``max_rms_px`` (wrong intrinsics or
            a mis-detection).
    """
    poses, errors = [], []
    for k, det in enumerate(detections):
        T, rms = board.estimate_pose(det, intrinsics.camera_matrix, intrinsics.dist_coeffs)
        if rms > max_rms_px:
            raise CalibrationError(f"view #{k}: board pose reprojects with {rms:.2f} px RMS > {max_rms_px} px")
        poses.append(T)
        errors.append(rms)
    return poses, errors


def run_hand_eye(
    arm: Arm,
    camera: Camera,
    board: CharucoBoard,
    intrinsics: Intrinsics,
    poses: Sequence[tuple[np.ndarray, np.ndarray]],
    mounting: str = "eye_in_hand",
    method: str = "park",
    backend: str = "auto",
    drive: DriveConfig | None = None,
    min_poses: int = 6,
    max_spread_mm: float = 5.0,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[HandEyeResult, list[HandEyeSample], list[int]]:
    """Drive the arm through poses, detect the board at each, and solve hand-eye.

    Args:
        arm: connected arm (sim or real).
        camera: connected camera (wrist for ``eye_in_hand``, fixed for ``eye_to_hand``).
        board: the board.
        intrinsics: the camera's intrinsics.
        poses: targets ``(pos (3,), quat xyzw (4,))``, base frame (e.g. ``generate_pose_list``).
        mounting, method, backend, min_poses, max_spread_mm: see ``calibrate_hand_eye``.
        drive: motion settings (tolerances, workspace bounds).
        progress: tqdm bar.
        clock, sleep: time source for waiting on the arm (sim time for an in-process sim).

    Returns:
        ``(result, samples, missed)``: ``missed`` are the pose indices without the board.
    """
    samples, missed = collect_hand_eye_samples(arm, camera, board, poses, drive, progress, clock, sleep)
    if missed:
        log.warning("%d of %d poses missed (board not found or pose not reached): %s", len(missed), len(poses), missed)
    if len(samples) < min_poses:
        raise DegeneratePosesError(
            f"board found at only {len(samples)} of {len(poses)} poses (need {min_poses}); "
            "bring the board closer to the middle of the pose list's view"
        )
    T_cam_board, _ = board_poses(board, [s.detection for s in samples], intrinsics)
    result = calibrate_hand_eye([s.T_base_ee for s in samples], T_cam_board, mounting, method, backend,
                                min_poses=min_poses, max_spread_mm=max_spread_mm)
    for w in result.warnings:
        log.warning("hand-eye: %s", w)
    return result, samples, missed


def intrinsics_file(intr: Intrinsics, serial: str | None, name: str | None, board: CharucoBoard,
                    factory_comparison: dict | None = None) -> CalibrationFile:
    """Calibration file content for camera intrinsics."""
    data = intr.to_dict()
    data["board"] = board.config.to_dict()
    if factory_comparison is not None:
        data["factory_comparison"] = factory_comparison
    return CalibrationFile("intrinsics", data, camera_serial=serial, camera_name=name,
                           frames={"camera_matrix": "pixels; OpenCV camera frame (x right, y down, z forward)"})


def handeye_file(result: HandEyeResult, serial: str | None, name: str | None) -> CalibrationFile:
    """Calibration file content for a hand-eye result (transform as 4x4 and as pos + quat xyzw)."""
    pos, quat = matrix_to_pose(result.transform)
    name_T = "T_ee_cam" if result.mounting == "eye_in_hand" else "T_base_cam"
    parent = "end-effector (flange/TCP as the arm reports ee_pos)" if result.mounting == "eye_in_hand" else "arm base"
    res = {k: v for k, v in result.residuals.items() if not isinstance(v, list)}
    data = {
        "mounting": result.mounting, "method": result.method, "backend": result.backend,
        "transform_name": name_T, "matrix": result.transform.tolist(),
        "position": pos.tolist(), "quaternion_xyzw": quat.tolist(),
        "n_poses": result.n_poses, "residuals": res, "pose_diversity": result.diversity,
        "warnings": list(result.warnings),
    }
    return CalibrationFile("handeye", data, camera_serial=serial, camera_name=name, frames={
        name_T: f"maps points in the OpenCV camera frame (x right, y down, z forward) to the {parent} frame",
    })


def workspace_file(bounds: WorkspaceBounds) -> CalibrationFile:
    """Calibration file content for workspace bounds."""
    return CalibrationFile("workspace", bounds.to_dict(), frames={
        "workspace_low/workspace_high": "corners of the axis-aligned box for the end-effector position (ee_pos), arm base frame, metres"})


def crops_file(crops: dict, image_sizes: dict, serials: dict) -> CalibrationFile:
    """Calibration file content for per-camera crops ``{name: [x, y, w, h]}`` (pixels)."""
    data = {}
    for name, (x, y, w, h) in crops.items():
        W, H = image_sizes[name]
        data[name] = {"crop_xywh": [int(x), int(y), int(w), int(h)], "image_size": [int(W), int(H)],
                      "crop_fractions": [x / W, y / H, (x + w) / W, (y + h) / H],
                      "camera_serial": serials.get(name)}
    return CalibrationFile("crops", data, frames={
        "crop_xywh": "pixels of the full colour frame, top-left origin",
        "crop_fractions": "[x0, y0, x1, y1] as fractions of the frame (the operator console's crop format)"})


def spacemouse_file(cal) -> CalibrationFile:
    """Calibration file content for a ``SpaceMouseCalibration`` (read by teleop's ``axes_from_calibration``)."""
    axes = cal.axis_map()
    data = {"axes": {k: axes[k] for k in ("order", "sign", "deadzone")}, "bias": list(cal.bias),
            "noise_max": list(cal.noise_max), "handedness": int(cal.handedness)}
    return CalibrationFile("spacemouse", data, frames={
        "axes": "teleop AxisMapConfig: order[k] = device axis driving robot axis k (x forward, y left, z up, "
                "roll, pitch, yaw), base frame; bias per device axis, subtracted first"})
