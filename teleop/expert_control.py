"""A scripted expert in control of every step: the demonstrator of ``hilr record env=gym``.

For a gymnasium env (``robot_env.gym_env``) the simulated operator is the env's own scripted
expert (``env.expert: "module:function"``), whatever its action size; the recorder sees the
same ``info`` keys as under :class:`~teleop.intervention.InterventionWrapper` with the
operator always in control.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class ExpertInControl(gym.Wrapper):
    """Replace every action with the expert's; ``info`` as the intervention wrapper writes it.

    Args:
        env: any env with a 1-D ``Box`` action space (A,).
        expert: ``reset()`` and ``act(obs, info) -> (A,)`` in the env's action space.
    """

    def __init__(self, env: gym.Env, expert: Any) -> None:
        super().__init__(env)
        self.expert = expert
        self.steps = 0
        self._obs: Any = None
        self._info: dict[str, Any] = {}

    def reset(self, **kwargs: Any):
        """Reset the env and the expert's episode state."""
        obs, info = self.env.reset(**kwargs)
        self.expert.reset()
        self.steps = 0
        self._obs, self._info = obs, info
        return obs, info

    def step(self, action: np.ndarray):
        """Step with the expert's action; ``action`` (the idle policy's) is kept as ``policy_action``."""
        executed = np.asarray(self.expert.act(self._obs, self._info), np.float32).reshape(self.action_space.shape)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        self.steps += 1
        info = dict(info)
        info.update(intervened=True, teleop_action=executed, policy_action=np.asarray(action, np.float32),
                    action=executed.copy(), interventions=1, intervention_steps=self.steps,
                    intervention_rate=1.0)
        self._obs, self._info = obs, info
        return obs, reward, terminated, truncated, info


class IdlePolicy:
    """The recorder's policy while the expert drives: zeros of the env's action size."""

    def __init__(self, action_dim: int) -> None:
        self.action = np.zeros(action_dim, np.float32)

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, obs: Any) -> np.ndarray:
        """(A,) zeros."""
        return self.action.copy()
