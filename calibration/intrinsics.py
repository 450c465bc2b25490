"""Camera intrinsics from ChArUco views, and comparison with RealSense factory intrinsics."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from calibration.board import BoardDetection
from calibration.errors import CalibrationError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Intrinsics:
    """A pinhole camera with OpenCV distortion.

    Attributes:
        camera_matrix: (3, 3) float64 ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``, pixels.
        dist_coeffs: (5,) float64 OpenCV ``(k1, k2, p1, p2, k3)``.
        image_size: (width, height), pixels.
        rms: reprojection RMS over all views, pixels (NaN for factory values).
        per_view_rms: per-view reprojection RMS, pixels.
        n_views: number of images used.
        model: distortion model name (``opencv`` or a RealSense model name).
    """

    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    image_size: tuple[int, int]
    rms: float = float("nan")
    per_view_rms: list = dataclasses.field(default_factory=list)
    n_views: int = 0
    model: str = "opencv"

    @property
    def fx(self) -> float:
        """Focal length along x, pixels."""
        return float(self.camera_matrix[0, 0])

    @property
    def fy(self) -> float:
        """Focal length along y, pixels."""
        return float(self.camera_matrix[1, 1])

    @property
    def cx(self) -> float:
        """Principal point x, pixels."""
        return float(self.camera_matrix[0, 2])

    @property
    def cy(self) -> float:
        """Principal point y, pixels."""
        return float(self.camera_matrix[1, 2])

    def to_dict(self) -> dict:
        """Plain-dict form for calibration files (pixels)."""
        return {
            "image_size": [int(v) for v in self.image_size],
            "camera_matrix": np.asarray(self.camera_matrix, float).tolist(),
            "dist_coeffs": np.asarray(self.dist_coeffs, float).ravel().tolist(),
            "distortion_model": self.model,
            "reprojection_rms_px": float(self.rms),
            "per_view_rms_px": [float(v) for v in self.per_view_rms],
            "n_views": int(self.n_views),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Intrinsics:
        """Inverse of ``to_dict``."""
        return cls(
            camera_matrix=np.asarray(d["camera_matrix"], np.float64).reshape(3, 3),
            dist_coeffs=np.asarray(d["dist_coeffs"], np.float64).ravel(),
            image_size=tuple(int(v) for v in d["image_size"]),
            rms=float(d.get("reprojection_rms_px", float("nan"))),
            per_view_rms=list(d.get("per_view_rms_px", [])),
            n_views=int(d.get("n_views", 0)),
            model=str(d.get("distortion_model", "opencv")),
        )


def calibrate_intrinsics(
    detections: Sequence[BoardDetection],
    min_views: int = 6,
    max_rms_px: float = 1.0,
    fix_k3: bool = True,
) -> Intrinsics:
    """Estimate intrinsics from ChArUco detections (``cv2.calibrateCamera``).

    Args:
        detections: one detection per image, all from the same camera and resolution.
        min_views: fewest views accepted.
        max_rms_px: reject the result if its reprojection RMS exceeds this, pixels.
        fix_k3: keep k3 = 0 (advised unless the lens is wide-angle).

    Returns:
        The intrinsics with their reprojection error.

    Raises:
        CalibrationError: too few views, mixed resolutions, or a poor calibration.
    """
    if len(detections) < min_views:
        raise CalibrationError(
            f"intrinsics need >= {min_views} views with the board found; got {len(detections)}. "
            "Capture more images, tilting the board and covering the image corners."
        )
    sizes = {d.image_size for d in detections}
    if len(sizes) != 1:
        raise CalibrationError(f"images have different sizes {sorted(sizes)}; use one resolution")
    size = sizes.pop()
    obj = [d.object_points.reshape(-1, 1, 3).astype(np.float32) for d in detections]
    img = [d.corners.reshape(-1, 1, 2).astype(np.float32) for d in detections]
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
    rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, size, None, None, flags=flags, criteria=criteria)
    per_view = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs):
        proj, _ = cv2.projectPoints(o, r, t, K, dist)
        per_view.append(float(np.sqrt(np.mean(np.sum((proj - i).reshape(-1, 2) ** 2, axis=1)))))
    result = Intrinsics(K, np.asarray(dist, np.float64).ravel()[:5], size, float(rms), per_view, len(detections))
    check_intrinsics(result, max_rms_px)
    return result


def check_intrinsics(result: Intrinsics, max_rms_px: float) -> None:
    """Reject a poor calibration with a message that says what to do.

    Raises:
        CalibrationError: RMS above ``max_rms_px``, non-finite values, or a principal
            point outside the middle half of the image.
    """
    K = result.camera_matrix
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(result.dist_coeffs))):
        raise CalibrationError("intrinsics calibration diverged (non-finite values); recapture the images")
    if result.rms > max_rms_px:
        worst = int(np.argmax(result.per_view_rms)) if result.per_view_rms else -1
        raise CalibrationError(
            f"poor intrinsics calibration: reprojection RMS {result.rms:.3f} px > limit {max_rms_px} px "
            f"(worst view #{worst}). Check the board's printed square/marker lengths, that it lies "
            "flat, and remove blurred images."
        )
    w, h = result.image_size
    if not (0.25 * w < result.cx < 0.75 * w and 0.25 * h < result.cy < 0.75 * h):
        raise CalibrationError(
            f"implausible principal point ({result.cx:.1f}, {result.cy:.1f}) for a {w}x{h} image: "
            "the views probably lack tilt; capture the board at varied angles"
        )


# RealSense models whose coefficients are OpenCV's (k1, k2, p1, p2, k3).
_OPENCV_COMPATIBLE = {"brown_conrady", "none"}


def intrinsics_from_realsense(rs_intrinsics: Any) -> Intrinsics:
    """Convert a ``pyrealsense2.intrinsics`` (a stream profile's factory values).

    Args:
        rs_intrinsics: ``pyrealsense2.intrinsics`` (``width``, ``height``, ``fx``, ``fy``,
            ``ppx``, ``ppy``, ``model``, ``coeffs``).

    Returns:
        Factory intrinsics (``rms`` NaN). ``model`` is the RealSense distortion model name;
        ``inverse_brown_conrady`` coefficients are not OpenCV's and are compared as such.
    """
    K = np.array(
        [[rs_intrinsics.fx, 0, rs_intrinsics.ppx], [0, rs_intrinsics.fy, rs_intrinsics.ppy], [0, 0, 1]],
        np.float64,
    )
    model = str(getattr(rs_intrinsics.model, "name", rs_intrinsics.model)).split(".")[-1]
    return Intrinsics(
        K, np.asarray(list(rs_intrinsics.coeffs), np.float64)[:5],
        (int(rs_intrinsics.width), int(rs_intrinsics.height)), model=model,
    )


def realsense_profile_intrinsics(profile: Any) -> Intrinsics:
    """Factory intrinsics of a pyrealsense2 stream profile (real or ``software_device``).

    Args:
        profile: a ``pyrealsense2.stream_profile`` of a colour or depth video stream.
    """
    return intrinsics_from_realsense(profile.as_video_stream_profile().get_intrinsics())


def device_color_intrinsics(device: Any, width: int, height: int) -> Intrinsics:
    """Factory intrinsics of a RealSense device's colour stream at ``width`` x ``height``.

    Reads the calibration the device reports for its stream profile; no streaming needed.

    Args:
        device: a ``pyrealsense2.device`` (a real one, or a ``software_device``).
        width: colour stream width, pixels.
        height: colour stream height, pixels.

    Raises:
        CalibrationError: no colour profile at that resolution.
    """
    import pyrealsense2 as rs

    for sensor in device.query_sensors():
        for profile in sensor.get_stream_profiles():
            if profile.stream_type() != rs.stream.color or not profile.is_video_stream_profile():
                continue
            video = profile.as_video_stream_profile()
            if (video.width(), video.height()) == (width, height):
                return intrinsics_from_realsense(video.get_intrinsics())
    raise CalibrationError(f"RealSense has no colour stream at {width}x{height}")


def read_realsense_factory_intrinsics(serial: str, width: int, height: int) -> Intrinsics:
    """Find the connected RealSense with ``serial`` and read its colour factory intrinsics.

    Raises:
        CalibrationError: no RealSense with that serial is connected.
    """
    import pyrealsense2 as rs

    for device in rs.context().query_devices():
        if device.get_info(rs.camera_info.serial_number) == str(serial):
            return device_color_intrinsics(device, width, height)
    raise CalibrationError(f"no RealSense with serial {serial} connected")


def compare_intrinsics(measured: Intrinsics, factory: Intrinsics, grid: int = 9) -> dict:
    """Differences between measured and factory intrinsics.

    Args:
        measured: from ``calibrate_intrinsics``.
        factory: from ``intrinsics_from_realsense`` (same resolution).
        grid: points per image side at which the two models' pixel mappings are compared.

    Returns:
        ``{"d_fx_px", "d_fy_px", "d_cx_px", "d_cy_px", "max_pixel_diff_px", "mean_pixel_diff_px",
        "distortion_compared"}``: measured minus factory, and the largest/mean pixel
        displacement between the two models at a grid of image points (a ray through each
        measured-model pixel re-projected with the factory model).
    """
    if tuple(measured.image_size) != tuple(factory.image_size):
        raise CalibrationError(f"cannot compare {measured.image_size} and {factory.image_size} intrinsics")
    w, h = measured.image_size
    us, vs = np.meshgrid(np.linspace(0, w - 1, grid), np.linspace(0, h - 1, grid))
    pix = np.stack([us.ravel(), vs.ravel()], 1).reshape(-1, 1, 2).astype(np.float64)
    rays = cv2.undistortPoints(pix, measured.camera_matrix, measured.dist_coeffs).reshape(-1, 2)
    pts = np.column_stack([rays, np.ones(len(rays))])
    compared = factory.model in _OPENCV_COMPATIBLE or not np.any(factory.dist_coeffs)
    f_dist = factory.dist_coeffs if compared else np.zeros(5)
    proj, _ = cv2.projectPoints(pts, np.zeros(3), np.zeros(3), factory.camera_matrix, f_dist)
    diff = np.linalg.norm(proj.reshape(-1, 2) - pix.reshape(-1, 2), axis=1)
    if not compared:
        log.warning("factory model %s is not OpenCV's; compared camera matrices only", factory.model)
    return {
        "d_fx_px": measured.fx - factory.fx,
        "d_fy_px": measured.fy - factory.fy,
        "d_cx_px": measured.cx - factory.cx,
        "d_cy_px": measured.cy - factory.cy,
        "max_pixel_diff_px": float(diff.max()),
        "mean_pixel_diff_px": float(diff.mean()),
        "distortion_compared": bool(compared),
    }
