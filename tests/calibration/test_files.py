"""Calibration files: round trip, loud warnings for wrong serial / moved camera, clear errors."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pytest
import yaml

from calibration.errors import CalibrationFileError, CalibrationMismatchWarning
from calibration.files import (
    MOVES_FILE, CalibrationFile, calibration_path, camera_moved_at, load_calibration,
    record_camera_moved, save_calibration,
)
from calibration.handeye import HandEyeResult
from calibration.procedures import handeye_file
from calibration.transforms import exp_so3, from_rt


def _handeye_cal(serial="111", created=None):
    T = from_rt(exp_so3([0.1, 0.2, 0.3]), [0.05, 0.0, 0.03])
    result = HandEyeResult(T, "eye_in_hand", "park", "numpy", 12,
                           {"target_spread_trans_mm": 0.1, "axxb_rot_deg": [0.01]}, {"n_poses": 12}, [])
    cal = handeye_file(result, serial, "wrist")
    if created is not None:
        cal.created_at = created
    return cal, T


def test_round_trip_has_units_frames_timestamp_serial(tmp_path):
    cal, T = _handeye_cal()
    path = save_calibration(cal, calibration_path(tmp_path, "handeye", "wrist"))
    assert path.name == "handeye_wrist.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["units"]["length"] == "m" and raw["camera_serial"] == "111"
    assert "T_ee_cam" in raw["frames"]
    dt.datetime.fromisoformat(raw["created_at"])
    loaded = load_calibration(path, kind="handeye", expected_serial="111")
    np.testing.assert_allclose(np.array(loaded.data["matrix"]), T)
    assert loaded.created_at == cal.created_at


def test_wrong_serial_warns_loudly(tmp_path, caplog):
    cal, _ = _handeye_cal(serial="111")
    path = save_calibration(cal, tmp_path / "handeye_wrist.yaml")
    with caplog.at_level(logging.ERROR), pytest.warns(CalibrationMismatchWarning, match="ANOTHER CAMERA"):
        loaded = load_calibration(path, expected_serial="222")
    assert loaded.camera_serial == "111"  # still loads: the operator decides
    assert any("222" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


def test_file_older_than_camera_move_warns(tmp_path):
    created = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    path = save_calibration(_handeye_cal(created=created)[0], tmp_path / "handeye_wrist.yaml")
    record_camera_moved(tmp_path / MOVES_FILE, "111", created + dt.timedelta(hours=1))
    assert camera_moved_at(tmp_path / MOVES_FILE, "111") == created + dt.timedelta(hours=1)
    with pytest.warns(CalibrationMismatchWarning, match="STALE"):
        load_calibration(path)


def test_fresh_file_does_not_warn(tmp_path, recwarn):
    record_camera_moved(tmp_path / MOVES_FILE, "111", dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc))
    path = save_calibration(_handeye_cal()[0], tmp_path / "handeye_wrist.yaml")
    load_calibration(path, expected_serial="111")
    assert not [w for w in recwarn if issubclass(w.category, CalibrationMismatchWarning)]


@pytest.mark.parametrize("text, match", [
    ("format: hilr-calibration\nkind: [unclosed\n", "corrupt"),
    ("just a string", "not a hilr calibration"),
    ("format: hilr-calibration\nversion: 99\n", "version"),
    ("format: hilr-calibration\nversion: 1\nkind: handeye\n", "missing"),
])
def test_corrupt_or_foreign_files_raise_clear_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationFileError, match=match):
        load_calibration(path)


def test_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(CalibrationFileError, match="does not exist"):
        load_calibration(tmp_path / "nope.yaml")
    path = save_calibration(CalibrationFile("workspace", {"min": [0, 0, 0], "max": [1, 1, 1]}), tmp_path / "ws.yaml")
    with pytest.raises(CalibrationFileError, match="expected 'handeye'"):
        load_calibration(path, kind="handeye")
    with pytest.raises(CalibrationFileError, match="unknown calibration kind"):
        save_calibration(CalibrationFile("bogus", {}), tmp_path / "b.yaml")


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    save_calibration(_handeye_cal()[0], tmp_path / "a.yaml")
    save_calibration(_handeye_cal()[0], tmp_path / "a.yaml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml"]
