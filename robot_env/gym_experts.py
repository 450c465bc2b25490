"""Example scripted experts for gymnasium envs we did not write (``env.expert`` of the gym config).

Each is ``f(obs, info) -> action`` in the env's own action units; ``info["raw_obs"]`` holds
the env's original observation (see ``robot_env.gym_env``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

FETCH_POS_STEP_M = 0.05  # gymnasium-robotics Fetch: an action of 1 moves the gripper target 5 cm


def fetch_reach(obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
    """gymnasium-robotics ``FetchReach``: move the gripper straight to the goal.

    Returns:
        ``(4,)`` float32 ``[dx, dy, dz, gripper]``, each in [-1, 1] (1 = 5 cm).
    """
    raw = info["raw_obs"]
    grip = np.asarray(raw["observation"][:3], np.float64)
    goal = np.asarray(raw["desired_goal"], np.float64)
    action = np.zeros(4, np.float32)
    action[:3] = np.clip((goal - grip) / FETCH_POS_STEP_M, -1.0, 1.0)
    return action


class NoisyFetchReach:
    """Factory form: :func:`fetch_reach` plus Gaussian noise (an imperfect demonstrator).

    Args:
        noise: std of the noise on each action entry (action units).
        seed: RNG seed.
    """

    def __init__(self, noise: float = 0.3, seed: int = 0) -> None:
        self.noise, self.rng = float(noise), np.random.default_rng(seed)

    def reset(self) -> None:
        """Nothing to reset (stateless expert)."""

    def act(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> np.ndarray:
        """Noisy :func:`fetch_reach` action."""
        a = fetch_reach(obs, info) + self.rng.normal(0.0, self.noise, 4)
        return np.clip(a, -1.0, 1.0).astype(np.float32)
