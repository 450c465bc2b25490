"""Homogeneous transforms for calibration: ``T_a_b`` maps points in frame b to frame a (metres)."""

from __future__ import annotations

import numpy as np

from robot_env.geometry import matrix_to_quat, quat_to_matrix


def pose_to_matrix(pos, quat_xyzw) -> np.ndarray:
    """(3,) position in metres and (4,) quaternion xyzw -> (4, 4) float64 transform."""
    T = np.eye(4)
    T[:3, :3] = quat_to_matrix(np.asarray(quat_xyzw, np.float64))
    T[:3, 3] = np.asarray(pos, np.float64).reshape(3)
    return T


def matrix_to_pose(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(4, 4) transform -> ((3,) position metres, (4,) quaternion xyzw)."""
    T = np.asarray(T, np.float64)
    return T[:3, 3].copy(), matrix_to_quat(T[:3, :3])


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform."""
    Ti = np.eye(4)
    R = T[:3, :3]
    Ti[:3, :3] = R.T
    Ti[:3, 3] = -R.T @ T[:3, 3]
    return Ti


def from_rt(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(3, 3) rotation and (3,) translation -> (4, 4) transform."""
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(t, np.float64).reshape(3)
    return T


def rotation_angle(R: np.ndarray) -> float:
    """Angle of a rotation matrix, radians in [0, pi]."""
    c = (np.trace(R) - 1.0) / 2.0
    return float(np.arccos(np.clip(c, -1.0, 1.0)))


def log_so3(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> (3,) rotation vector (axis * angle, radians)."""
    angle = rotation_angle(R)
    if angle < 1e-10:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if np.pi - angle < 1e-6:  # near pi: axis from the symmetric part
        M = (R + np.eye(3)) / 2.0
        axis = M[:, int(np.argmax(np.diag(M)))]
        axis = axis / np.linalg.norm(axis)
        return axis * angle
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return w * angle / (2.0 * np.sin(angle))


def exp_so3(rv: np.ndarray) -> np.ndarray:
    """(3,) rotation vector -> rotation matrix (Rodrigues)."""
    rv = np.asarray(rv, np.float64)
    angle = np.linalg.norm(rv)
    if angle < 1e-12:
        return np.eye(3)
    k = rv / angle
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def skew(v: np.ndarray) -> np.ndarray:
    """(3,) vector -> (3, 3) cross-product matrix."""
    return np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]], np.float64)


def project_to_so3(M: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (Frobenius) to a (3, 3) matrix."""
    U, _, Vt = np.linalg.svd(M)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    return R


def transform_error(T_est: np.ndarray, T_true: np.ndarray) -> tuple[float, float]:
    """(translation error in metres, rotation error in radians) between two transforms."""
    dt = float(np.linalg.norm(T_est[:3, 3] - T_true[:3, 3]))
    dr = rotation_angle(T_est[:3, :3].T @ T_true[:3, :3])
    return dt, dr
