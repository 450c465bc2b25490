"""Rotation maths in numpy, quaternions in (x, y, z, w) order.

Rotations are composed as rotations: a delta given as a rotation vector is turned into
a quaternion with the exponential map and multiplied in, never added as Euler angles
(adding Euler angles is only right for a pure yaw; hil-serl#41/#48).
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def quat_normalize(q: np.ndarray) -> np.ndarray:
    """Unit quaternion (..., 4) with w >= 0 (one canonical sign)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < _EPS) or not np.all(np.isfinite(q)):
        raise ValueError(f"not a valid quaternion: {q}")
    q = q / n
    return np.where(q[..., 3:4] < 0, -q, q)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of xyzw quaternions (rotation b first, then a)."""
    ax, ay, az, aw = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bx, by, bz, bw = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ],
        axis=-1,
    )


def quat_conj(q: np.ndarray) -> np.ndarray:
    """Conjugate (= inverse for a unit quaternion)."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([-q[..., :3], q[..., 3:]], axis=-1)


def rotvec_to_quat(rv: np.ndarray) -> np.ndarray:
    """Exponential map: rotation vector (..., 3) in radians -> unit quaternion xyzw."""
    rv = np.asarray(rv, dtype=np.float64)
    angle = np.linalg.norm(rv, axis=-1, keepdims=True)
    half = 0.5 * angle
    # sin(x/2)/x with its Taylor series near 0, so tiny rotations stay exact
    k = np.where(angle > 1e-8, np.sin(half) / np.maximum(angle, 1e-300), 0.5 - angle**2 / 48.0)
    return np.concatenate([rv * k, np.cos(half)], axis=-1)


def quat_to_rotvec(q: np.ndarray) -> np.ndarray:
    """Logarithm map: unit quaternion xyzw -> rotation vector (..., 3), angle in [0, pi]."""
    q = quat_normalize(q)
    xyz, w = q[..., :3], q[..., 3:4]
    s = np.linalg.norm(xyz, axis=-1, keepdims=True)
    angle = 2.0 * np.arctan2(s, w)
    k = np.where(s > 1e-8, angle / np.maximum(s, 1e-300), 2.0 / np.maximum(w, 1e-300))
    return xyz * k


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion xyzw (..., 4) -> rotation matrix (..., 3, 3)."""
    x, y, z, w = np.moveaxis(quat_normalize(q), -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Rotation matrix (3, 3) -> unit quaternion xyzw (Shepperd's method)."""
    m = np.asarray(m, dtype=np.float64)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    return quat_normalize(np.array(q))


def quat_wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    """MuJoCo order (w, x, y, z) -> hilr order (x, y, z, w)."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:], q[..., :1]], axis=-1)


def quat_xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    """hilr order (x, y, z, w) -> MuJoCo order (w, x, y, z)."""
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 3:], q[..., :3]], axis=-1)


def apply_rotvec(q: np.ndarray, rv: np.ndarray, frame: str = "base") -> np.ndarray:
    """Rotate orientation ``q`` by rotation vector ``rv``.

    Args:
        q: (4,) current orientation, xyzw, base frame.
        rv: (3,) rotation vector in radians, expressed in ``frame``.
        frame: ``"base"`` (delta about base axes: ``exp(rv) ⊗ q``) or ``"tool"``
            (delta about the end-effector's own axes: ``q ⊗ exp(rv)``).
    """
    dq = rotvec_to_quat(rv)
    if frame == "base":
        return quat_normalize(quat_mul(dq, q))
    if frame == "tool":
        return quat_normalize(quat_mul(q, dq))
    raise ValueError(f"frame must be 'base' or 'tool', got {frame!r}")


def quat_error_rotvec(q_target: np.ndarray, q_current: np.ndarray) -> np.ndarray:
    """Rotation vector (base frame) that takes ``q_current`` to ``q_target``: shortest path."""
    dq = quat_mul(q_target, quat_conj(q_current))
    return quat_to_rotvec(dq)


def quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    """Geodesic angle between two orientations, radians in [0, pi]."""
    return float(np.linalg.norm(quat_error_rotvec(a, b)))


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical linear interpolation from ``a`` (t=0) to ``b`` (t=1), shortest path."""
    a, b = quat_normalize(a), quat_normalize(b)
    if np.dot(a, b) < 0:
        b = -b
    return quat_normalize(quat_mul(rotvec_to_quat(t * quat_to_rotvec(quat_mul(b, quat_conj(a)))), a))


def clip_rotation(q: np.ndarray, q_center: np.ndarray, max_angle: float) -> tuple[np.ndarray, bool]:
    """Limit ``q`` to within ``max_angle`` radians of ``q_center`` (a cone in SO(3)).

    Returns:
        (clipped orientation, whether it was clipped).
    """
    err = quat_error_rotvec(q, q_center)
    angle = float(np.linalg.norm(err))
    if angle <= max_angle:
        return quat_normalize(q), False
    return quat_normalize(quat_mul(rotvec_to_quat(err * (max_angle / angle)), q_center)), True
