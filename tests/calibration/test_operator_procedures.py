"""Workspace teaching, SpaceMouse dead-zone/axes, crops, arm driving, RealSense factory intrinsics."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from calibration.crops import apply_crop, preview_crop, select_crop_console, validate_crop
from calibration.drive import DriveConfig, collect_hand_eye_samples
from calibration.errors import CalibrationError
from calibration.intrinsics import compare_intrinsics, device_color_intrinsics
from calibration.spacemouse import calibrate_spacemouse, measure_deadzone
from calibration.workspace import teach_workspace
from robot_env.hardware import ARMS
from tests.calibration import fake_arm  # noqa: F401  (registers calib_kinematic)


class FakeClock:
    """Monotonic clock that advances only when the code under test sleeps."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += max(dt, 1e-4)


# --- workspace ------------------------------------------------------------------------------
def _corner_script(lo, hi, per_corner=5):
    corners = [np.array([x, y, z]) for x, y, z in itertools.product(*zip(lo, hi))]
    path = []
    for a, b in zip(corners, corners[1:]):
        path += [a + (b - a) * s for s in np.linspace(0, 1, per_corner)]
    return path


def test_workspace_taught_from_scripted_operator():
    lo, hi = np.array([0.3, -0.2, 0.05]), np.array([0.6, 0.25, 0.4])
    script = _corner_script(lo, hi)
    arm = ARMS.make({"type": "calib_kinematic"}, script=list(script))
    clock = FakeClock()
    steps = []
    with arm:
        bounds = teach_workspace(arm, done=lambda: not arm.script, step=lambda: steps.append(1),
                                 margin=0.01, clock=clock, sleep=clock.sleep)
    np.testing.assert_allclose(bounds.min, lo - 0.01, atol=1e-9)
    np.testing.assert_allclose(bounds.max, hi + 0.01, atol=1e-9)
    assert bounds.n_samples == len(script) and len(steps) == len(script)
    assert bounds.contains((lo + hi) / 2) and not bounds.contains(hi + 0.02)


def test_workspace_rejects_flat_box_and_stale_arm():
    flat = [np.array([0.3 + 0.01 * k, 0.1 * (k % 2), 0.2]) for k in range(20)]  # z never changes
    arm = ARMS.make({"type": "calib_kinematic"}, script=flat)
    clock = FakeClock()
    with arm, pytest.raises(CalibrationError, match="moved too little along \\['z'\\]"):
        teach_workspace(arm, done=lambda: not arm.script, margin=0.0, clock=clock, sleep=clock.sleep)
    # the default 1 cm margin must not turn an arm that never moved into a 2 cm box that passes
    still = [np.array([0.45, 0.0, 0.25])] * 20
    arm = ARMS.make({"type": "calib_kinematic"}, script=still)
    with arm, pytest.raises(CalibrationError, match="moved too little along \\['x', 'y', 'z'\\]"):
        teach_workspace(arm, done=lambda: not arm.script, margin=0.01, min_extent=0.02, clock=clock,
                        sleep=clock.sleep)
    arm = ARMS.make({"type": "calib_kinematic", "stale_after": 3})
    with arm, pytest.raises(CalibrationError, match="stale"):
        teach_workspace(arm, done=lambda: False, max_stale=5, clock=clock, sleep=clock.sleep)


# --- SpaceMouse ---------------------------------------------------------------------------------
class ScriptedSpaceMouse:
    """Resting noise, then pushes the operator makes when told to (device mounted turned 90 deg).

    This device's axes: robot forward = device -y, robot left = device +x, robot up = device +z.
    """

    def __init__(self, clock, rest_noise=0.01, push=None, seed=0):
        self.clock = clock
        self.rng = np.random.default_rng(seed)
        self.rest_noise = rest_noise
        self.push = {"FORWARD": (1, -0.8), "LEFT": (0, 0.7), "UP": (2, 0.9)} if push is None else push
        self.active = None
        self.until = 0.0

    def say(self, text: str) -> None:
        for word, (axis, value) in self.push.items():
            if word in text:
                self.active, self.until = (axis, value), self.clock() + 0.5

    def read(self):
        v = self.rng.normal(0, self.rest_noise / 3, 6).clip(-self.rest_noise, self.rest_noise)
        if self.active is not None and self.clock() < self.until:
            v[self.active[0]] += self.active[1]
        return v, self.clock()


def test_spacemouse_deadzone_and_axis_mapping():
    clock = FakeClock()
    dev = ScriptedSpaceMouse(clock)
    said = []

    def say(text):
        said.append(text)
        dev.say(text)

    cal = calibrate_spacemouse(dev, say=say, rest_s=1.0, clock=clock, sleep=clock.sleep)
    assert cal.order[:3] == [1, 0, 2] and cal.sign[:3] == [-1.0, 1.0, 1.0]
    assert cal.handedness == 1  # the device is turned 90 deg: a proper rotation ...
    assert cal.order[3:] == [4, 3, 5] and cal.sign[3:] == [-1.0, 1.0, 1.0]  # ... rotations map alike
    assert cal.deadzone == [0.02] * 6  # resting noise 0.01 * 1.5 is below the 0.02 floor
    assert np.allclose(cal.bias, 0.0, atol=0.005) and len(cal.axis_map()["bias"]) == 6
    assert any("FORWARD" in s for s in said) and any("UP" in s for s in said)
    # The result drives teleop's own axis mapping: pushing forward now commands robot +x.
    from teleop.base import AxisMapConfig, map_axes

    axes = AxisMapConfig(**cal.axis_map())
    raw = np.zeros(6)
    raw[1] = -0.8
    cmd, moved = map_axes(raw, axes)
    assert moved and cmd[0] > 0.5 and np.allclose(cmd[1:], 0)


def test_spacemouse_noisy_device_and_mirrored_axis():
    clock = FakeClock()
    # A noisy cap whose y axis is wired backwards: forward = +x, left = -y (a reflection).
    dev = ScriptedSpaceMouse(clock, rest_noise=0.04, push={"FORWARD": (0, 0.8), "LEFT": (1, -0.7), "UP": (2, 0.9)})
    cal = calibrate_spacemouse(dev, say=dev.say, rest_s=1.0, clock=clock, sleep=clock.sleep)
    assert cal.order == [0, 1, 2, 3, 4, 5] and cal.sign[:3] == [1.0, -1.0, 1.0]
    assert cal.handedness == -1 and cal.sign[3:] == [-1.0, 1.0, -1.0]  # pseudo-vectors flip once more
    assert all(0.04 < d <= 0.065 for d in cal.deadzone)  # 1.5 x the largest resting deviation


def test_spacemouse_touched_while_resting_or_twisted():
    clock = FakeClock()
    with pytest.raises(CalibrationError, match="moved while measuring"):
        measure_deadzone(ScriptedSpaceMouse(clock, rest_noise=0.5), duration_s=0.5, clock=clock, sleep=clock.sleep)
    dev = ScriptedSpaceMouse(clock, push={"FORWARD": (4, 0.8)})  # tilts instead of pushing
    with pytest.raises(CalibrationError, match="tilted"):
        calibrate_spacemouse(dev, say=dev.say, rest_s=0.5, timeout_s=2.0, clock=clock, sleep=clock.sleep)
    dev = ScriptedSpaceMouse(clock, push={})  # operator never pushes
    with pytest.raises(CalibrationError, match="no push"):
        calibrate_spacemouse(dev, say=dev.say, rest_s=0.5, timeout_s=1.0, clock=clock, sleep=clock.sleep)


def test_spacemouse_rejects_nan_readings():
    class NaNDevice:
        def read(self):
            return np.array([0, np.nan, 0, 0, 0, 0]), 0.0

    clock = FakeClock()
    with pytest.raises(CalibrationError, match="finite"):
        measure_deadzone(NaNDevice(), duration_s=0.5, clock=clock, sleep=clock.sleep)


# --- crops --------------------------------------------------------------------------------------
def test_crop_numbers_validated_and_previewed(tmp_path):
    image = np.zeros((480, 640, 3), np.uint8)
    assert validate_crop([100, 50, 320, 240], (640, 480)) == (100, 50, 320, 240)
    for bad, match in [([600, 0, 100, 100], "leaves"), ([0, 0, 8, 8], "smaller"), ([1, 2, 3], "x, y"),
                       ([0.5, 0, 100, 100], "whole pixels")]:
        with pytest.raises(CalibrationError, match=match):
            validate_crop(bad, (640, 480))
    assert apply_crop(image, (100, 50, 320, 240)).shape == (240, 320, 3)
    prev = preview_crop(image, (100, 50, 320, 240), "front")
    assert prev.shape == (480, 640 + 640, 3) and prev[50, 100].any()  # outline drawn


def test_crop_console_entry(tmp_path):
    image = np.full((480, 640, 3), 90, np.uint8)
    answers = iter(["10 10 5000 10", "100, 50, 320, 240", "n", "120 60 320 240", "y"])
    crop = select_crop_console(image, tmp_path / "front.png", ask=lambda _: next(answers))
    assert crop == (120, 60, 320, 240) and (tmp_path / "front.png").exists()


# --- arm driving ------------------------------------------------------------------------------
def test_out_of_bounds_pose_list_never_reaches_the_arm(eye_in_hand_session):
    session = eye_in_hand_session
    arm = ARMS.make({"type": "calib_kinematic"})
    cfg = DriveConfig(bounds_min=[0.3, -0.3, 0.2], bounds_max=[0.7, 0.3, 0.38], settle_s=0.0)
    with arm, pytest.raises(CalibrationError, match="outside the workspace"):
        collect_hand_eye_samples(arm, session["camera"], session["board"], session["poses"], cfg, progress=False)
    assert arm.commands == []


def test_board_out_of_view_is_reported_as_missed(eye_in_hand_session):
    session = eye_in_hand_session
    arm, camera = session["arm"], session["camera"]
    far = [(np.array([2.5, 2.0, 0.4]), np.array([1.0, 0, 0, 0]))]  # camera looks at empty floor
    cfg = DriveConfig(settle_s=0.0, poll_s=0.001, max_speed=None, max_rot_speed_deg=None)
    with arm, camera:
        samples, missed = collect_hand_eye_samples(arm, camera, session["board"], far + session["poses"][:2], cfg,
                                                   progress=False)
    assert missed == [0] and len(samples) == 2


def test_unreachable_pose_times_out_and_stops():
    arm = ARMS.make({"type": "calib_kinematic", "move_time_s": 100.0})
    board_cam = None
    target = [(np.array([0.3, 0.2, 0.3]), np.array([1.0, 0, 0, 0]))]
    cfg = DriveConfig(reach_timeout_s=0.05, poll_s=0.005, settle_s=0.0, skip_unreachable=False,
                      max_speed=None, max_rot_speed_deg=None)
    with arm, pytest.raises(CalibrationError, match="did not reach"):
        collect_hand_eye_samples(arm, board_cam, None, target, cfg, progress=False)
    cfg.skip_unreachable = True  # default: the pose is skipped and reported as missed
    with arm:
        assert collect_hand_eye_samples(arm, board_cam, None, target, cfg, progress=False) == ([], [0])


# --- RealSense factory intrinsics -----------------------------------------------------------
def _software_realsense(fx=615.0, fy=616.0, ppx=318.0, ppy=245.0):
    rs = pytest.importorskip("pyrealsense2")
    dev = rs.software_device()
    intr = rs.intrinsics()
    intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = 640, 480, fx, fy, ppx, ppy
    intr.model, intr.coeffs = rs.distortion.brown_conrady, [-0.05, 0.02, 0.0, 0.0, 0.0]
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.color, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp, stream.fmt, stream.intrinsics = 640, 480, 30, 3, rs.format.rgb8, intr
    sensor = dev.add_sensor("RGB Camera")
    sensor.add_video_stream(stream)
    return dev, sensor


def test_realsense_factory_intrinsics_read_and_compared():
    dev, _sensor = _software_realsense()
    factory = device_color_intrinsics(dev, 640, 480)
    assert (factory.fx, factory.fy, factory.cx, factory.cy) == pytest.approx((615.0, 616.0, 318.0, 245.0))
    assert factory.model == "brown_conrady" and factory.dist_coeffs[0] == pytest.approx(-0.05)
    same = compare_intrinsics(factory, factory)
    assert same["max_pixel_diff_px"] < 1e-6
    dev2, _sensor2 = _software_realsense(fx=625.0, ppx=322.0)  # keep both alive: librealsense owns the profiles
    shifted = device_color_intrinsics(dev2, 640, 480)
    diff = compare_intrinsics(shifted, factory)
    assert diff["d_fx_px"] == pytest.approx(10.0) and diff["d_cx_px"] == pytest.approx(4.0)
    assert diff["max_pixel_diff_px"] > 4.0 and diff["distortion_compared"]
    with pytest.raises(CalibrationError, match="no colour stream"):
        device_color_intrinsics(dev, 1280, 720)


# --- operator-held board (intrinsics without arm motion) ----------------------------------------
def test_capture_views_keeps_only_moved_views_then_calibrates():
    """Board in the operator's hand (eye-to-hand camera): still frames are not counted twice."""
    from calibration.accuracy import eye_to_hand_scenario
    from calibration.guidance import generate_pose_list
    from calibration.intrinsics import calibrate_intrinsics
    from calibration.procedures import capture_views
    from calibration.synthetic import SyntheticBoardCameraConfig
    from calibration.transforms import matrix_to_pose
    from robot_env.hardware import CAMERAS

    sc = eye_to_hand_scenario()
    pos, quat = matrix_to_pose(sc.center)
    held = []
    for p, q in generate_pose_list(pos, quat, 8, tilt_deg=25.0, pivot_distance=sc.pivot):
        held += [np.concatenate([p, q])] * 3  # the operator holds each pose for three frames
    arm = ARMS.make({"type": "calib_kinematic"}, script=held)
    cp, cq = matrix_to_pose(sc.truth)
    bp, bq = matrix_to_pose(sc.board)
    camera = CAMERAS.make(SyntheticBoardCameraConfig(mounting="eye_to_hand", camera_pose=[*cp, *cq],
                                                     board_pose=[*bp, *bq], fy=600.0), arm=arm)
    clock = FakeClock()
    said = []
    with arm, camera:
        detections, images = capture_views(camera, camera.board, 8, say=said.append, clock=clock, sleep=clock.sleep)
        assert len(detections) == 8 and len(images) == 8
        assert arm.reads == 8 * 3 - 2  # the last pose's repeats were never needed
        with pytest.raises(CalibrationError, match=r"only \d of 3 board views within 0.5 s"):  # the operator stopped
            capture_views(camera, camera.board, 3, say=said.append, timeout_s=0.5, clock=clock, sleep=clock.sleep)
    intr = calibrate_intrinsics(detections)
    assert abs(intr.fx - 600.0) < 3.0 and abs(intr.cx - 320.0) < 3.0
    assert "view 8/8" in said[-1] or any("view 8/8" in s for s in said)


def test_spacemouse_file_is_read_by_teleop(tmp_path):
    """The written file drives teleop's own loader: pushing 'forward' on the turned device is robot +x."""
    from calibration.files import save_calibration
    from calibration.procedures import spacemouse_file
    from teleop.base import axes_from_calibration, map_axes

    clock = FakeClock()
    dev = ScriptedSpaceMouse(clock)
    cal = calibrate_spacemouse(dev, say=dev.say, rest_s=1.0, clock=clock, sleep=clock.sleep)
    path = save_calibration(spacemouse_file(cal), tmp_path / "spacemouse.yaml")
    axes = axes_from_calibration(str(path))
    for device_axis, value, robot_axis in [(1, -0.8, 0), (0, 0.7, 1), (2, 0.9, 2)]:
        raw = np.array(cal.bias)
        raw[device_axis] += value
        cmd, moved = map_axes(raw, axes)
        assert moved and cmd[robot_axis] > 0.5 and np.count_nonzero(cmd) == 1
    assert not map_axes(np.array(cal.bias), axes)[1]  # at rest: nothing moves
