"""Operator guidance for hand-eye data: is the pose set diverse enough, and a pose list to drive.

Hand-eye calibration recovers the rotation from how the end effector *rotates* between
poses, and the translation only once the rotations span at least two axes. Pure
translations determine nothing; rotations about a single axis leave the translation
along that axis unknown. ``check_pose_diversity`` measures this before solving.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from calibration.errors import DegeneratePosesError
from calibration.transforms import exp_so3, invert, log_so3, rotation_angle

#: Poses the procedure asks for by default; fewer work but scatter more.
RECOMMENDED_POSES = 12
#: Largest relative rotation the pose set should reach, degrees.
RECOMMENDED_ROTATION_DEG = 20.0


def check_pose_diversity(
    T_base_ee: Sequence[np.ndarray], min_poses: int = 6, min_rotation_deg: float = 5.0
) -> tuple[dict, list[str]]:
    """Measure the rotation spread of a pose set and refuse degenerate sets.

    Args:
        T_base_ee: (4, 4) end-effector poses, base frame, metres.
        min_poses: fewest poses accepted.
        min_rotation_deg: the largest relative rotation between any two poses must reach
            this, degrees; below it the set is "pure translation".

    Returns:
        ``(stats, warnings)``: ``stats`` has ``n_poses``, ``max_rotation_deg`` (largest
        relative rotation between two poses), ``axis_spread`` (singular values, normalised,
        of the relative rotation axes: the 2nd and 3rd say how far the axes leave one
        line), ``translation_range_m`` (per-axis extent of the positions); ``warnings`` are
        operator hints for a weak but usable set.

    Raises:
        DegeneratePosesError: too few poses, pure translation, or one rotation axis only.
    """
    n = len(T_base_ee)
    if n < min_poses:
        raise DegeneratePosesError(
            f"too few poses for hand-eye calibration: {n} < {min_poses} (recommended {RECOMMENDED_POSES}). "
            "Add poses that tilt the gripper about different axes while keeping the board in view."
        )
    rotvecs = []
    for i in range(n):
        for j in range(i + 1, n):
            rotvecs.append(log_so3((invert(T_base_ee[i]) @ T_base_ee[j])[:3, :3]))
    rotvecs = np.array(rotvecs)
    angles = np.linalg.norm(rotvecs, axis=1)
    max_rot = float(np.degrees(angles.max()))
    positions = np.array([T[:3, 3] for T in T_base_ee])
    stats = {
        "n_poses": n,
        "max_rotation_deg": max_rot,
        "translation_range_m": (positions.max(0) - positions.min(0)).tolist(),
    }
    if max_rot < min_rotation_deg:
        raise DegeneratePosesError(
            f"degenerate hand-eye poses: the gripper rotates at most {max_rot:.2f} deg between poses "
            f"(need >= {min_rotation_deg} deg, recommended >= {RECOMMENDED_ROTATION_DEG} deg). Pure "
            "translations cannot determine the camera's rotation: tilt and twist the gripper between poses."
        )
    axes = rotvecs[angles > np.radians(min_rotation_deg) / 2]
    axes = axes / np.linalg.norm(axes, axis=1, keepdims=True)
    sv = np.linalg.svd(axes, compute_uv=False) if len(axes) else np.zeros(3)
    sv = np.pad(sv, (0, 3 - len(sv)))
    spread = (sv / sv[0]).tolist() if sv[0] > 0 else [0.0, 0.0, 0.0]
    stats["axis_spread"] = spread
    if spread[1] < 0.1:
        raise DegeneratePosesError(
            "degenerate hand-eye poses: every rotation is about (nearly) the same axis, which leaves "
            "the camera's offset along that axis unknown. Add tilts about a second axis."
        )
    warnings = []
    if n < RECOMMENDED_POSES:
        warnings.append(f"only {n} poses; {RECOMMENDED_POSES}+ give a steadier result")
    if max_rot < RECOMMENDED_ROTATION_DEG:
        warnings.append(f"largest rotation {max_rot:.1f} deg; aim for >= {RECOMMENDED_ROTATION_DEG} deg")
    if spread[1] < 0.3:
        warnings.append("rotation axes are nearly parallel; tilt about more varied axes")
    return stats, warnings


def generate_pose_list(
    center_pos: Sequence[float],
    center_quat: Sequence[float],
    n_poses: int = RECOMMENDED_POSES,
    tilt_deg: float = 20.0,
    twist_deg: float = 25.0,
    pivot_distance: float = 0.35,
    jitter_m: float = 0.02,
    seed: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Diverse end-effector poses around a nominal one, all looking at the same point.

    Each pose tilts the gripper by ``tilt_deg`` about a different axis of its x-y plane
    (directions spread evenly), alternates a twist about its z axis, and pivots about the
    point ``pivot_distance`` ahead along the gripper's z axis (where the board is for a
    wrist camera; for a fixed camera, put the board's centre there), so the board stays in
    view.

    Args:
        center_pos: (3,) nominal position, metres, base frame.
        center_quat: (4,) nominal orientation, xyzw, base frame.
        n_poses: number of poses (the first is the nominal pose).
        tilt_deg: tilt of the gripper z axis away from nominal, degrees.
        twist_deg: amplitude of the twist about the gripper z axis, degrees.
        pivot_distance: distance of the pivot point along the gripper z axis, metres.
        jitter_m: random position offset added to each pose (uniform, per axis), metres.
        seed: jitter seed.

    Returns:
        ``n_poses`` pairs ``(pos (3,), quat xyzw (4,))`` in the base frame.
    """
    from robot_env.geometry import matrix_to_quat, quat_to_matrix

    rng = np.random.default_rng(seed)
    R0 = quat_to_matrix(np.asarray(center_quat, np.float64))
    p0 = np.asarray(center_pos, np.float64)
    pivot = p0 + R0[:, 2] * pivot_distance
    poses = [(p0.copy(), matrix_to_quat(R0))]
    golden = np.pi * (3 - np.sqrt(5))
    for k in range(1, n_poses):
        phi = k * golden
        tilt = np.radians(tilt_deg) * (0.6 + 0.4 * (k % 2))
        twist = np.radians(twist_deg) * (1 if k % 3 == 0 else -1 if k % 3 == 1 else 0.3)
        rv_local = np.array([np.cos(phi) * tilt, np.sin(phi) * tilt, twist])
        R = R0 @ exp_so3(rv_local)
        pos = pivot - R[:, 2] * pivot_distance + rng.uniform(-jitter_m, jitter_m, 3)
        poses.append((pos, matrix_to_quat(R)))
    return poses


def pose_angle_deg(q_a: Sequence[float], q_b: Sequence[float]) -> float:
    """Angle between two xyzw orientations, degrees."""
    from robot_env.geometry import quat_to_matrix

    return float(np.degrees(rotation_angle(quat_to_matrix(np.asarray(q_a)).T @ quat_to_matrix(np.asarray(q_b)))))
