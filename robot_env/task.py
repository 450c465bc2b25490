"""What a task is to the env, on a real robot and in sim alike.

A task config (the hydra ``task`` group) fixes the action scale, the workspace, the
episode length and the control rate. *Where success comes from* is a separate,
swappable piece: a ``SuccessSource``. In sim it reads privileged simulator state
(``SimSuccess`` in ``robot_env.sim``); on a real robot it is a reward classifier on
images (added by the reward-classifier wrapper) or ``NoSuccess`` until one is trained.
Privileged state (``task_state``) is only ever produced by sim sources.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import numpy as np

from robot_env.registry import Registry

#: Gripper pointing straight down (TCP z axis = -z of the base), xyzw.
GRIPPER_DOWN = (1.0, 0.0, 0.0, 0.0)


@dataclasses.dataclass
class TaskConfig:
    """One task: limits and timing used by the env and its safety wrappers.

    Attributes:
        name: task name (``reach``, ``pick_cube``, ``peg_insert`` in sim).
        control_hz: control rate, Hz (one env step = one period).
        episode_steps: time limit, env steps (``truncated`` after this many).
        max_translation: metres per step for an action of 1 (per axis).
        max_rotation: radians per step for an action of 1 (per rotation-vector axis).
        workspace_low: (3,) lowest TCP position allowed, metres, base frame.
        workspace_high: (3,) highest TCP position allowed, metres, base frame.
        home_pos: (3,) TCP position at reset, metres, base frame.
        home_quat: (4,) TCP orientation at reset, xyzw, base frame; also the centre of
            the orientation cone and the sign reference of ``state``'s quaternion.
        max_angle_from_home: the commanded orientation stays within this geodesic angle
            of ``home_quat`` (an orientation cone), radians.
        max_step_translation: largest TCP move per step (norm), metres.
        max_step_rotation: largest TCP rotation per step (angle), radians.
        reset_pos_noise: (3,) uniform +- noise on the reset TCP position, metres.
        reset_yaw_noise: uniform +- yaw noise on the reset orientation, radians.
        image_size: (height, width) of every camera image in the observation, pixels.
        sim: parameters of the simulated task (object sizes, randomisation ranges),
            validated by the sim task's own config class; ignored on a real robot.
    """

    name: str = "pick_cube"
    control_hz: float = 10.0
    episode_steps: int = 100
    max_translation: float = 0.03
    max_rotation: float = 0.2
    workspace_low: tuple = (0.25, -0.3, 0.0)
    workspace_high: tuple = (0.7, 0.3, 0.4)
    home_pos: tuple = (0.45, 0.0, 0.25)
    home_quat: tuple = GRIPPER_DOWN
    max_angle_from_home: float = 1.0
    max_step_translation: float = 0.04
    max_step_rotation: float = 0.3
    reset_pos_noise: tuple = (0.03, 0.03, 0.02)
    reset_yaw_noise: float = 0.2
    image_size: tuple = (128, 128)
    sim: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("workspace_low", "workspace_high", "home_pos", "reset_pos_noise"):
            value = tuple(float(v) for v in getattr(self, key))
            if len(value) != 3:
                raise ValueError(f"task.{key} must have 3 values (x, y, z metres), got {value}")
            setattr(self, key, value)
        self.home_quat = tuple(float(v) for v in self.home_quat)
        self.image_size = tuple(int(v) for v in self.image_size)
        self.sim = dict(self.sim or {})
        if len(self.home_quat) != 4:
            raise ValueError(f"task.home_quat must be xyzw, got {self.home_quat}")
        if len(self.image_size) != 2 or min(self.image_size) <= 0:
            raise ValueError(f"task.image_size must be (height, width) > 0, got {self.image_size}")
        if np.any(np.asarray(self.workspace_low) >= np.asarray(self.workspace_high)):
            raise ValueError(f"task.workspace_low {self.workspace_low} must be below workspace_high")
        for key in ("control_hz", "max_translation", "max_rotation", "max_angle_from_home",
                    "max_step_translation", "max_step_rotation"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"task.{key} must be > 0, got {getattr(self, key)}")
        if self.episode_steps < 1:
            raise ValueError(f"task.episode_steps must be >= 1, got {self.episode_steps}")

    @property
    def dt(self) -> float:
        """Control period, seconds."""
        return 1.0 / float(self.control_hz)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TaskConfig:
        """Build from a plain mapping (a hydra ``task`` node), rejecting unknown keys."""
        from robot_env.registry import config_from_dict

        return config_from_dict(cls, values)


class SuccessSource(abc.ABC):
    """Where ``success`` (and, in sim only, ``task_state``) comes from."""

    def reset(self) -> None:
        """Start of an episode (after the robot and the scene were reset)."""

    @abc.abstractmethod
    def success(self, obs: dict[str, np.ndarray]) -> bool:
        """Whether the task is solved now, given the newest observation."""

    def failure(self, obs: dict[str, np.ndarray]) -> bool:
        """Whether the episode failed beyond recovery (e.g. object off the table)."""
        return False

    def task_state(self) -> dict[str, np.ndarray]:
        """Privileged state (object poses). Empty on a real robot."""
        return {}

    def info(self) -> dict[str, Any]:
        """Extra entries for the step's ``info`` about the newest decision (e.g. a classifier's
        probability, who decided); read right after :meth:`success`. Empty by default."""
        return {}


class NoSuccess(SuccessSource):
    """Real robot without a success detector yet: never succeeds, episodes time out."""

    def success(self, obs: dict[str, np.ndarray]) -> bool:
        """Always False."""
        return False


#: Success sources selectable by config (``reward: {type: ..., ...}`` in a verb's config). Each
#: implementation's constructor takes ``(cfg, privileged=<the robot's own source or None>)``.
SUCCESS_SOURCES: Registry[SuccessSource] = Registry("reward source")
#: Modules that register a success source on import, loaded only when a config names it (the
#: classifier needs torch; the env does not).
SUCCESS_SOURCE_MODULES = {"classifier": "policies.reward_source"}
