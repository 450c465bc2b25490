"""``hilr calibrate <what>``: measure one calibration and write it as YAML under ``out_dir``.

``what`` is ``intrinsics | handeye | crops | workspace | spacemouse`` (and ``moved``, which
records that a camera was moved so that its older files warn). The last printed line is a
JSON summary. See docs/sections/calibration.md for the step-by-step procedure.
"""

from __future__ import annotations

import json

from robot_env.app import UserError, hydra_app, to_container


@hydra_app("calibrate")
def main(cfg) -> int:
    """Run the calibration named by ``cfg.what`` and print its JSON summary last."""
    from calibration.runners import RUNNERS

    if cfg.what not in RUNNERS:
        raise UserError(f"unknown calibration {cfg.what!r}; choose one of {sorted(RUNNERS)}")
    # a CalibrationError or DeviceError becomes one line, `hilr calibrate: <why>`, and exit 1
    summary = RUNNERS[cfg.what](to_container(cfg))
    print(json.dumps(summary, sort_keys=True, default=str))
    return 0
