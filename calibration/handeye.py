"""Hand-eye calibration: solve AX = XB for a wrist (eye-in-hand) or fixed (eye-to-hand) camera.

Inputs are pairs of end-effector poses ``T_base_ee`` (from the arm) and board poses
``T_cam_board`` (from ChArUco detections). Frames and the unknown:

* ``eye_in_hand``: the camera rides on the end effector, the board is fixed on the table;
  the result is ``T_ee_cam`` (camera pose in the end-effector frame, "camera-to-gripper").
* ``eye_to_hand``: the camera is fixed, the board is held by the gripper; the result is
  ``T_base_cam`` (camera pose in the base frame, "camera-to-base").

``cv2.calibrateHandEye`` solves it when this OpenCV build has it (OpenCV 4.x); OpenCV
5.0's Python wheel dropped the function, so the same five methods are implemented here in
numpy from their papers (Tsai-Lenz 1989, Park-Martin 1994, Horaud-Dornaika 1995,
Andreff 1999, Daniilidis 1999). ``backend="auto"`` prefers OpenCV's when it exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.guidance import check_pose_diversity
from calibration.transforms import from_rt, invert, log_so3, project_to_so3, rotation_angle, skew

MOUNTINGS = ("eye_in_hand", "eye_to_hand")
METHODS = ("tsai", "park", "horaud", "andreff", "daniilidis")
_CV2_METHODS = {
    "tsai": "CALIB_HAND_EYE_TSAI",
    "park": "CALIB_HAND_EYE_PARK",
    "horaud": "CALIB_HAND_EYE_HORAUD",
    "andreff": "CALIB_HAND_EYE_ANDREFF",
    "daniilidis": "CALIB_HAND_EYE_DANIILIDIS",
}


@dataclasses.dataclass
class HandEyeResult:
    """A solved hand-eye calibration.

    Attributes:
        transform: (4, 4) ``T_ee_cam`` (eye_in_hand) or ``T_base_cam`` (eye_to_hand), metres.
        mounting: ``eye_in_hand`` or ``eye_to_hand``.
        method: the solver used.
        backend: ``opencv`` or ``numpy``.
        n_poses: number of pose pairs used.
        residuals: consistency statistics (see ``consistency_residuals``).
        diversity: pose-set statistics (see ``check_pose_diversity``).
        warnings: operator-facing warnings about the pose set.
    """

    transform: np.ndarray
    mounting: str
    method: str
    backend: str
    n_poses: int
    residuals: dict
    diversity: dict
    warnings: list


def have_opencv_hand_eye() -> bool:
    """True when this OpenCV build exposes ``cv2.calibrateHandEye``."""
    return hasattr(cv2, "calibrateHandEye")


def _motions(T_a: Sequence[np.ndarray], T_b: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """All relative motion pairs (A_ij, B_ij) with A X = X B, for i < j.

    ``T_a`` are "gripper-to-base" poses and ``T_b`` "target-to-camera" poses in OpenCV's
    naming: A = inv(T_a[j]) T_a[i], B = T_b[j] inv(T_b[i]).
    """
    out = []
    for i in range(len(T_a)):
        for j in range(i + 1, len(T_a)):
            A = invert(T_a[j]) @ T_a[i]
            B = T_b[j] @ invert(T_b[i])
            if rotation_angle(A[:3, :3]) > 1e-3:  # pure translations carry no rotation information
                out.append((A, B))
    return out


def _translation(motions, R_x: np.ndarray) -> np.ndarray:
    """Least-squares t_X from (R_A - I) t_X = R_X t_B - t_A."""
    C = np.concatenate([A[:3, :3] - np.eye(3) for A, _ in motions])
    d = np.concatenate([R_x @ B[:3, 3] - A[:3, 3] for A, B in motions])
    return np.linalg.lstsq(C, d, rcond=None)[0]


def _rotation_tsai(motions) -> np.ndarray:
    rows, rhs = [], []
    for A, B in motions:
        pa, pb = (2 * np.sin(rotation_angle(M[:3, :3]) / 2) * _axis(M[:3, :3]) for M in (A, B))
        rows.append(skew(pa + pb))
        rhs.append(pb - pa)
    p_prime = np.linalg.lstsq(np.concatenate(rows), np.concatenate(rhs), rcond=None)[0]
    p = 2 * p_prime / np.sqrt(1 + p_prime @ p_prime)
    n2 = p @ p
    return (1 - n2 / 2) * np.eye(3) + 0.5 * (np.outer(p, p) + np.sqrt(max(4 - n2, 0.0)) * skew(p))


def _axis(R: np.ndarray) -> np.ndarray:
    rv = log_so3(R)
    n = np.linalg.norm(rv)
    return rv / n if n > 0 else rv


def _rotation_park(motions) -> np.ndarray:
    M = sum(np.outer(log_so3(B[:3, :3]), log_so3(A[:3, :3])) for A, B in motions)
    w, V = np.linalg.eigh(M.T @ M)
    if w.min() <= 1e-12:
        raise CalibrationError("Park: rotation axes do not span 3-D; add rotations about other axes")
    return project_to_so3(V @ np.diag(w ** -0.5) @ V.T @ M.T)


def _quat_wxyz(R: np.ndarray) -> np.ndarray:
    rv = log_so3(R)
    a = np.linalg.norm(rv)
    axis = rv / a if a > 0 else np.zeros(3)
    return np.concatenate([[np.cos(a / 2)], np.sin(a / 2) * axis])


def _rotation_horaud(motions) -> np.ndarray:
    def left(q):
        w, x, y, z = q
        return np.array([[w, -x, -y, -z], [x, w, -z, y], [y, z, w, -x], [z, -y, x, w]])

    def right(q):
        w, x, y, z = q
        return np.array([[w, -x, -y, -z], [x, w, z, -y], [y, -z, w, x], [z, y, -x, w]])

    rows = [left(_quat_wxyz(A[:3, :3])) - right(_quat_wxyz(B[:3, :3])) for A, B in motions]
    _, _, Vt = np.linalg.svd(np.concatenate(rows))
    return _quat_matrix(Vt[-1])


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _rotation_andreff(motions) -> np.ndarray:
    # R_A R_X = R_X R_B  <=>  (I9 - R_A (x) R_B) vec(R_X) = 0 (row-major vec).
    rows = [np.eye(9) - np.kron(A[:3, :3], B[:3, :3]) for A, B in motions]
    _, _, Vt = np.linalg.svd(np.concatenate(rows))
    R = Vt[-1].reshape(3, 3)
    R = R * np.sign(np.linalg.det(R)) / abs(np.linalg.det(R)) ** (1 / 3)
    return project_to_so3(R)


def _quat_mul_wxyz(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _dual_quat(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit dual quaternion (real, dual), wxyz, of a rigid transform, real part with w >= 0."""
    q = _quat_wxyz(T[:3, :3])
    return q, 0.5 * _quat_mul_wxyz(np.concatenate([[0.0], T[:3, 3]]), q)


def _daniilidis(motions) -> np.ndarray:
    """Daniilidis 1999: rotation and translation together from dual quaternions (SVD)."""
    rows = []
    for A, B in motions:
        (a, a_d), (b, b_d) = _dual_quat(A), _dual_quat(B)
        top = np.hstack([(a[1:] - b[1:])[:, None], skew(a[1:] + b[1:]), np.zeros((3, 4))])
        bottom = np.hstack([(a_d[1:] - b_d[1:])[:, None], skew(a_d[1:] + b_d[1:]),
                            (a[1:] - b[1:])[:, None], skew(a[1:] + b[1:])])
        rows += [top, bottom]
    _, _, Vt = np.linalg.svd(np.concatenate(rows))
    u1, v1, u2, v2 = Vt[6, :4], Vt[6, 4:], Vt[7, :4], Vt[7, 4:]
    # lambda1 v7 + lambda2 v8 must be a unit dual quaternion: q.q = 1 and q.q' = 0.
    roots = np.roots([u1 @ v1, u1 @ v2 + u2 @ v1, u2 @ v2])
    roots = roots[np.isreal(roots)].real
    if len(roots) == 0:
        raise CalibrationError("Daniilidis: no real solution; the motions are degenerate")
    norms = [s * s * (u1 @ u1) + 2 * s * (u1 @ u2) + u2 @ u2 for s in roots]
    s = roots[int(np.argmax(norms))]
    lam2 = 1.0 / np.sqrt(max(norms))
    q, q_d = s * lam2 * u1 + lam2 * u2, s * lam2 * v1 + lam2 * v2
    t = 2.0 * _quat_mul_wxyz(q_d, q * np.array([1, -1, -1, -1]))[1:]
    return from_rt(_quat_matrix(q), t)


_NUMPY_SOLVERS = {"tsai": _rotation_tsai, "park": _rotation_park, "horaud": _rotation_horaud, "andreff": _rotation_andreff}


def solve_ax_xb(T_a: Sequence[np.ndarray], T_b: Sequence[np.ndarray], method: str = "park",
                backend: str = "auto") -> tuple[np.ndarray, str]:
    """Solve AX = XB in OpenCV's convention (``cv2.calibrateHandEye``'s arguments).

    Args:
        T_a: (4, 4) "gripper-to-base" transforms (``T_base_ee`` for eye-in-hand).
        T_b: (4, 4) "target-to-camera" transforms (``T_cam_board``).
        method: one of ``METHODS``.
        backend: ``auto`` (OpenCV when available), ``opencv`` or ``numpy``.

    Returns:
        ``(X, backend_used)``: (4, 4) "camera-to-gripper" transform.
    """
    if method not in METHODS:
        raise CalibrationError(f"unknown hand-eye method {method!r}; choose one of {METHODS}")
    use_cv = backend == "opencv" or (backend == "auto" and have_opencv_hand_eye())
    if use_cv:
        if not have_opencv_hand_eye():
            raise CalibrationError(f"this OpenCV ({cv2.__version__}) has no calibrateHandEye; use backend=numpy")
        R, t = cv2.calibrateHandEye(
            [T[:3, :3] for T in T_a], [T[:3, 3] for T in T_a],
            [T[:3, :3] for T in T_b], [T[:3, 3] for T in T_b],
            method=getattr(cv2, _CV2_METHODS[method]),
        )
        return from_rt(R, t.reshape(3)), "opencv"
    motions = _motions(T_a, T_b)
    if len(motions) < 2:
        raise CalibrationError("hand-eye needs >= 2 motions with rotation; the poses barely rotate")
    if method == "daniilidis":
        return _daniilidis(motions), "numpy"
    R_x = _NUMPY_SOLVERS[method](motions)
    return from_rt(R_x, _translation(motions, R_x)), "numpy"


def consistency_residuals(T_a: Sequence[np.ndarray], T_b: Sequence[np.ndarray], X: np.ndarray) -> dict:
    """How well X explains the data.

    Args:
        T_a, T_b: as for ``solve_ax_xb``.
        X: the solved "camera-to-gripper" transform.

    Returns:
        ``axxb_rot_deg``/``axxb_trans_mm``: per consecutive pair (i, i+1), the rotation
        (degrees) and translation (mm) of ``inv(A X) X B`` (zero for perfect data), with their
        ``*_rms``/``*_max``; ``target_spread_trans_mm``/``target_spread_rot_deg``: the RMS
        scatter of the implied fixed transform (board in base for eye-in-hand, board in
        gripper for eye-to-hand) around its mean over all poses.
    """
    rot, trans = [], []
    for i in range(len(T_a) - 1):
        A = invert(T_a[i + 1]) @ T_a[i]
        B = T_b[i + 1] @ invert(T_b[i])
        E = invert(A @ X) @ X @ B
        rot.append(float(np.degrees(rotation_angle(E[:3, :3]))))
        trans.append(float(1000 * np.linalg.norm(E[:3, 3])))
    fixed = [Ta @ X @ Tb for Ta, Tb in zip(T_a, T_b)]
    mean_t = np.mean([F[:3, 3] for F in fixed], axis=0)
    mean_R = project_to_so3(sum(F[:3, :3] for F in fixed))
    spread_t = np.sqrt(np.mean([np.sum((F[:3, 3] - mean_t) ** 2) for F in fixed]))
    spread_r = np.sqrt(np.mean([rotation_angle(mean_R.T @ F[:3, :3]) ** 2 for F in fixed]))

    def rms(v):
        return float(np.sqrt(np.mean(np.square(v)))) if v else 0.0

    return {
        "axxb_rot_deg": rot, "axxb_trans_mm": trans,
        "axxb_rot_deg_rms": rms(rot), "axxb_rot_deg_max": max(rot, default=0.0),
        "axxb_trans_mm_rms": rms(trans), "axxb_trans_mm_max": max(trans, default=0.0),
        "target_spread_trans_mm": float(1000 * spread_t),
        "target_spread_rot_deg": float(np.degrees(spread_r)),
    }


def calibrate_hand_eye(
    T_base_ee: Sequence[np.ndarray],
    T_cam_board: Sequence[np.ndarray],
    mounting: str = "eye_in_hand",
    method: str = "park",
    backend: str = "auto",
    min_poses: int = 6,
    min_rotation_deg: float = 5.0,
    max_spread_mm: float = 5.0,
) -> HandEyeResult:
    """Hand-eye calibration from end-effector poses and board poses.

    Args:
        T_base_ee: (4, 4) end-effector poses in the base frame, metres (measured, not commanded).
        T_cam_board: (4, 4) board poses in the camera frame at the same instants.
        mounting: ``eye_in_hand`` (returns ``T_ee_cam``) or ``eye_to_hand`` (returns ``T_base_cam``).
        method: ``tsai``, ``park``, ``horaud``, ``andreff`` or ``daniilidis`` (numpy or OpenCV).
        backend: ``auto``, ``opencv`` or ``numpy``.
        min_poses: fewest poses accepted.
        min_rotation_deg: a pose set whose largest relative rotation is below this is degenerate.
        max_spread_mm: reject when the implied fixed transform scatters more than this (RMS, mm).

    Returns:
        The result with residuals and pose-set diagnostics.

    Raises:
        DegeneratePosesError: too few poses, pure translations, or a single rotation axis.
        CalibrationError: inconsistent data (residual scatter above ``max_spread_mm``).
    """
    if mounting not in MOUNTINGS:
        raise CalibrationError(f"mounting must be one of {MOUNTINGS}, got {mounting!r}")
    if len(T_base_ee) != len(T_cam_board):
        raise CalibrationError(f"{len(T_base_ee)} arm poses but {len(T_cam_board)} board poses")
    T_base_ee = [np.asarray(T, np.float64) for T in T_base_ee]
    diversity, warnings = check_pose_diversity(T_base_ee, min_poses=min_poses, min_rotation_deg=min_rotation_deg)
    # Eye-to-hand is the same equation with the arm poses inverted ("base-to-gripper").
    T_a = T_base_ee if mounting == "eye_in_hand" else [invert(T) for T in T_base_ee]
    T_b = [np.asarray(T, np.float64) for T in T_cam_board]
    X, used = solve_ax_xb(T_a, T_b, method, backend)
    residuals = consistency_residuals(T_a, T_b, X)
    if residuals["target_spread_trans_mm"] > max_spread_mm:
        raise CalibrationError(
            f"hand-eye data inconsistent: the board's implied pose scatters "
            f"{residuals['target_spread_trans_mm']:.1f} mm RMS (limit {max_spread_mm} mm). Check the "
            f"mounting ({mounting}), that the board and camera did not move, that arm poses were read "
            "after the arm settled, and the board's square length."
        )
    return HandEyeResult(X, mounting, method, used, len(T_base_ee), residuals, diversity, warnings)
