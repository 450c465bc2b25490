"""Read the calibration files that ``hilr calibrate`` writes (robot_env never imports calibration).

Format (docs/CONTRACTS.md): YAML with ``format: hilr-calibration``, ``version: 1``, ``kind``
and a kind-specific ``data`` block. ``calibration.files.load_calibration`` adds the
operator-facing checks (wrong camera serial, camera moved since); here we only refuse what
cannot be right: a missing or corrupt file, another format, or another kind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

FORMAT, VERSION = "hilr-calibration", 1


class CalibrationFileError(ValueError):
    """A calibration file is missing, corrupt, or not of the expected kind."""


def read_calibration_data(path: str | Path, kind: str) -> dict[str, Any]:
    """The ``data`` block of a calibration file of ``kind`` (``workspace``, ``crops``, ...)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CalibrationFileError(f"cannot read calibration file {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise CalibrationFileError(f"{path} is not a {FORMAT} v{VERSION} file")
    if doc.get("kind") != kind:
        raise CalibrationFileError(f"{path} holds a {doc.get('kind')!r} calibration, expected {kind!r}")
    if not isinstance(doc.get("data"), dict):
        raise CalibrationFileError(f"{path} has no data block")
    return doc["data"]


def workspace_limits(path: str | Path) -> dict[str, list[float]]:
    """``{"workspace_low": [x, y, z], "workspace_high": [x, y, z]}`` (m, base frame) from a workspace file."""
    data = read_calibration_data(path, "workspace")
    try:
        low = [float(v) for v in data["workspace_low"]]
        high = [float(v) for v in data["workspace_high"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CalibrationFileError(f"{path}: workspace_low/workspace_high missing or not numbers") from exc
    if not all(math.isfinite(v) for v in low + high):  # NaN compares False: it would pass `lo >= hi`
        raise CalibrationFileError(f"{path}: workspace bounds must be finite numbers, got {low} / {high}")
    if len(low) != 3 or len(high) != 3 or any(lo >= hi for lo, hi in zip(low, high)):
        raise CalibrationFileError(f"{path}: need 3 values each with low < high, got {low} / {high}")
    return {"workspace_low": low, "workspace_high": high}


def crop_fractions(path: str | Path) -> dict[str, tuple[float, float, float, float]]:
    """Per camera ``(x0, y0, x1, y1)`` as fractions of the frame, from a crops file."""
    data = read_calibration_data(path, "crops")
    out = {}
    for name, entry in data.items():
        try:
            out[name] = validate_crop_fractions(entry["crop_fractions"])
        except (KeyError, TypeError) as exc:
            raise CalibrationFileError(f"{path}: camera {name!r} has no crop_fractions") from exc
    return out


def validate_crop_fractions(crop: Any) -> tuple[float, float, float, float]:
    """``[x0, y0, x1, y1]`` with ``0 <= x0 < x1 <= 1`` and ``0 <= y0 < y1 <= 1``."""
    try:
        x0, y0, x1, y1 = (float(v) for v in crop)
    except (TypeError, ValueError) as exc:
        raise CalibrationFileError(f"a crop is [x0, y0, x1, y1] fractions, got {crop!r}") from exc
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise CalibrationFileError(f"crop {crop!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return x0, y0, x1, y1
