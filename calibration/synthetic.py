"""Synthetic views of the ChArUco board: ground truth for tests and dry runs.

``render_board_view`` ray-casts every pixel of a pinhole camera (with OpenCV
distortion) onto the board plane and samples the printed board image there, with
supersampling and optional Gaussian noise. ``SyntheticBoardCamera`` is a registered
``Camera`` that renders the board as seen from an arm-mounted (eye-in-hand) or fixed
(eye-to-hand) camera, given any ``Arm``: the physical edge of a hand-eye dry run.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import cv2
import numpy as np

from calibration.board import CharucoBoard, CharucoBoardConfig
from calibration.transforms import pose_to_matrix
from robot_env.hardware import CAMERAS, Arm, Camera, DeviceError, Frame

BACKGROUND = 110  # grey level outside the board: neither white nor black


def render_board_view(
    board: CharucoBoard,
    camera_matrix: np.ndarray,
    dist_coeffs: np.ndarray | None,
    T_cam_board: np.ndarray,
    image_size: tuple[int, int],
    noise_sigma: float = 0.0,
    rng: np.random.Generator | None = None,
    supersample: int = 2,
    margin_squares: float = 0.5,
) -> np.ndarray:
    """Render the board as a camera sees it.

    Args:
        board: the board to draw.
        camera_matrix: (3, 3) intrinsics, pixels.
        dist_coeffs: OpenCV distortion coefficients, or None for a pinhole camera.
        T_cam_board: (4, 4) board pose in the camera frame (board points -> camera points), metres.
        image_size: (width, height), pixels.
        noise_sigma: standard deviation of additive Gaussian noise, grey levels.
        rng: noise generator (required when ``noise_sigma > 0``).
        supersample: render at this factor and area-average down (anti-aliasing).
        margin_squares: white border around the chessboard, in squares.

    Returns:
        (H, W, 3) uint8 RGB image.
    """
    width, height = image_size
    s = int(supersample)
    cfg = board.config
    px_per_square = 120
    margin_px = int(round(margin_squares * px_per_square))
    raster = _raster(board, px_per_square, margin_px)
    m_per_px = cfg.square_length / px_per_square
    dist = np.zeros(5) if dist_coeffs is None else np.asarray(dist_coeffs, np.float64)
    norm = _normalized_rays(np.asarray(camera_matrix, np.float64).tobytes(), dist.tobytes(), width, height, s)
    # Ray (x, y, 1) meets the plane z_board = 0: board (X, Y, 1) ~ inv([r1 r2 t]) (x, y, 1);
    # then metres -> raster pixels (centre convention: raster pixel i spans board i..i+1).
    H = np.column_stack([T_cam_board[:3, 0], T_cam_board[:3, 1], T_cam_board[:3, 3]])
    Hi = np.linalg.inv(H)
    to_raster = np.array([[1 / m_per_px, 0, margin_px - 0.5], [0, 1 / m_per_px, margin_px - 0.5], [0, 0, 1]])
    maps = cv2.perspectiveTransform(norm.reshape(-1, 1, 2), to_raster @ Hi).reshape(height * s, width * s, 2)
    behind = (norm @ Hi[2, :2].astype(np.float32) + np.float32(Hi[2, 2])) <= 1e-9  # plane hit behind the camera
    if behind.any():
        maps.reshape(-1, 2)[behind] = -1e6
    map_x, map_y = maps[..., 0], maps[..., 1]
    img = cv2.remap(
        raster, np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
        cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=float(BACKGROUND),
    )
    if s > 1:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA)
    if noise_sigma > 0:
        if rng is None:
            raise ValueError("render_board_view needs an rng when noise_sigma > 0")
        img = img + rng.normal(0.0, noise_sigma, img.shape).astype(np.float32)
    grey = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


@functools.lru_cache(maxsize=4)
def _raster(board: CharucoBoard, px_per_square: int, margin_px: int) -> np.ndarray:
    """The printed board as float32 grey levels (cached: boards are immutable)."""
    return board.image(board.config.squares_x * px_per_square, margin_px).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _normalized_rays(K_bytes: bytes, dist_bytes: bytes, width: int, height: int, s: int) -> np.ndarray:
    """(H*s*W*s, 2) normalized undistorted coordinates of the supersampled pixel centres.

    They depend only on the camera, not on the board pose, so they are computed once.
    """
    K = np.frombuffer(K_bytes, np.float64).reshape(3, 3)
    dist = np.frombuffer(dist_bytes, np.float64)
    us = (np.arange(width * s, dtype=np.float64) + 0.5) / s - 0.5  # output pixel coords, centre convention
    vs = (np.arange(height * s, dtype=np.float64) + 0.5) / s - 0.5
    uu, vv = np.meshgrid(us, vs)
    pix = np.stack([uu.ravel(), vv.ravel()], axis=1)
    if np.any(dist != 0):
        norm = cv2.undistortPoints(
            pix.reshape(-1, 1, 2), K, dist, None, None, None,
            (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 20, 1e-9),
        ).reshape(-1, 2)
    else:
        norm = np.stack([(pix[:, 0] - K[0, 2]) / K[0, 0], (pix[:, 1] - K[1, 2]) / K[1, 1]], axis=1)
    norm = norm.astype(np.float32)
    norm.setflags(write=False)
    return norm


@dataclasses.dataclass
class SyntheticBoardCameraConfig:
    """A simulated camera that sees only the ChArUco board.

    Attributes:
        mounting: ``eye_in_hand`` (camera on the gripper, board fixed in the base frame) or
            ``eye_to_hand`` (camera fixed in the base frame, board held by the gripper).
        camera_pose: pose of the camera, [x, y, z, qx, qy, qz, qw] (metres, xyzw): in the
            gripper frame for ``eye_in_hand``, in the base frame for ``eye_to_hand``.
        board_pose: pose of the board, [x, y, z, qx, qy, qz, qw]: in the base frame for
            ``eye_in_hand``, in the gripper frame for ``eye_to_hand``.
        width: image width, pixels.
        height: image height, pixels.
        fx: focal length x, pixels.
        fy: focal length y, pixels.
        cx: principal point x, pixels.
        cy: principal point y, pixels.
        dist_coeffs: OpenCV distortion coefficients (k1, k2, p1, p2, k3).
        noise_sigma: Gaussian image noise, grey levels.
        seed: noise seed.
        board: the board's geometry (a ``CharucoBoardConfig`` as a dict).
        serial: the serial number this camera reports.
    """

    mounting: str = "eye_in_hand"
    camera_pose: list = dataclasses.field(default_factory=lambda: [0.05, 0.0, 0.02, 0.0, 0.0, 0.0, 1.0])
    board_pose: list = dataclasses.field(default_factory=lambda: [0.35, -0.10, 0.0, 1.0, 0.0, 0.0, 0.0])
    width: int = 640
    height: int = 480
    fx: float = 600.0
    fy: float = 600.0
    cx: float = 320.0
    cy: float = 240.0
    dist_coeffs: list = dataclasses.field(default_factory=lambda: [0.0] * 5)
    noise_sigma: float = 2.0
    seed: int = 0
    board: dict = dataclasses.field(default_factory=dict)
    serial: str = "synthetic-0"

    def __post_init__(self) -> None:
        if self.mounting not in ("eye_in_hand", "eye_to_hand"):
            raise ValueError(f"mounting must be eye_in_hand or eye_to_hand, got {self.mounting!r}")
        if len(self.camera_pose) != 7 or len(self.board_pose) != 7:
            raise ValueError("camera_pose and board_pose are [x, y, z, qx, qy, qz, qw]")


@CAMERAS.register("charuco_synthetic", SyntheticBoardCameraConfig)
class SyntheticBoardCamera(Camera):
    """Renders the ChArUco board from the pose implied by an arm's end-effector pose.

    Args:
        config: the camera and board placement.
        arm: the arm whose ``read_state().ee_pos/ee_quat`` moves the camera or the board.
    """

    def __init__(self, config: SyntheticBoardCameraConfig, arm: Arm | None = None) -> None:
        self.config = config
        self.arm = arm
        self.shape = (config.height, config.width)
        self.serial = config.serial
        self.board = CharucoBoard(CharucoBoardConfig(**config.board))
        self.camera_matrix = np.array(
            [[config.fx, 0, config.cx], [0, config.fy, config.cy], [0, 0, 1]], np.float64
        )
        self.dist_coeffs = np.asarray(config.dist_coeffs, np.float64)
        self._rng = np.random.default_rng(config.seed)
        self._connected = False

    def connect(self) -> None:
        """Check that an arm was given."""
        if self.arm is None:
            raise DeviceError("charuco_synthetic camera needs arm=<Arm> to know where it is")
        self._connected = True

    def disconnect(self) -> None:
        """Nothing to release."""
        self._connected = False


    def true_T_cam_board(self) -> np.ndarray:
        """(4, 4) the board's pose in the camera frame at the arm's current pose."""
        state = self.arm.read_state()
        T_base_ee = pose_to_matrix(state.ee_pos, state.ee_quat)
        c = self.config
        T_cam_pose = pose_to_matrix(c.camera_pose[:3], c.camera_pose[3:])
        T_board_pose = pose_to_matrix(c.board_pose[:3], c.board_pose[3:])
        if c.mounting == "eye_in_hand":
            T_base_cam = T_base_ee @ T_cam_pose
            return np.linalg.inv(T_base_cam) @ T_board_pose
        return np.linalg.inv(T_cam_pose) @ T_base_ee @ T_board_pose

    def read(self) -> Frame:
        """Render the board at the arm's current pose; RGB uint8 (height, width, 3)."""
        self._require_connected()
        color = render_board_view(
            self.board, self.camera_matrix, self.dist_coeffs, self.true_T_cam_board(),
            (self.config.width, self.config.height), self.config.noise_sigma, self._rng,
        )
        return Frame(stamp=time.monotonic(), color=color)
