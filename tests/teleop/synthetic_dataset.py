"""A small recorded dataset written through the real EpisodeWriter, without a simulator."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np

from robot_env.dataset import EpisodeWriter


def write_dataset(root: Path, episodes: int = 2, steps: int = 12, image: int = 24, seed: int = 0) -> Path:
    """``episodes`` episodes of ``steps`` steps: a 20-D state, a ``front`` camera, 7-D actions,
    the operator in control for steps 3..6, success on the last step of every episode."""
    rng = np.random.default_rng(seed)
    obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (20,), np.float32),
                                 "front": gym.spaces.Box(0, 255, (image, image, 3), np.uint8)})
    act_space = gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
    writer = EpisodeWriter(root, fps=10, task="pick_cube", observation_space=obs_space, action_space=act_space)

    ramp = np.linspace(40, 200, image)

    def obs(t: int = 0):  # a smooth image with a bright square moving right (video codecs like it)
        img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (image, 1)), np.full((image, image), 90.0)], -1)
        x = 2 + (t % (image - 8))
        img[8:14, x:x + 6] = 250
        return {"state": rng.normal(size=20).astype(np.float32), "front": img.astype(np.uint8)}

    for _ in range(episodes):
        writer.begin(obs())
        for t in range(steps):
            action = rng.uniform(-1, 1, 7).astype(np.float32)
            info = {"intervened": 3 <= t < 7, "success": t == steps - 1,
                    "policy_action": rng.uniform(-1, 1, 7).astype(np.float32)}
            writer.add(action, obs(t + 1), float(t == steps - 1), t == steps - 1, False, info)
        writer.end()
    return root
