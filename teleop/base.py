"""The ``Teleoperator`` interface, its timestamped state, and the axis mapping it shares.

Every input device (SpaceMouse over HID, a ROS2 twist/joy stream, the scripted simulated
operator) reads as a :class:`TeleopState`: a 6-DoF command normalised to ``[-1, 1]``
(the same units as the first six entries of the env action, see docs/CONTRACTS.md), a
latched absolute gripper command, the raw buttons and whether the operator is *active*
(touching the device beyond its dead-zone or holding the intervention button).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robot_env.geometry import quat_to_matrix
from robot_env.hardware import ConnectionMixin
from robot_env.registry import Registry

#: Frames a 6-DoF command can be expressed in.
FRAMES = ("base", "tool")


@dataclasses.dataclass(frozen=True)
class TeleopState:
    """One timestamped reading of an operator input device.

    Attributes:
        stamp: ``time.monotonic()`` when the newest input sample arrived, seconds.
        command: (6,) float32 ``[vx, vy, vz, wx, wy, wz]`` normalised to ``[-1, 1]``
            after dead-zone, per-axis sign and scale; in ``frame``.
        gripper: latched absolute gripper command, ``-1`` open, ``+1`` closed, or
            ``None`` when the operator has not commanded the gripper since ``reset()``.
        buttons: raw button states of the device, 0/1.
        intervention_button: True while the intervention (press-and-hold) button is held.
        is_active: True while the operator is giving input: ``command`` beyond the
            dead-zone, the intervention button held, or a gripper button pressed.
        frame: ``"base"`` or ``"tool"``: the frame ``command`` is expressed in.
    """

    stamp: float
    command: np.ndarray
    gripper: float | None = None
    buttons: tuple[int, ...] = ()
    intervention_button: bool = False
    is_active: bool = False
    frame: str = "base"

    def action(self, fallback_gripper: float = -1.0) -> np.ndarray:
        """The env action this state commands: (7,) float32 in ``[-1, 1]``.

        Args:
            fallback_gripper: gripper value used when ``gripper`` is None (e.g. the
                policy's current gripper command).
        """
        grip = fallback_gripper if self.gripper is None else self.gripper
        out = np.empty(7, dtype=np.float32)
        out[:6] = self.command
        out[6] = grip
        return np.clip(out, -1.0, 1.0)


@dataclasses.dataclass
class AxisMapConfig:
    """Per-axis mapping from raw device axes (``[-1, 1]``) to a twist command.

    Axis order everywhere: ``x, y, z, roll, pitch, yaw``.

    Attributes:
        scale: (6,) gain per axis applied after the dead-zone; output clipped to [-1, 1].
        sign: (6,) +1 or -1 per axis (flip an axis to match how the device sits).
        deadzone: (6,) raw magnitude below which an axis reads exactly 0 (and does not
            count as operator input). The remaining range is rescaled to start at 0.
        frame: ``"base"`` (push away = robot +x in its base frame) or ``"tool"``
            (the command is in the end-effector frame; the intervention wrapper rotates
            it into the base frame with the current end-effector orientation).
        order: (6,) which raw axis feeds each command axis, e.g. ``(1, 0, 2, 4, 3, 5)``
            when the operator stands beside the robot (device x drives robot y).
        bias: (6,) resting offset of each *device* axis, subtracted before anything else
            (``hilr calibrate spacemouse`` measures it).
    """

    scale: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    sign: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    deadzone: Sequence[float] = (0.05, 0.05, 0.05, 0.05, 0.05, 0.05)
    frame: str = "base"
    order: Sequence[int] = (0, 1, 2, 3, 4, 5)
    bias: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        order = [int(i) for i in self.order]
        if sorted(order) != [0, 1, 2, 3, 4, 5]:
            raise ValueError(f"order must be a permutation of 0..5; got {order}")
        self.order = tuple(order)
        for name in ("scale", "sign", "deadzone", "bias"):
            value = list(getattr(self, name))
            if len(value) != 6:
                raise ValueError(f"{name} needs 6 values (x, y, z, roll, pitch, yaw); got {value}")
            setattr(self, name, tuple(float(v) for v in value))
        if any(s not in (-1.0, 1.0) for s in self.sign):
            raise ValueError(f"sign entries must be +1 or -1; got {self.sign}")
        if any(not 0.0 <= d < 1.0 for d in self.deadzone):
            raise ValueError(f"deadzone entries must be in [0, 1); got {self.deadzone}")
        if self.frame not in FRAMES:
            raise ValueError(f"frame must be one of {FRAMES}; got {self.frame!r}")


def map_axes(raw: Sequence[float], cfg: AxisMapConfig) -> tuple[np.ndarray, bool]:
    """Apply dead-zone, rescale, sign and gain to six raw axes.

    Args:
        raw: (6,) raw axis values, nominally in ``[-1, 1]``.
        cfg: the mapping.

    Returns:
        ``(command, moved)``: (6,) float32 command clipped to ``[-1, 1]``, and whether any
        axis was beyond its dead-zone.

    Raises:
        ValueError: on NaN or infinite raw values (a corrupt report must not move the arm).
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(6)
    if not np.all(np.isfinite(raw)):
        raise ValueError(f"non-finite teleop axes {raw}")
    raw = (raw - np.asarray(cfg.bias))[list(cfg.order)]
    dz = np.asarray(cfg.deadzone)
    mag = np.abs(raw)
    beyond = mag > dz
    shaped = np.where(beyond, np.sign(raw) * (mag - dz) / (1.0 - dz), 0.0)
    cmd = np.clip(shaped * np.asarray(cfg.sign) * np.asarray(cfg.scale), -1.0, 1.0)
    return cmd.astype(np.float32), bool(beyond.any())


def axes_from_calibration(path: str, base: AxisMapConfig | None = None) -> AxisMapConfig:
    """Axis map from a ``hilr calibrate spacemouse`` file (``kind: spacemouse`` YAML).

    The file sets ``order``, ``sign``, ``deadzone`` and ``bias``; ``scale`` and ``frame``
    come from ``base``. Read by path with a plain YAML parser (no calibration import).

    Raises:
        ValueError: the file is not a hilr SpaceMouse calibration or lacks a key.
    """
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    if doc.get("format") != "hilr-calibration" or doc.get("kind") != "spacemouse":
        raise ValueError(f"{path} is not a hilr SpaceMouse calibration file "
                         f"(format={doc.get('format')!r}, kind={doc.get('kind')!r})")
    data = doc.get("data") or {}
    axes = data.get("axes", data)  # calibration.runners writes {"axes": {order, sign, deadzone}, "bias"}
    missing = [k for k in ("order", "sign", "deadzone") if k not in axes]
    if missing:
        raise ValueError(f"{path}: calibration data lacks {missing}")
    base = base or AxisMapConfig()
    return AxisMapConfig(scale=base.scale, frame=base.frame, order=axes["order"], sign=axes["sign"],
                         deadzone=axes["deadzone"], bias=data.get("bias", (0.0,) * 6))


def tool_to_base(command: np.ndarray, ee_quat: np.ndarray) -> np.ndarray:
    """Rotate a tool-frame 6-DoF command into the base frame.

    Args:
        command: (6,) ``[v, w]`` in the end-effector frame.
        ee_quat: (4,) end-effector orientation, quaternion xyzw, base frame.

    Returns:
        (6,) float32 command in the base frame (not re-clipped per axis; clipped to [-1, 1]).
    """
    rot = quat_to_matrix(np.asarray(ee_quat, dtype=np.float64))
    cmd = np.asarray(command, dtype=np.float64)
    out = np.concatenate([rot @ cmd[:3], rot @ cmd[3:6]])
    return np.clip(out, -1.0, 1.0).astype(np.float32)


class Teleoperator(ConnectionMixin):
    """An operator input device: 6-DoF command plus buttons, read as a :class:`TeleopState`.

    Implementations keep the newest sample from a background reader (thread, ROS2
    executor) so ``read()`` never blocks the control loop. ``read()`` raises
    ``robot_env.hardware.DeviceError`` when the device is gone: an unplugged device never
    reads as "no input".
    """

    @abc.abstractmethod
    def read(self) -> TeleopState:
        """Newest state. Raises ``DeviceError`` if the device is disconnected."""

    def reset(self) -> None:
        """Start of an episode: forget latched commands (gripper). Default: nothing to do."""

    def bind_env(self, env: Any) -> None:
        """Called once by the intervention wrapper with the env it wraps.

        Human devices ignore it; the simulated operator takes the task config (action
        scales) from ``env.unwrapped.task`` for its expert.
        """

    def observe(
        self,
        obs: Mapping[str, np.ndarray],
        info: Mapping[str, Any],
        policy_action: np.ndarray | None,
    ) -> None:
        """Show the operator what the robot sees and what the policy wants to do.

        Human devices ignore it; the simulated operator decides from it whether to take
        over. Called by the intervention wrapper before each ``read()``.

        Args:
            obs: the latest observation dict.
            info: the latest ``info`` dict (``task_state`` in sim).
            policy_action: (7,) the action the policy proposes for this step, or None.
        """


TELEOPERATORS: Registry[Teleoperator] = Registry("teleoperator")


def make_teleoperator(spec: Mapping[str, Any] | Any, **kwargs: Any) -> Teleoperator:
    """Build a registered teleoperator from ``{"type": name, ...}`` (imports the built-ins)."""
    import teleop.ros_input  # noqa: F401  (registration side effect, on demand)
    import teleop.sim_operator  # noqa: F401
    import teleop.spacemouse  # noqa: F401

    return TELEOPERATORS.make(spec, **kwargs)
