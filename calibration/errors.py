"""Errors raised by the calibration procedures; every one carries an operator-readable message."""

from __future__ import annotations

from robot_env.app import UserError


class CalibrationError(UserError):
    """A calibration could not be computed, or its result is too poor to use.

    A ``UserError``: ``hilr calibrate`` prints its message as one line and exits 1.
    """


class BoardNotFoundError(CalibrationError):
    """The ChArUco board was not (sufficiently) visible in an image."""


class DegeneratePosesError(CalibrationError):
    """The pose set cannot determine the unknown (too few poses, or too little rotation)."""


class CalibrationFileError(CalibrationError):
    """A calibration file is missing, corrupt, or of the wrong kind or version."""


class CalibrationMismatchWarning(UserWarning):
    """A calibration file belongs to another camera, or predates the camera's last move."""
