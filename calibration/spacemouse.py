"""SpaceMouse calibration: dead-zone from resting noise, then sign and axis mapping.

The device is anything whose ``read()`` returns six raw axes and a stamp: a tuple
``(values (6,), stamp)`` or an object with ``command`` and ``stamp`` attributes (a
``teleop`` ``TeleopState`` read with an identity axis map and zero dead-zone). The result
is written in the terms of teleop's ``AxisMapConfig``: ``order[k]`` is the device axis
that drives robot axis k (x, y, z, roll, pitch, yaw; base frame: x forward, y left,
z up), ``sign[k]`` its sign, ``deadzone[k]`` the dead-zone of that robot axis.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from calibration.errors import CalibrationError

log = logging.getLogger(__name__)

#: The guided pushes: (instruction, robot axis index, sign). Base frame: x forward, y left, z up.
GUIDED_STEPS = (
    ("push the SpaceMouse cap FORWARD (away from you, towards the robot's +x), then let go", 0, +1),
    ("push the cap LEFT (robot +y), then let go", 1, +1),
    ("pull the cap UP (robot +z), then let go", 2, +1),
)


class SixAxisInput(Protocol):
    """Minimal input device: ``read()`` -> ``(values (6,), stamp)`` or an object with ``command``/``stamp``."""

    def read(self) -> Any:
        """The newest raw reading."""


def read_axes(device: SixAxisInput) -> tuple[np.ndarray, float]:
    """(6,) float64 raw axes and their stamp from either reading form.

    Raises:
        CalibrationError: not six finite values.
    """
    r = device.read()
    if isinstance(r, tuple):
        values, stamp = r
    else:
        values, stamp = r.command, r.stamp
    values = np.asarray(values, np.float64).reshape(-1)
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        raise CalibrationError(f"SpaceMouse reading must be six finite values; got {values}")
    return values, float(stamp)


@dataclasses.dataclass
class SpaceMouseCalibration:
    """Result of the SpaceMouse procedure (robot axis order x, y, z, roll, pitch, yaw).

    Attributes:
        deadzone: (6,) dead-zone per robot axis, raw units (applied after subtracting ``bias``).
        bias: (6,) mean resting value per *device* axis, raw units (teleop subtracts it first).
        noise_max: (6,) largest resting deviation per device axis, raw units.
        order: (6,) device axis driving each robot axis.
        sign: (6,) +1/-1 per robot axis.
        handedness: +1 if the device-to-robot axis map is a rotation, -1 if a reflection.
    """

    deadzone: list
    bias: list
    noise_max: list
    order: list
    sign: list
    handedness: int

    def axis_map(self) -> dict:
        """The keys of teleop's ``AxisMapConfig`` this calibration sets (``bias`` per device axis)."""
        return {"order": list(self.order), "sign": list(self.sign), "deadzone": list(self.deadzone),
                "bias": list(self.bias)}


def guided_session_reports(rest_s: float = 3.0, rate_hz: float = 100.0, seed: int = 0) -> list[bytes]:
    """Raw HID reports of a SpaceMouse Wireless operator following ``calibrate_spacemouse``.

    For dry runs without a device (``hilr calibrate spacemouse spacemouse.replay=true``):
    the reports go through pyspacemouse's own parser, as a real device's do. The operator
    rests ``rest_s + 1`` s (noise of a few counts), then pushes forward, left and up, each
    at 80 % for 0.6 s followed by 0.6 s at rest. Report 1 of the Wireless model: six
    little-endian int16 counts, +-350 full scale, HID axes x right, y towards you, z down.

    Args:
        rest_s: the procedure's resting-noise time, seconds (the replay rests 1 s longer).
        rate_hz: reports per second (replay them ``1 / rate_hz`` apart).
        seed: noise seed.

    Returns:
        One ``bytes`` report per ``1 / rate_hz`` seconds.
    """
    import struct

    rng = np.random.default_rng(seed)

    def report(counts) -> bytes:
        noisy = np.asarray(counts, float) + rng.integers(-3, 4, 6)
        return b"\x01" + struct.pack("<6h", *np.clip(noisy, -350, 350).astype(int).tolist())

    rest = [0] * 6
    reports = [report(rest) for _ in range(int((rest_s + 1.0) * rate_hz))]
    # forward = HID -y (towards the robot), left = HID -x, up = HID -z
    for axis in (1, 0, 2):
        push = [0] * 6
        push[axis] = -280
        reports += [report(push) for _ in range(int(0.6 * rate_hz))]
        reports += [report(rest) for _ in range(int(0.6 * rate_hz))]
    return reports


def _sample(device, duration_s, rate_hz, clock, sleep) -> np.ndarray:
    values, t0, i = [], clock(), 0
    while clock() - t0 < duration_s:
        values.append(read_axes(device)[0])
        i += 1
        delay = t0 + i / rate_hz - clock()
        if delay > 0:
            sleep(delay)
    return np.array(values)


def measure_deadzone(
    device: SixAxisInput, duration_s: float = 3.0, rate_hz: float = 100.0, factor: float = 1.5,
    floor: float = 0.02, max_rest: float = 0.3,
    clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Record the untouched device and derive a dead-zone per device axis.

    Args:
        device: the input device, resting.
        duration_s: recording time, seconds.
        rate_hz: sampling rate, Hz.
        factor: dead-zone = max(floor, factor * largest resting deviation from the mean).
        floor: smallest dead-zone, raw units.
        max_rest: a resting value beyond this means the cap was touched: abort.

    Returns:
        ``(deadzone (6,), bias (6,), noise_max (6,))`` per device axis.
    """
    samples = _sample(device, duration_s, rate_hz, clock, sleep)
    if len(samples) < 10:
        raise CalibrationError(f"only {len(samples)} SpaceMouse samples in {duration_s} s; is it connected?")
    peak = np.abs(samples).max(0)
    if np.any(peak > max_rest):
        raise CalibrationError(
            f"SpaceMouse moved while measuring resting noise (peak {np.round(peak, 3).tolist()} > {max_rest}); "
            "do not touch the cap and run again"
        )
    bias = samples.mean(0)
    noise = np.abs(samples - bias).max(0)
    # teleop subtracts the bias before its dead-zone, so the dead-zone covers the noise around it.
    deadzone = np.maximum(floor, factor * noise)
    return deadzone, bias, noise


def _wait_push(device, deadzone, threshold, timeout_s, rate_hz, clock, sleep) -> np.ndarray:
    """Samples from the moment an axis passes ``threshold`` until the cap returns to rest."""
    t0, i, pushed = clock(), 0, []
    while clock() - t0 < timeout_s:
        v, _ = read_axes(device)
        if pushed or np.abs(v).max() > threshold:
            pushed.append(v)
            if np.all(np.abs(v) <= deadzone) and len(pushed) > 1:
                return np.array(pushed)
        i += 1
        delay = t0 + i / rate_hz - clock()
        if delay > 0:
            sleep(delay)
    if pushed:
        return np.array(pushed)
    raise CalibrationError(f"no push beyond {threshold} within {timeout_s} s; run again and push firmly")


def calibrate_spacemouse(
    device: SixAxisInput,
    say: Callable[[str], None] = print,
    rest_s: float = 3.0,
    threshold: float = 0.3,
    timeout_s: float = 20.0,
    rate_hz: float = 100.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SpaceMouseCalibration:
    """The whole procedure: resting noise, then "push forward, then left, then up".

    Args:
        device: the input device.
        say: shows an instruction to the operator (print; scripted tests react to it).
        rest_s: resting-noise recording time, seconds.
        threshold: raw value an axis must pass to count as a push.
        timeout_s: time allowed for each push, seconds.
        rate_hz: sampling rate, Hz.

    Returns:
        The calibration. Rotation axes follow the translation map (times the handedness,
        since angular rates are pseudo-vectors).

    Raises:
        CalibrationError: touched while resting, a push missing, dominated by a rotation
            axis, or two pushes on the same device axis.
    """
    say(f"Do not touch the SpaceMouse: measuring resting noise for {rest_s:.1f} s ...")
    dz, bias, noise = measure_deadzone(device, rest_s, rate_hz, clock=clock, sleep=sleep)
    say(f"dead-zone per device axis: {np.round(dz, 3).tolist()}")
    order, sign = [0] * 3, [1] * 3
    for text, robot_axis, robot_sign in GUIDED_STEPS:
        say(text)
        push = _wait_push(device, dz, threshold, timeout_s, rate_hz, clock, sleep) - bias
        strength = np.abs(push).mean(0)
        dev_axis = int(np.argmax(strength))
        if dev_axis >= 3:
            raise CalibrationError(
                f"that motion mostly tilted/twisted the cap (device axis {dev_axis}); push it straight, "
                "without rotating, and run again"
            )
        order[robot_axis] = dev_axis
        sign[robot_axis] = int(np.sign(push[:, dev_axis].sum())) * robot_sign or 1
        say(f"  -> device axis {dev_axis}, sign {sign[robot_axis]:+d}")
    if len(set(order)) != 3:
        raise CalibrationError(f"two pushes moved the same device axis (map {order}); run again")
    M = np.zeros((3, 3))
    for k in range(3):
        M[k, order[k]] = sign[k]
    handedness = int(round(np.linalg.det(M)))
    order6 = order + [3 + o for o in order]
    sign6 = sign + [s * handedness for s in sign]
    if handedness < 0:
        log.warning("device axes map to the robot's by a reflection; rotation signs flipped accordingly")
    return SpaceMouseCalibration(
        deadzone=[float(dz[o]) for o in order6], bias=bias.tolist(), noise_max=noise.tolist(),
        order=order6, sign=[float(s) for s in sign6], handedness=handedness,
    )
