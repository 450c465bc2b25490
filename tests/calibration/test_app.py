"""`hilr calibrate`: the config composes, and the runners calibrate the MuJoCo sim arm end to end.

The sim runs use the real MuJoCo arm (robot=sim: the arm is driven through the pose list by
its own physics) and the ``charuco_synthetic`` dry-run cameras of
launch/config/camera/charuco_synthetic.yaml, whose true poses are known.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from calibration.errors import CalibrationError, CalibrationMismatchWarning
from calibration.files import load_calibration
from calibration.runners import RUNNERS
from calibration.transforms import pose_to_matrix, transform_error
from robot_env.app import config_dir, to_container


def _cfg(tmp_path, *overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="calibrate", overrides=[f"out_dir={tmp_path}", *overrides])
    return to_container(cfg)


def test_every_what_composes_and_help_lists_options(tmp_path):
    for what in RUNNERS:
        assert _cfg(tmp_path, f"what={what}")["what"] == what
    out = subprocess.run([sys.executable, "-m", "learners.cli", "calibrate", "--help"], env=dict(os.environ),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for key in ("what:", "handeye:", "mounting:", "workspace:", "spacemouse:", "crops:"):
        assert key in out.stdout


def test_sim_arm_intrinsics_then_handeye_eye_in_hand(tmp_path):
    """Both steps on the MuJoCo arm: recovers the wrist camera's true T_ee_cam."""
    overrides = ["camera_name=wrist", "handeye.n_poses=10", "handeye.drive.settle_s=0.1"]
    intr = RUNNERS["intrinsics"](_cfg(tmp_path, *overrides))
    assert abs(intr["fx"] - 600.0) < 3.0 and abs(intr["cx"] - 322.0) < 3.0 and intr["rms_px"] < 0.3
    cfg = _cfg(tmp_path, *overrides)
    summary = RUNNERS["handeye"](cfg)
    assert summary["missed_poses"] == [] and summary["n_poses"] == 10
    truth = cfg["camera"]["wrist"]["camera_pose"]
    cal = load_calibration(summary["file"], kind="handeye", expected_serial="sim-wrist")
    dt, dr = transform_error(np.array(cal.data["matrix"]), pose_to_matrix(truth[:3], truth[3:]))
    assert dt < 0.002 and np.degrees(dr) < 0.5, (dt, np.degrees(dr))
    assert cal.frames["T_ee_cam"] and cal.data["residuals"]["target_spread_trans_mm"] < 2.0
    # The operator moves the wrist camera: the old files now warn when loaded.
    RUNNERS["moved"](_cfg(tmp_path, "what=moved", "moved.camera_serial=sim-wrist"))
    with pytest.warns(CalibrationMismatchWarning, match="STALE"):
        load_calibration(summary["file"])


def test_handeye_without_intrinsics_file_fails_clearly(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        RUNNERS["handeye"](_cfg(tmp_path, "camera_name=front", "handeye.mounting=eye_to_hand"))


def test_sim_workspace_tour_and_crops(tmp_path):
    summary = RUNNERS["workspace"](_cfg(tmp_path, "workspace.input=tour", "workspace.margin=0.02"))
    np.testing.assert_allclose(summary["workspace_low"], [0.28, -0.22, 0.03], atol=0.004)
    np.testing.assert_allclose(summary["workspace_high"], [0.62, 0.22, 0.37], atol=0.004)
    ws = load_calibration(summary["file"], kind="workspace")
    assert ws.data["workspace_low"] == pytest.approx(summary["workspace_low"], abs=1e-4)
    crops = RUNNERS["crops"](_cfg(tmp_path, "crops.mode=numbers", "crops.values.wrist=[100,60,400,300]",
                                  "crops.cameras=[wrist]"))
    assert crops["crops"] == {"wrist": [100, 60, 400, 300]}
    data = load_calibration(crops["file"], kind="crops").data["wrist"]
    assert data["crop_fractions"] == pytest.approx([100 / 640, 60 / 480, 500 / 640, 360 / 480])
    with pytest.raises(CalibrationError, match="leaves"):
        RUNNERS["crops"](_cfg(tmp_path, "crops.mode=numbers", "crops.values.wrist=[400,60,400,300]",
                              "crops.cameras=[wrist]"))


def test_spacemouse_through_teleop_replay_device_fails_clearly_without_pushes(tmp_path):
    """The real teleop SpaceMouse (pyspacemouse parser, replayed silent device) feeds the procedure."""
    cfg = _cfg(tmp_path, "what=spacemouse", "teleop=spacemouse_replay", "spacemouse.rest_s=0.3",
               "spacemouse.timeout_s=0.5")
    with pytest.raises(CalibrationError, match="no push"):
        RUNNERS["spacemouse"](cfg)
