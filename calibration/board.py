"""The ChArUco calibration board: its definition, detection and pose estimation.

Board frame (OpenCV's): origin at the board's top-left outer corner, x along the
``squares_x`` direction, y along ``squares_y`` (down the printed page), z into the board;
metres.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from calibration.errors import BoardNotFoundError, CalibrationError

#: Names accepted for ``CharucoBoardConfig.dictionary`` (any ``cv2.aruco.DICT_*``).
ARUCO_DICTIONARIES = sorted(n[len("DICT_"):] for n in dir(cv2.aruco) if n.startswith("DICT_"))


@dataclasses.dataclass
class CharucoBoardConfig:
    """A printed ChArUco board.

    Attributes:
        squares_x: chessboard squares along x (columns).
        squares_y: chessboard squares along y (rows).
        square_length: side of one chessboard square as printed, metres (measure it!).
        marker_length: side of one ArUco marker as printed, metres (< ``square_length``).
        dictionary: ArUco dictionary name without the ``DICT_`` prefix, e.g. ``5X5_100``.
        min_corners: fewest ChArUco corners that count as "board found" in one image.
    """

    squares_x: int = 7
    squares_y: int = 5
    square_length: float = 0.04
    marker_length: float = 0.03
    dictionary: str = "5X5_100"
    min_corners: int = 6

    def __post_init__(self) -> None:
        if self.squares_x < 3 or self.squares_y < 3:
            raise ValueError(f"board needs >= 3x3 squares, got {self.squares_x}x{self.squares_y}")
        if not 0 < self.marker_length < self.square_length:
            raise ValueError(
                f"need 0 < marker_length ({self.marker_length}) < square_length ({self.square_length}), metres"
            )
        if self.dictionary.upper() not in ARUCO_DICTIONARIES:
            raise ValueError(f"unknown ArUco dictionary {self.dictionary!r}; one of {ARUCO_DICTIONARIES}")
        if self.min_corners < 4:
            raise ValueError("min_corners must be >= 4 (a pose needs four points)")

    @property
    def size(self) -> tuple[float, float]:
        """(width, height) of the chessboard area, metres."""
        return self.squares_x * self.square_length, self.squares_y * self.square_length

    def to_dict(self) -> dict:
        """Plain-dict form, written into calibration files."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class BoardDetection:
    """ChArUco corners found in one image.

    Attributes:
        corners: (N, 2) float32 sub-pixel corner positions, pixels (OpenCV convention:
            pixel centres at integer coordinates).
        ids: (N,) int32 ChArUco corner ids.
        object_points: (N, 3) float32 the same corners in the board frame, metres.
        image_size: (width, height) of the image, pixels.
    """

    corners: np.ndarray
    ids: np.ndarray
    object_points: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.ids)


class CharucoBoard:
    """A ChArUco board and its detector (``cv2.aruco.CharucoDetector``).

    Args:
        config: the printed board's geometry.
    """

    def __init__(self, config: CharucoBoardConfig | None = None) -> None:
        self.config = config or CharucoBoardConfig()
        c = self.config
        dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, "DICT_" + c.dictionary.upper()))
        self.board = cv2.aruco.CharucoBoard(
            (c.squares_x, c.squares_y), c.square_length, c.marker_length, dictionary
        )
        self._corner_points = np.asarray(self.board.getChessboardCorners(), np.float32).reshape(-1, 3)
        params = cv2.aruco.DetectorParameters()
        params.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
        self.detector = cv2.aruco.CharucoDetector(self.board, cv2.aruco.CharucoParameters(), params)

    @property
    def n_corners(self) -> int:
        """Number of inner ChArUco corners on the board."""
        return len(self._corner_points)

    def corner_points(self) -> np.ndarray:
        """(N, 3) float32 all inner corners in the board frame, metres."""
        return self._corner_points.copy()

    def image(self, width_px: int, margin_px: int = 0) -> np.ndarray:
        """The board as a printable greyscale image.

        Args:
            width_px: width of the chessboard area in pixels; height follows the aspect.
            margin_px: white border added on every side (needed for marker detection).

        Returns:
            (H, W) uint8 image, white border included.
        """
        w, h = self.config.size
        height_px = int(round(width_px * h / w))
        size = (width_px + 2 * margin_px, height_px + 2 * margin_px)
        return self.board.generateImage(size, None, margin_px, 1)

    def detect(self, image: np.ndarray) -> BoardDetection:
        """Find the ChArUco corners in one image.

        Args:
            image: (H, W, 3) uint8 RGB, or (H, W) uint8 greyscale.

        Returns:
            The detection, with at least ``config.min_corners`` corners.

        Raises:
            BoardNotFoundError: fewer than ``min_corners`` corners, or no markers at all.
        """
        if image.ndim == 3:
            grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        elif image.ndim == 2:
            grey = image
        else:
            raise CalibrationError(f"expected an (H, W[, 3]) uint8 image, got shape {image.shape}")
        corners, ids, _, _ = self.detector.detectBoard(grey)
        n = 0 if ids is None else len(ids)
        if n < self.config.min_corners:
            raise BoardNotFoundError(
                f"ChArUco board not found: {n} corner(s) detected, need >= {self.config.min_corners}. "
                "Check that the whole board is in view, in focus, well lit, and that the board "
                f"config (squares {self.config.squares_x}x{self.config.squares_y}, "
                f"dictionary {self.config.dictionary}) matches the print."
            )
        ids = ids.reshape(-1).astype(np.int32)
        return BoardDetection(
            corners=corners.reshape(-1, 2).astype(np.float32),
            ids=ids,
            object_points=self._corner_points[ids],
            image_size=(grey.shape[1], grey.shape[0]),
        )

    def estimate_pose(
        self, detection: BoardDetection, camera_matrix: np.ndarray, dist_coeffs: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Board pose in the camera frame from one detection.

        Args:
            detection: corners from ``detect``.
            camera_matrix: (3, 3) intrinsics, pixels.
            dist_coeffs: OpenCV distortion coefficients (k1, k2, p1, p2[, k3, ...]).

        Returns:
            ``(T_cam_board, rms)``: (4, 4) float64 homogeneous transform taking board-frame
            points (metres) to camera-frame points, and the reprojection RMS in pixels.

        Raises:
            CalibrationError: PnP failed or the corners are collinear.
        """
        if self.board.checkCharucoCornersCollinear(detection.ids.reshape(-1, 1)):
            raise CalibrationError("detected ChArUco corners are collinear: no unique board pose")
        obj = detection.object_points.astype(np.float64)
        img = detection.corners.astype(np.float64)
        ok, rvec, tvec = cv2.solvePnP(obj, img, camera_matrix, dist_coeffs, flags=cv2.SOLVEPNP_IPPE)
        if not ok:
            raise CalibrationError("solvePnP failed on the detected board corners")
        rvec, tvec = cv2.solvePnPRefineLM(obj, img, camera_matrix, dist_coeffs, rvec, tvec)
        proj, _ = cv2.projectPoints(obj, rvec, tvec, camera_matrix, dist_coeffs)
        rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - img) ** 2, axis=1))))
        T = np.eye(4)
        T[:3, :3] = cv2.Rodrigues(rvec)[0]
        T[:3, 3] = tvec.reshape(3)
        return T, rms
