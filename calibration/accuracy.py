"""Accuracy study on rendered ChArUco views with known truth: ``python -m calibration.accuracy``.

For each mounting (eye-in-hand: wrist camera over a table board; eye-to-hand: fixed camera,
board on the hand) and seed, renders the board at a generated pose list (640x480, Gaussian
noise, barrel distortion on the wrist camera), detects it, estimates intrinsics from the same
views, solves hand-eye with every numpy method and reports the errors against the truth.
Prints one JSON object (the numbers quoted in docs/sections/calibration.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from calibration.board import CharucoBoard
from calibration.errors import BoardNotFoundError
from calibration.guidance import generate_pose_list
from calibration.handeye import calibrate_hand_eye
from calibration.intrinsics import calibrate_intrinsics
from calibration.procedures import board_poses
from calibration.synthetic import render_board_view
from calibration.transforms import exp_so3, from_rt, invert, matrix_to_pose, pose_to_matrix, transform_error

METHODS = ("tsai", "park", "horaud", "andreff", "daniilidis")


@dataclasses.dataclass
class Scenario:
    """A synthetic set-up with known truth.

    Attributes:
        mounting: ``eye_in_hand`` or ``eye_to_hand``.
        truth: (4, 4) the transform to recover (``T_ee_cam`` or ``T_base_cam``).
        board: (4, 4) board pose (in the base frame for eye-in-hand, ee frame for eye-to-hand).
        center: (4, 4) centre end-effector pose of the pose list, base frame.
        pivot: pivot distance of the pose list along the ee z axis, metres.
        camera_matrix: (3, 3) true intrinsics, pixels.
        dist_coeffs: (5,) true distortion.
    """

    mounting: str
    truth: np.ndarray
    board: np.ndarray
    center: np.ndarray
    pivot: float
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray

    def T_cam_board(self, T_base_ee: np.ndarray) -> np.ndarray:
        """True board pose in the camera frame at an end-effector pose."""
        if self.mounting == "eye_in_hand":
            return invert(T_base_ee @ self.truth) @ self.board
        return invert(self.truth) @ T_base_ee @ self.board


def eye_in_hand_scenario() -> Scenario:
    """Wrist camera 5 cm ahead of the flange, board on the table 43 cm below the centre pose."""
    return Scenario(
        "eye_in_hand", from_rt(exp_so3([0.05, -0.08, 0.03]), [0.05, -0.01, 0.03]),
        pose_to_matrix([0.45, -0.10, 0.0], [1.0, 0.0, 0.0, 0.0]),
        pose_to_matrix([0.54, -0.20, 0.40], [1.0, 0.0, 0.0, 0.0]), 0.43,
        np.array([[600.0, 0, 322.0], [0, 605.0, 238.0], [0, 0, 1]]), np.array([-0.05, 0.02, 0, 0, 0]))


def eye_to_hand_scenario() -> Scenario:
    """Fixed camera above and behind the workspace, board 5 cm along the ee z axis."""
    z = np.array([0.6, 0.1, -0.55])
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 0.0, 1.0], z)
    x /= np.linalg.norm(x)
    T_base_cam = from_rt(np.column_stack([x, np.cross(z, x), z]), [0.0, 0.05, 0.85])
    T_ee_board = from_rt(np.eye(3), [-0.14, -0.10, 0.05])
    nominal = from_rt(exp_so3([0.1, -0.15, 0.0]), [0.0, 0.0, 0.55]) @ from_rt(np.eye(3), [-0.14, -0.10, 0.0])
    return Scenario("eye_to_hand", T_base_cam, T_ee_board, T_base_cam @ nominal @ invert(T_ee_board), 0.05,
                    np.array([[600.0, 0, 322.0], [0, 605.0, 238.0], [0, 0, 1]]), np.array([-0.05, 0.02, 0, 0, 0]))


def evaluate(scenario: Scenario, seed: int, n_poses: int = 12, tilt_deg: float = 20.0, noise: float = 2.0) -> dict:
    """Errors of intrinsics and every hand-eye method on one rendered session."""
    board = CharucoBoard()
    rng = np.random.default_rng(seed)
    pos, quat = matrix_to_pose(scenario.center)
    detections, T_ee = [], []
    for p, q in generate_pose_list(pos, quat, n_poses, tilt_deg, pivot_distance=scenario.pivot, seed=seed):
        T = pose_to_matrix(p, q)
        img = render_board_view(board, scenario.camera_matrix, scenario.dist_coeffs, scenario.T_cam_board(T),
                                (640, 480), noise, rng)
        try:
            detections.append(board.detect(img))
            T_ee.append(T)
        except BoardNotFoundError:
            pass
    intr = calibrate_intrinsics(detections)
    K = scenario.camera_matrix
    out = {"views": len(detections), "intr_rms_px": intr.rms,
           "fx_err_pct": 100 * abs(intr.fx - K[0, 0]) / K[0, 0], "fy_err_pct": 100 * abs(intr.fy - K[1, 1]) / K[1, 1],
           "pp_err_px": float(np.hypot(intr.cx - K[0, 2], intr.cy - K[1, 2]))}
    T_cb, _ = board_poses(board, detections, intr)
    for method in METHODS:
        r = calibrate_hand_eye(T_ee, T_cb, scenario.mounting, method, backend="numpy")
        dt, dr = transform_error(r.transform, scenario.truth)
        out[f"{method}_trans_mm"], out[f"{method}_rot_deg"] = 1000 * dt, float(np.degrees(dr))
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the study and print the JSON summary (mean and max over seeds)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5, help="sessions per mounting (default 5)")
    parser.add_argument("--poses", type=int, default=12, help="poses per session (default 12)")
    parser.add_argument("--noise", type=float, default=2.0, help="image noise sigma, grey levels (default 2)")
    args = parser.parse_args(argv)
    from tqdm import tqdm

    summary = {"seeds": args.seeds, "poses": args.poses, "noise_sigma": args.noise}
    for scenario in (eye_in_hand_scenario(), eye_to_hand_scenario()):
        runs = [evaluate(scenario, s, args.poses, noise=args.noise) for s in tqdm(range(args.seeds), desc=scenario.mounting)]
        summary[scenario.mounting] = {k: {"mean": float(np.mean([r[k] for r in runs])),
                                          "max": float(np.max([r[k] for r in runs]))} for k in runs[0]}
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
