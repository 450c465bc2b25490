"""Issue 15 (9): calibration files with NaN/inf, unordered bounds or bytes that are not
text are refused with a clear error, before any number reaches an action."""

from __future__ import annotations

import pytest
import yaml

from calibration.errors import CalibrationFileError as CalibrationError
from calibration.files import load_calibration
from robot_env import make_env
from robot_env.calibration_files import CalibrationFileError, crop_fractions, workspace_limits


def _write(path, kind, data):
    path.write_text(yaml.safe_dump({"format": "hilr-calibration", "version": 1, "kind": kind,
                                    "created_at": "2026-11-25T10:00:00+00:00", "units": {"length": "m"},
                                    "data": data}))
    return path


@pytest.mark.parametrize("low,high", [
    ([0.4, float("nan"), 0.1], [0.5, 0.05, 0.3]),
    ([0.4, -0.05, 0.1], [0.5, 0.05, float("inf")]),
    ([0.4, -0.05, 0.1], [0.3, 0.05, 0.3]),
])
def test_workspace_bounds_must_be_finite_and_ordered(tmp_path, low, high):
    f = _write(tmp_path / "workspace.yaml", "workspace", {"workspace_low": low, "workspace_high": high})
    with pytest.raises(CalibrationFileError, match="finite|low < high"):
        workspace_limits(f)
    with pytest.raises(CalibrationFileError):
        make_env({"task": {"name": "reach"}, "safety": {"workspace_file": str(f)}})


def test_nan_crop_and_non_text_files_are_refused(tmp_path):
    f = _write(tmp_path / "crops.yaml", "crops", {"front": {"crop_fractions": [0.1, float("nan"), 0.9, 0.9]}})
    with pytest.raises(CalibrationFileError):
        crop_fractions(f)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x80 not text")
    with pytest.raises(CalibrationFileError, match="cannot read"):
        workspace_limits(binary)


def test_load_calibration_refuses_any_non_finite_number(tmp_path):
    f = _write(tmp_path / "handeye.yaml", "handeye", {"T_ee_cam": [[1.0, 0.0, 0.0, float("nan")]]})
    with pytest.raises(CalibrationError, match=r"data\.T_ee_cam\[0\]\[3\] is not a finite number"):
        load_calibration(f)
