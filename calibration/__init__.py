"""hilr: calibration."""
