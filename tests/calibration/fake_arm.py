"""A registered kinematic fake arm for calibration tests (the physical edge only).

``command_pose`` sets a target; ``read_state`` reports the arm moving towards it over
``move_time_s`` (so waiting code is exercised), optionally with a fixed pose error.
``script`` replays a list of positions (or positions + quaternions), one per ``read_state``
(an operator moving the arm).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from robot_env.geometry import slerp
from robot_env.hardware import ARMS, Arm, ArmState, StaleDataError


@dataclasses.dataclass
class KinematicArmConfig:
    """Attributes:
        home_pos: (3,) start position, metres.
        home_quat: (4,) start orientation, xyzw.
        move_time_s: time to reach a commanded pose, seconds.
        stale_after: raise StaleDataError on every read after this many reads (None = never).
    """

    home_pos: list = dataclasses.field(default_factory=lambda: [0.5, 0.0, 0.4])
    home_quat: list = dataclasses.field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])
    move_time_s: float = 0.01
    stale_after: int | None = None


@ARMS.register("calib_kinematic", KinematicArmConfig)
class KinematicArm(Arm):
    """Reaches commanded poses by interpolation; records every command."""

    def __init__(self, cfg: KinematicArmConfig, script: list | None = None) -> None:
        self.cfg = cfg
        self.script = list(script or [])
        self.commands: list = []
        self._connected = False
        self._pos = np.asarray(cfg.home_pos, float)
        self._quat = np.asarray(cfg.home_quat, float)
        self._start = (self._pos, self._quat, time.monotonic())
        self._target = (self._pos, self._quat)
        self.reads = 0

    def connect(self) -> None:
        self._connected = True

    def disconnect(self) -> None:
        self._connected = False

    @property
    def is_connected(self) -> bool:
        return self._connected

    def _now_pose(self):
        p0, q0, t0 = self._start
        a = min(1.0, (time.monotonic() - t0) / max(self.cfg.move_time_s, 1e-9))
        return p0 + a * (self._target[0] - p0), slerp(q0, self._target[1], a)

    def read_state(self) -> ArmState:
        self._require_connected()
        self.reads += 1
        if self.cfg.stale_after is not None and self.reads > self.cfg.stale_after:
            raise StaleDataError("fake arm: state older than max age")
        if self.script:  # entries: (3,) position, or (7,) position + quaternion xyzw
            entry = np.asarray(self.script.pop(0), float)
            self._pos = entry[:3]
            if len(entry) == 7:
                self._quat = entry[3:]
            pos, quat = self._pos, self._quat
        else:
            pos, quat = self._now_pose()
        return ArmState(time.monotonic(), np.array(pos, float), np.array(quat, float), np.zeros(7), np.zeros(6), 0.04)

    def command_pose(self, ee_pos, ee_quat) -> None:
        self._require_connected()
        self.commands.append((np.array(ee_pos, float), np.array(ee_quat, float)))
        pos, quat = self._now_pose()
        self._start = (pos, quat, time.monotonic())
        self._target = (np.asarray(ee_pos, float), np.asarray(ee_quat, float))

    def command_gripper(self, width: float) -> None:
        pass

    def move_home(self, pos=None, quat=None) -> None:
        self.command_pose(self.cfg.home_pos if pos is None else pos, self.cfg.home_quat if quat is None else quat)

    def stop(self) -> None:
        pos, quat = self._now_pose()
        self._start = (pos, quat, time.monotonic())
        self._target = (pos, quat)
