"""Calibration files: YAML with units, frames, a UTC timestamp and the camera serial.

Layout of every file (``format: hilr-calibration``, ``version: 1``)::

    format: hilr-calibration
    version: 1
    kind: intrinsics | handeye | crops | workspace | spacemouse
    created_at: "2026-11-25T10:31:42.123456+00:00"   # UTC, ISO 8601
    camera_serial: "123456789"                       # null when no camera is involved
    camera_name: wrist                               # null when no camera is involved
    units: {length: m, angle: rad, image: px}
    frames: {...}                                    # what each transform maps, in words
    data: {...}                                      # the measurement (kind-specific)

Camera moves are recorded in ``camera_moves.yaml`` beside the files, ``{serial: UTC
stamp}``, set by the operator (``hilr calibrate moved camera_serial=...``). Loading a file
for another serial, or older than its camera's last move, warns loudly
(``CalibrationMismatchWarning`` plus an ERROR log line); it still loads, so a session can
continue while the operator recalibrates.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import os
import warnings
from pathlib import Path
from typing import Any

import yaml

from calibration.errors import CalibrationFileError, CalibrationMismatchWarning
from robot_env.atomic import atomic_write

log = logging.getLogger(__name__)

FORMAT = "hilr-calibration"
VERSION = 1
KINDS = ("intrinsics", "handeye", "crops", "workspace", "spacemouse")
UNITS = {"length": "m", "angle": "rad", "image": "px", "time": "s"}
MOVES_FILE = "camera_moves.yaml"


def utc_now() -> dt.datetime:
    """The current time, UTC, timezone-aware (wall clock: files outlive a boot)."""
    return dt.datetime.now(dt.timezone.utc)


def _parse_time(value: Any, where: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        t = value
    else:
        try:
            t = dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise CalibrationFileError(f"{where}: bad timestamp {value!r} (want ISO 8601 UTC)") from exc
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class CalibrationFile:
    """One calibration file's content.

    Attributes:
        kind: one of ``KINDS``.
        data: the kind-specific measurement (plain YAML types).
        created_at: when it was measured, UTC.
        camera_serial: serial of the camera it belongs to, or None.
        camera_name: the camera's role (``front``, ``wrist``), or None.
        frames: frame descriptions, e.g. ``{"transform": "T_ee_cam: camera -> end effector"}``.
        units: units of the numbers in ``data``.
        path: where it was loaded from, if it was.
    """

    kind: str
    data: dict
    created_at: dt.datetime = dataclasses.field(default_factory=utc_now)
    camera_serial: str | None = None
    camera_name: str | None = None
    frames: dict = dataclasses.field(default_factory=dict)
    units: dict = dataclasses.field(default_factory=lambda: dict(UNITS))
    path: Path | None = None

    def to_yaml(self) -> str:
        """The file's text."""
        doc = {
            "format": FORMAT, "version": VERSION, "kind": self.kind,
            "created_at": self.created_at.isoformat(),
            "camera_serial": None if self.camera_serial is None else str(self.camera_serial),
            "camera_name": self.camera_name, "units": self.units, "frames": self.frames,
            "data": self.data,
        }
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def save_calibration(cal: CalibrationFile, path: str | os.PathLike) -> Path:
    """Write ``cal`` atomically (temp file, fsync, rename); returns the path."""
    if cal.kind not in KINDS:
        raise CalibrationFileError(f"unknown calibration kind {cal.kind!r}; one of {KINDS}")
    path = atomic_write(path, cal.to_yaml())
    log.info("wrote %s calibration to %s", cal.kind, path)
    return path


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CalibrationFileError(f"calibration file {path} does not exist; run `hilr calibrate` first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CalibrationFileError(f"cannot read calibration file {path}: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationFileError(f"calibration file {path} is corrupt (not valid YAML): {exc}") from exc


def load_calibration(
    path: str | os.PathLike,
    kind: str | None = None,
    expected_serial: str | None = None,
    moves_file: str | os.PathLike | None = None,
) -> CalibrationFile:
    """Load and validate a calibration file, warning loudly when it may be wrong.

    Args:
        path: the YAML file.
        kind: if given, the file must be of this kind.
        expected_serial: serial of the camera now connected; a different one warns.
        moves_file: camera-move record (default: ``camera_moves.yaml`` beside ``path``);
            a file older than its camera's last recorded move warns.

    Returns:
        The file's content.

    Raises:
        CalibrationFileError: missing, unreadable, corrupt, wrong format/version/kind, or
            missing fields.
    """
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CalibrationFileError(f"{path} is not a hilr calibration file (format != {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise CalibrationFileError(f"{path}: unsupported calibration file version {doc.get('version')!r}")
    missing = [k for k in ("kind", "created_at", "data", "units") if k not in doc]
    if missing:
        raise CalibrationFileError(f"{path}: missing field(s) {missing}")
    if kind is not None and doc["kind"] != kind:
        raise CalibrationFileError(f"{path} holds a {doc['kind']!r} calibration, expected {kind!r}")
    if not isinstance(doc["data"], dict):
        raise CalibrationFileError(f"{path}: 'data' must be a mapping")
    bad = _non_finite(doc["data"])
    if bad:
        raise CalibrationFileError(f"{path}: data.{bad} is not a finite number (NaN/inf would reach every action)")
    serial = doc.get("camera_serial")
    cal = CalibrationFile(
        kind=doc["kind"], data=doc["data"], created_at=_parse_time(doc["created_at"], str(path)),
        camera_serial=None if serial is None else str(serial), camera_name=doc.get("camera_name"),
        frames=doc.get("frames") or {}, units=doc["units"], path=path,
    )
    _check_serial(cal, expected_serial)
    _check_moved(cal, Path(moves_file) if moves_file else path.parent / MOVES_FILE)
    return cal


def _non_finite(node: Any, where: str = "") -> str | None:
    """Dotted path of the first NaN/inf float in a YAML tree, or None."""
    if isinstance(node, float) and not math.isfinite(node):
        return where or "value"
    if isinstance(node, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(node))
    else:
        return None
    for key, value in items:
        found = _non_finite(value, key)
        if found:
            return found
    return None


def _loud(message: str) -> None:
    banner = "!" * 78
    log.error("\n%s\n%s\n%s", banner, message, banner)
    warnings.warn(message, CalibrationMismatchWarning, stacklevel=3)


def _check_serial(cal: CalibrationFile, expected_serial: str | None) -> None:
    if expected_serial is None or cal.camera_serial is None:
        return
    if str(expected_serial) != cal.camera_serial:
        _loud(
            f"CALIBRATION FOR ANOTHER CAMERA: {cal.path} was measured on camera serial "
            f"{cal.camera_serial}, but the connected camera is {expected_serial}. Its numbers do not "
            f"apply: recalibrate with `hilr calibrate {cal.kind}`."
        )


def _check_moved(cal: CalibrationFile, moves_file: Path) -> None:
    if cal.camera_serial is None or not moves_file.exists():
        return
    moved_at = camera_moved_at(moves_file, cal.camera_serial)
    if moved_at is not None and moved_at > cal.created_at:
        _loud(
            f"STALE CALIBRATION: {cal.path} ({cal.created_at.isoformat()}) predates the last move of "
            f"camera {cal.camera_serial} ({moved_at.isoformat()}, recorded in {moves_file}). "
            f"Recalibrate with `hilr calibrate {cal.kind}`."
        )


def camera_moved_at(moves_file: str | os.PathLike, serial: str) -> dt.datetime | None:
    """When camera ``serial`` last moved according to ``moves_file``, or None."""
    moves_file = Path(moves_file)
    if not moves_file.exists():
        return None
    doc = _read_yaml(moves_file) or {}
    if not isinstance(doc, dict):
        raise CalibrationFileError(f"{moves_file}: expected a mapping serial -> timestamp")
    value = doc.get(str(serial))
    return None if value is None else _parse_time(value, str(moves_file))


def record_camera_moved(moves_file: str | os.PathLike, serial: str, when: dt.datetime | None = None) -> dt.datetime:
    """Record that camera ``serial`` moved (now, or at ``when``); returns the stamp written."""
    moves_file = Path(moves_file)
    doc = (_read_yaml(moves_file) or {}) if moves_file.exists() else {}
    if not isinstance(doc, dict):
        raise CalibrationFileError(f"{moves_file}: expected a mapping serial -> timestamp")
    when = when or utc_now()
    doc[str(serial)] = when.isoformat()
    atomic_write(moves_file, yaml.safe_dump(doc, sort_keys=True))
    return when


def calibration_path(directory: str | os.PathLike, kind: str, camera_name: str | None = None) -> Path:
    """Conventional file name: ``<dir>/<kind>[_<camera_name>].yaml``."""
    name = kind if camera_name is None else f"{kind}_{camera_name}"
    return Path(directory) / f"{name}.yaml"
