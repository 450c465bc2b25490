"""State-based sim observations: append the sim's privileged ``info["task_state"]`` to ``obs["state"]``.

The env's ``state`` is proprio only (docs/CONTRACTS.md), so without cameras a policy cannot
see where the cube or the reach target is. For state-based sim studies (the learning test,
``hilr bench learn`` state variants) this wrapper concatenates the task state (sorted by
key, flattened, float32) after the proprio. It only works on a sim env (real robots have
no ``task_state``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


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
