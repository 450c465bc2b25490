"""Workspace bounds taught by moving the arm to the corners of the safe region.

While the operator moves the arm (SpaceMouse teleop or hand-guiding), the end-effector
positions are sampled; the axis-aligned bounding box of the visited positions, grown
by a margin, becomes the box the safety layer clips targets into. A margin > 0 grows
the box (you reach the corners but the policy may slightly overshoot them); a margin < 0
shrinks it (stay clear of the taught corners).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

import numpy as np

from calibration.errors import CalibrationError
from robot_env.hardware import Arm, StaleDataError

log = logging.getLogger(__name__)


@dataclasses.dataclass
class WorkspaceBounds:
    """An axis-aligned box for end-effector positions, base frame.

    Attributes:
        min: (3,) lower corner, metres.
        max: (3,) upper corner, metres.
        margin: margin already applied to the taught box, metres.
        n_samples: positions the box was taught from.
        taught_min: (3,) lower corner of the visited positions before the margin, metres.
        taught_max: (3,) upper corner before the margin, metres.
    """

    min: np.ndarray
    max: np.ndarray
    margin: float
    n_samples: int
    taught_min: np.ndarray
    taught_max: np.ndarray

    def contains(self, pos: np.ndarray) -> bool:
        """True when a (3,) position lies inside the box."""
        pos = np.asarray(pos, float)
        return bool(np.all(pos >= self.min) and np.all(pos <= self.max))

    def to_dict(self) -> dict:
        """Plain-dict form for the calibration file (metres, base frame)."""
        return {
            # The names of robot_env's safety limits (task/safety config), so the values can be
            # passed on unchanged: safety.workspace_low / safety.workspace_high.
            "workspace_low": self.min.tolist(), "workspace_high": self.max.tolist(), "margin": float(self.margin),
            "n_samples": int(self.n_samples), "taught_min": self.taught_min.tolist(),
            "taught_max": self.taught_max.tolist(),
        }


def bounds_from_positions(positions: np.ndarray, margin: float = 0.01, min_extent: float = 0.02) -> WorkspaceBounds:
    """Bounding box of (N, 3) positions (metres, base frame) grown by ``margin``.

    Raises:
        CalibrationError: no finite samples, the visited positions span less than
            ``min_extent`` along an axis (the operator skipped an axis, or the arm never
            moved), or a negative margin shrinks the box below it.
    """
    positions = np.asarray(positions, float).reshape(-1, 3)
    positions = positions[np.all(np.isfinite(positions), axis=1)]
    if len(positions) == 0:
        raise CalibrationError("no arm positions recorded; was the arm connected and moving?")
    lo, hi = positions.min(0), positions.max(0)
    # The visited positions themselves must span every axis: checked before the margin, since
    # a margin of 1 cm would turn an arm that never moved into a 2 cm box that passes.
    taught = hi - lo
    if np.any(taught < min_extent):
        axes = [a for a, e in zip("xyz", taught) if e < min_extent]
        raise CalibrationError(
            f"the arm moved too little along {axes}: visited extent {np.round(taught, 4).tolist()} m "
            f"(need >= {min_extent} m on every axis). Move the arm to the corners of the whole safe "
            "volume, including up and down."
        )
    bmin, bmax = lo - margin, hi + margin
    extent = bmax - bmin
    if np.any(extent < min_extent):  # a negative margin shrank the box away
        axes = [a for a, e in zip("xyz", extent) if e < min_extent]
        raise CalibrationError(
            f"margin {margin} m shrinks the taught box below {min_extent} m along {axes} "
            f"(extent {np.round(extent, 4).tolist()} m); use a smaller negative margin."
        )
    return WorkspaceBounds(bmin, bmax, float(margin), len(positions), lo, hi)


def teach_workspace(
    arm: Arm,
    done: Callable[[], bool],
    step: Callable[[], None] | None = None,
    rate_hz: float = 50.0,
    max_duration_s: float = 300.0,
    margin: float = 0.01,
    min_extent: float = 0.02,
    max_stale: int = 50,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    on_sample: Callable[[np.ndarray], None] | None = None,
) -> WorkspaceBounds:
    """Sample the end-effector position while the operator moves the arm.

    Args:
        arm: a connected arm.
        done: returns True when the operator is finished (e.g. a button or Enter).
        step: called once per sample before reading, e.g. to forward a SpaceMouse twist to
            the arm; None when the operator hand-guides the arm.
        rate_hz: sampling rate, Hz (absolute deadlines).
        max_duration_s: stop after this long regardless, seconds.
        margin: grows (> 0) or shrinks (< 0) the taught box, metres.
        min_extent: reject boxes thinner than this on any axis, metres.
        max_stale: abort after this many consecutive stale readings.
        clock: monotonic clock (injectable for tests).
        sleep: sleep function (injectable for tests).
        on_sample: called with each (3,) position (live display).

    Returns:
        The bounds with margin.
    """
    positions, stale = [], 0
    t0 = clock()
    i = 0
    while not done() and clock() - t0 < max_duration_s:
        if step is not None:
            step()
        try:
            state = arm.read_state()
            stale = 0
        except StaleDataError as exc:
            stale += 1
            if stale >= max_stale:
                arm.stop()
                raise CalibrationError(f"arm state stale for {stale} samples while teaching the workspace: {exc}") from exc
        else:
            positions.append(np.asarray(state.ee_pos, float).copy())
            if on_sample is not None:
                on_sample(positions[-1])
        i += 1
        delay = t0 + i / rate_hz - clock()
        if delay > 0:
            sleep(delay)
    return bounds_from_positions(np.array(positions), margin, min_extent)
