import numpy as np
import pytest

from robot_env import geometry as g


def _rand_quat(rng):
    return g.quat_normalize(rng.normal(size=4))


def test_rotvec_roundtrip_and_small_angles():
    rng = np.random.default_rng(0)
    for scale in (1e-10, 1e-4, 0.5, 3.0):
        rv = rng.normal(size=3)
        rv = rv / np.linalg.norm(rv) * scale
        np.testing.assert_allclose(g.quat_to_rotvec(g.rotvec_to_quat(rv)), rv, atol=1e-12)


def test_matrix_roundtrip_and_composition():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = _rand_quat(rng), _rand_quat(rng)
        np.testing.assert_allclose(g.matrix_to_quat(g.quat_to_matrix(a)), a, atol=1e-10)
        np.testing.assert_allclose(
            g.quat_to_matrix(g.quat_mul(a, b)), g.quat_to_matrix(a) @ g.quat_to_matrix(b), atol=1e-10
        )


def test_rotation_deltas_compose_as_rotations_not_euler_sums():
    # 90 deg about x then 90 deg about (base) y: adding Euler angles gets this wrong.
    q0 = np.array([0, 0, 0, 1.0])
    q1 = g.apply_rotvec(q0, np.array([np.pi / 2, 0, 0]))
    q2 = g.apply_rotvec(q1, np.array([0, np.pi / 2, 0]))
    expected = g.quat_to_matrix(g.rotvec_to_quat([0, np.pi / 2, 0])) @ g.quat_to_matrix(
        g.rotvec_to_quat([np.pi / 2, 0, 0])
    )
    np.testing.assert_allclose(g.quat_to_matrix(q2), expected, atol=1e-12)
    # tool-frame delta is right-multiplied
    q3 = g.apply_rotvec(q1, np.array([0, np.pi / 2, 0]), frame="tool")
    np.testing.assert_allclose(
        g.quat_to_matrix(q3), g.quat_to_matrix(q1) @ g.quat_to_matrix(g.rotvec_to_quat([0, np.pi / 2, 0])), atol=1e-12
    )


def test_slerp_endpoints_midpoint_and_shortest_path():
    rng = np.random.default_rng(2)
    a, b = _rand_quat(rng), _rand_quat(rng)
    np.testing.assert_allclose(g.slerp(a, b, 0.0), a, atol=1e-10)
    np.testing.assert_allclose(g.slerp(a, b, 1.0), g.quat_normalize(b), atol=1e-10)
    mid = g.slerp(a, b, 0.5)
    assert g.quat_angle(a, mid) == pytest.approx(g.quat_angle(mid, b), abs=1e-9)
    assert g.quat_angle(a, mid) == pytest.approx(0.5 * g.quat_angle(a, b), abs=1e-9)


def test_clip_rotation_and_invalid_quaternion():
    center = np.array([0, 0, 0, 1.0])
    q = g.rotvec_to_quat([0, 0, 1.0])
    clipped, was = g.clip_rotation(q, center, 0.3)
    assert was and g.quat_angle(clipped, center) == pytest.approx(0.3)
    same, was = g.clip_rotation(q, center, 2.0)
    assert not was and g.quat_angle(same, q) < 1e-12
    with pytest.raises(ValueError):
        g.quat_normalize([np.nan, 0, 0, 1])
