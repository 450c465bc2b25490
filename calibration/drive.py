"""Drive any ``robot_env.hardware.Arm`` through a pose list and collect hand-eye samples.

At each pose: move to it at bounded speed (the commanded target slides from the measured
pose to the goal at ``max_speed``/``max_rot_speed_deg``, so no controller ever sees a
half-metre or 60-degree step target), wait (absolute deadline) until the measured pose is
within tolerance, let it settle, then grab a fresh camera frame and detect the board.
The *measured* end-effector pose after settling is what goes into the calibration, not
the commanded one. Every pose is checked against the workspace bounds before anything
moves, so an out-of-bounds target never reaches the arm.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from calibration.board import BoardDetection, CharucoBoard
from calibration.errors import BoardNotFoundError, CalibrationError
from calibration.guidance import pose_angle_deg
from calibration.transforms import pose_to_matrix
from robot_env.hardware import Arm, Camera, StaleDataError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class DriveConfig:
    """How to move between calibration poses.

    Attributes:
        pos_tol: position tolerance to count a pose as reached, metres.
        rot_tol_deg: orientation tolerance, degrees.
        reach_timeout_s: give up on a pose after this long, seconds.
        settle_s: wait after reaching before reading pose and image, seconds.
        poll_s: state polling period while waiting, seconds.
        bounds_min: (3,) lower workspace bound for targets, metres, base frame (None = unchecked).
        bounds_max: (3,) upper workspace bound, metres, base frame.
        frame_timeout_s: wait at most this long for a frame captured after settling, seconds.
        skip_unreachable: a pose not reached in time is skipped (arm stopped, pose counted as
            missed) instead of ending the session.
        max_speed: speed of the commanded target between poses, m/s (None = jump to the goal).
        max_rot_speed_deg: its rotation speed, degrees/s (None = jump).
    """

    pos_tol: float = 0.003
    rot_tol_deg: float = 1.0
    reach_timeout_s: float = 10.0
    settle_s: float = 0.5
    poll_s: float = 0.02
    bounds_min: Sequence[float] | None = None
    bounds_max: Sequence[float] | None = None
    frame_timeout_s: float = 2.0
    skip_unreachable: bool = True
    max_speed: float | None = 0.1
    max_rot_speed_deg: float | None = 30.0

    def __post_init__(self) -> None:
        for name in ("max_speed", "max_rot_speed_deg"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"drive.{name} must be positive or null, got {value}")


@dataclasses.dataclass
class HandEyeSample:
    """One pose of a hand-eye session.

    Attributes:
        T_base_ee: (4, 4) measured end-effector pose after settling, base frame, metres.
        detection: the board corners found in the image taken there.
        image: (H, W, 3) uint8 RGB image (kept for intrinsics and for the record).
    """

    T_base_ee: np.ndarray
    detection: BoardDetection
    image: np.ndarray


def check_targets_in_bounds(poses: Sequence[tuple[np.ndarray, np.ndarray]], cfg: DriveConfig) -> None:
    """Refuse the whole list if any target position lies outside the workspace bounds."""
    if cfg.bounds_min is None or cfg.bounds_max is None:
        return
    lo, hi = np.asarray(cfg.bounds_min, float), np.asarray(cfg.bounds_max, float)
    for k, (pos, _) in enumerate(poses):
        pos = np.asarray(pos, float)
        if not np.all(np.isfinite(pos)) or np.any(pos < lo) or np.any(pos > hi):
            raise CalibrationError(
                f"calibration pose #{k} at {np.round(pos, 3).tolist()} m is outside the workspace "
                f"bounds {lo.tolist()}..{hi.tolist()}; nothing was commanded. Shrink the pose list "
                "(tilt_deg, pivot_distance) or move its centre."
            )


def _glide_duration(start, pos: np.ndarray, quat: np.ndarray, cfg: DriveConfig) -> float:
    """Seconds the commanded target takes from ``start`` (an ArmState or None) to the goal."""
    if start is None:
        return 0.0
    times = [0.0]
    if cfg.max_speed is not None:
        times.append(float(np.linalg.norm(pos - start.ee_pos)) / cfg.max_speed)
    if cfg.max_rot_speed_deg is not None:
        times.append(pose_angle_deg(start.ee_quat, quat) / cfg.max_rot_speed_deg)
    return max(times)


def move_and_wait(arm: Arm, pos: np.ndarray, quat: np.ndarray, cfg: DriveConfig,
                  clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
    """Move to a pose at bounded speed and block until it is reached; returns the settled ``ArmState``.

    The target slides from the measured start pose to the goal (linear in position, slerp
    in orientation) over the time ``max_speed``/``max_rot_speed_deg`` allow; then the arm
    has ``reach_timeout_s`` to arrive within tolerance.

    Raises:
        CalibrationError: not reached before ``reach_timeout_s`` (the arm is stopped).
    """
    from robot_env.geometry import slerp

    try:
        start = arm.read_state()
    except StaleDataError:
        start = None
    glide_s = _glide_duration(start, pos, quat, cfg)
    t0 = clock()
    deadline = t0 + glide_s + cfg.reach_timeout_s
    state, a = None, 0.0
    while clock() < deadline:
        if a < 1.0:
            a = 1.0 if glide_s <= 0 else min(1.0, (clock() - t0) / glide_s)
            if a < 1.0:
                arm.command_pose(start.ee_pos + a * (pos - start.ee_pos), slerp(start.ee_quat, quat, a))
            else:
                arm.command_pose(np.asarray(pos, float), np.asarray(quat, float))
        try:
            state = arm.read_state()
        except StaleDataError:
            state = None
        if state is not None and a >= 1.0:
            dp = float(np.linalg.norm(state.ee_pos - pos))
            dr = pose_angle_deg(state.ee_quat, quat)
            if dp < cfg.pos_tol and dr < cfg.rot_tol_deg:
                break
        sleep(cfg.poll_s)
    else:
        arm.stop()
        where = "no fresh state" if state is None else f"at {np.round(state.ee_pos, 4).tolist()}"
        raise CalibrationError(
            f"arm did not reach {np.round(pos, 4).tolist()} within {glide_s + cfg.reach_timeout_s:.1f} s "
            f"({where}); stopped"
        )
    sleep(cfg.settle_s)
    return arm.read_state()


def fresh_frame(camera: Camera, timeout_s: float):
    """A frame that arrived after this call began (``Frame.stamp`` is ``time.monotonic()``),
    so the image matches the settled arm pose and never an older, motion-blurred one.

    Raises:
        CalibrationError: none within ``timeout_s``.
    """
    t_request = time.monotonic()
    deadline = t_request + timeout_s
    while True:
        frame = camera.read()
        if frame.stamp >= t_request:
            return frame
        if time.monotonic() > deadline:
            raise CalibrationError(f"no camera frame newer than the settled arm pose within {timeout_s} s")
        time.sleep(0.005)


def collect_hand_eye_samples(
    arm: Arm,
    camera: Camera,
    board: CharucoBoard,
    poses: Sequence[tuple[np.ndarray, np.ndarray]],
    cfg: DriveConfig | None = None,
    progress: bool = True,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[HandEyeSample], list[int]]:
    """Visit every pose and record (measured ee pose, board detection) pairs.

    Args:
        arm: a connected arm (sim or real).
        camera: a connected camera (wrist or fixed).
        board: the board to detect.
        poses: targets ``(pos (3,), quat xyzw (4,))``, base frame.
        cfg: motion settings.
        progress: show a tqdm bar.
        clock: monotonic clock (injectable for tests).
        sleep: sleep function (injectable for tests).

    Returns:
        ``(samples, missed)``: one sample per pose where the board was found, and the
        indices of poses where it was not (or that were not reached, see ``skip_unreachable``).
    """
    from tqdm import tqdm

    cfg = cfg or DriveConfig()
    check_targets_in_bounds(poses, cfg)
    samples, missed = [], []
    for k, (pos, quat) in enumerate(tqdm(poses, desc="hand-eye poses", disable=not progress)):
        try:
            state = move_and_wait(arm, np.asarray(pos, float), np.asarray(quat, float), cfg, clock, sleep)
        except CalibrationError as exc:
            if not cfg.skip_unreachable:
                raise
            log.warning("pose #%d skipped: %s", k, exc)
            missed.append(k)
            continue
        frame = fresh_frame(camera, cfg.frame_timeout_s)
        try:
            det = board.detect(frame.color)
        except BoardNotFoundError as exc:
            log.warning("pose #%d: %s", k, exc)
            missed.append(k)
            continue
        samples.append(HandEyeSample(pose_to_matrix(state.ee_pos, state.ee_quat), det, frame.color))
    return samples, missed
