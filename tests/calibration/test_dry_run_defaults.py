"""`hilr calibrate <what>` dry runs with the config's defaults (sim arm, synthetic cameras).

Each runs exactly what the bare command runs, composed from launch/config/calibrate.yaml.
"""

from __future__ import annotations

from calibration.runners import RUNNERS
from robot_env.app import config_dir, to_container


def _defaults(tmp_path, *overrides):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return to_container(compose(config_name="calibrate", overrides=[f"out_dir={tmp_path}", *overrides]))


def test_intrinsics_then_handeye_with_the_default_15_poses(tmp_path):
    """Used to diverge at pose 11: consecutive poses were sent as one 25 cm / 67 deg step."""
    cfg = _defaults(tmp_path)
    assert cfg["handeye"]["n_poses"] == 15
    intr = RUNNERS["intrinsics"](cfg)
    assert intr["n_views"] >= 14 and intr["rms_px"] < 0.3
    summary = RUNNERS["handeye"](cfg)
    assert summary["n_poses"] >= 14 and len(summary["missed_poses"]) <= 1 and summary["spread_mm"] < 1.0


def test_workspace_dry_run_tours_the_corners(tmp_path):
    """Used to write a 2 cm box around an arm that never moved (input=hand on the sim)."""
    summary = RUNNERS["workspace"](_defaults(tmp_path, "what=workspace"))
    extent = [hi - lo for lo, hi in zip(summary["workspace_low"], summary["workspace_high"])]
    assert min(extent) > 0.25, summary


def test_spacemouse_dry_run_replays_a_guided_session_through_pyspacemouse(tmp_path):
    """`hilr calibrate spacemouse spacemouse.replay=true`: HID reports of a Wireless operator
    pushing forward (HID -y), left (HID -x), up (HID -z) give the base-frame axis map."""
    from calibration.files import load_calibration

    summary = RUNNERS["spacemouse"](_defaults(tmp_path, "what=spacemouse", "spacemouse.replay=true",
                                              "spacemouse.rest_s=1.0"))
    # hid_z_up parses y and z negated: forward = device +y, left = device -x, up = device +z
    assert summary["order"] == [1, 0, 2, 4, 3, 5] and summary["sign"] == [1, -1, 1, 1, -1, 1]
    assert summary["handedness"] == 1 and max(summary["deadzone"]) < 0.05
    assert load_calibration(summary["file"], kind="spacemouse").data["axes"]["order"] == summary["order"]


def test_spacemouse_without_a_device_names_the_dry_run():
    import pytest

    from calibration.errors import CalibrationError

    with pytest.raises(CalibrationError, match="spacemouse.replay=true"):
        RUNNERS["spacemouse"](_defaults("/tmp/unused", "what=spacemouse", "spacemouse.rest_s=0.1"))
