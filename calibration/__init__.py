"""hilr calibration: procedures that measure a set-up and write calibration files (YAML).

Cameras (ChArUco intrinsics, RealSense factory comparison), hand-eye (eye-in-hand and
eye-to-hand, driving any ``robot_env.hardware.Arm``), image crops, workspace bounds and the
SpaceMouse. ``robot_env`` reads the files by path and never imports this package. Entry
point: ``hilr calibrate <what>`` (calibration/app.py); see docs/sections/calibration.md.
"""
