"""Gymnasium wrappers, one concern each.

Order used by ``make_env`` (outermost first; actions flow outer -> inner):
``TimeLimit`` -> ``RejectNonFiniteAction`` -> ``SafetyClip`` -> ``RobotEnv``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np

from robot_env.env import STATE_LAYOUT, check_action
from robot_env.geometry import apply_rotvec, clip_rotation, quat_error_rotvec, quat_normalize


class RejectNonFiniteAction(gym.Wrapper):
    """Refuse NaN/inf (or wrongly shaped) actions with ``InvalidActionError``.

    Nothing is sent to the arm for a refused action; the episode may go on with a valid
    action.
    """

    def step(self, action):
        """Check, then pass the action on unchanged."""
        return self.env.step(check_action(action))


@dataclasses.dataclass
class SafetyLimits:
    """Where the TCP may be commanded (all in the base frame).

    Attributes:
        workspace_low: (3,) metres.
        workspace_high: (3,) metres.
        home_quat: (4,) xyzw, centre of the orientation limit.
        max_angle_from_home: the target's orientation stays within this geodesic angle
            of ``home_quat`` (a cone in SO(3)), radians.
        max_step_translation: largest TCP move per step (norm), metres.
        max_step_rotation: largest TCP rotation per step (angle), radians.
        max_translation: metres per unit action (the env's scale).
        max_rotation: radians per unit action (the env's scale).
    """

    workspace_low: np.ndarray
    workspace_high: np.ndarray
    home_quat: np.ndarray
    max_angle_from_home: float
    max_step_translation: float
    max_step_rotation: float
    max_translation: float
    max_rotation: float

    @classmethod
    def from_task(cls, task) -> SafetyLimits:
        """Limits from a ``TaskConfig``."""
        return cls(np.asarray(task.workspace_low, float), np.asarray(task.workspace_high, float),
                   quat_normalize(np.asarray(task.home_quat, float)), float(task.max_angle_from_home),
                   float(task.max_step_translation), float(task.max_step_rotation),
                   float(task.max_translation), float(task.max_rotation))


class SafetyClip(gym.Wrapper):
    """Clip each action so the TCP target it makes stays safe, before the arm sees it.

    The target is computed exactly as ``RobotEnv.action_to_target`` does, from the last
    observed TCP pose: per-step limits first, then the workspace box and the
    orientation cone, and the result is turned back into an action. Reports
    ``info["safety_clipped"]`` (bool), ``info["safety_reasons"]`` (comma-separated) and
    ``info["safe_action"]`` (the action actually executed, (7,) float32).

    Args:
        env: the env to protect.
        limits: the limits (``SafetyLimits.from_task(task)`` by default).
    """

    def __init__(self, env: gym.Env, limits: SafetyLimits | None = None) -> None:
        super().__init__(env)
        self.limits = limits or SafetyLimits.from_task(env.unwrapped.task)
        self._state: np.ndarray | None = None

    def reset(self, **kwargs):
        """Reset and remember the observed pose."""
        obs, info = self.env.reset(**kwargs)
        self._state = obs["state"]
        info["safety_clipped"] = False
        return obs, info

    def clip(self, action: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """Safe version of ``action`` given the observed ``state`` vector, and why it changed."""
        lim, reasons = self.limits, []
        a = np.asarray(action, dtype=np.float64).copy()
        if np.any(np.abs(a) > 1.0):
            a = np.clip(a, -1.0, 1.0)
            reasons.append("action_range")
        pos, quat = state[STATE_LAYOUT["ee_pos"]].astype(float), state[STATE_LAYOUT["ee_quat"]].astype(float)
        # translation: per-step norm, then the box
        dp = a[:3] * lim.max_translation
        norm = float(np.linalg.norm(dp))
        if norm > lim.max_step_translation:
            dp *= lim.max_step_translation / norm
            reasons.append("step_translation")
        target = pos + dp
        # a micrometre of margin absorbs the float32 rounding of the returned action
        boxed = np.clip(target, lim.workspace_low + 1e-6, lim.workspace_high - 1e-6)
        if np.any(np.abs(boxed - target) > 1e-9):
            reasons.append("workspace")
        a[:3] = np.clip((boxed - pos) / lim.max_translation, -1.0, 1.0)
        # rotation: per-step angle, then the cone around home (composed as rotations)
        rv = a[3:6] * lim.max_rotation
        angle = float(np.linalg.norm(rv))
        if angle > lim.max_step_rotation:
            rv *= lim.max_step_rotation / angle
            reasons.append("step_rotation")
        target_q = apply_rotvec(quat, rv)
        clipped_q, was_clipped = clip_rotation(target_q, lim.home_quat, lim.max_angle_from_home - 1e-5)
        if was_clipped:
            rv = quat_error_rotvec(clipped_q, quat)
            reasons.append("orientation")
        a[3:6] = np.clip(rv / lim.max_rotation, -1.0, 1.0)
        return a.astype(np.float32), reasons

    def step(self, action):
        """Clip, act, report."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        safe, reasons = self.clip(action, self._state)
        obs, reward, terminated, truncated, info = self.env.step(safe)
        self._state = obs["state"]
        info["safety_clipped"] = bool(reasons)
        info["safety_reasons"] = ",".join(reasons)
        info["safe_action"] = safe
        return obs, reward, terminated, truncated, info


class PrivilegedState(gym.Wrapper):
    """``obs["state"] <- concat(obs["state"], task_state[k] for k in sorted(task_state))``.

    The observation space's ``state`` Box grows accordingly (bounds -inf..inf). ``info`` is
    passed through unchanged.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        _, info = env.reset(seed=0)
        if "task_state" not in info:
            raise ValueError("PrivilegedState needs a sim env whose info carries 'task_state'")
        self._keys = sorted(info["task_state"])
        extra = sum(int(np.asarray(info["task_state"][k]).size) for k in self._keys)
        spaces = dict(env.observation_space.spaces)
        d = spaces["state"].shape[0] + extra
        spaces["state"] = gym.spaces.Box(-np.inf, np.inf, (d,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

    def _augment(self, obs: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
        ts = info["task_state"]
        obs = dict(obs)
        obs["state"] = np.concatenate(
            [obs["state"]] + [np.asarray(ts[k], np.float32).ravel() for k in self._keys]).astype(np.float32)
        return obs

    def reset(self, **kwargs: Any):
        """Reset and augment the first observation."""
        obs, info = self.env.reset(**kwargs)
        return self._augment(obs, info), info

    def step(self, action: Any):
        """Step and augment the observation."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._augment(obs, info), reward, terminated, truncated, info


class SelectObservation(gym.ObservationWrapper):
    """Keep only ``keys`` of the observation dict (the policy's inputs).

    hil-serl's ``classifier_keys`` vs ``image_keys``: a camera can feed the reward classifier
    (which runs inside the env, on the full observation) without being a policy input, e.g. a
    state-based policy whose reward comes from an image classifier.

    Raises:
        ValueError: a key the env does not have.
    """

    def __init__(self, env: gym.Env, keys: list[str] | tuple[str, ...]) -> None:
        super().__init__(env)
        spaces = env.observation_space.spaces
        missing = sorted(set(keys) - set(spaces))
        if missing:
            raise ValueError(f"obs_keys {missing} are not observations of this env (it has {sorted(spaces)})")
        self.keys = tuple(keys)
        self.observation_space = gym.spaces.Dict({k: spaces[k] for k in self.keys})

    def observation(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The selected keys."""
        return {k: observation[k] for k in self.keys}
