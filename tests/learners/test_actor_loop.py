"""The actor loop's own records: episodes.jsonl and TensorBoard scalars (no transport)."""

from __future__ import annotations

import json

import numpy as np
import torch

from learners.actor_loop import ActorConfig, ActorLoop
from learners.agent import Agent, AgentConfig
from policies.base import BasePolicy

torch.set_num_threads(1)


class Still(BasePolicy):
    def act(self, obs):
        return np.zeros(7, np.float32)


def test_episode_statistics_reach_the_jsonl_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from robot_env import make_env
    from robot_env.wrappers import PrivilegedState

    env = PrivilegedState(make_env({"task": {"name": "reach", "episode_steps": 5}, "camera": None}))
    agent = Agent({"state": (env.observation_space["state"].shape, "float32")},
                  AgentConfig(mode="bc", num_critics=2, critic_hidden=(8,), actor_hidden=(8,)), Still())
    loop = ActorLoop(env, agent, ActorConfig(total_steps=0, episodes=3, deterministic=True, log_every_episodes=0),
                     run_dir=tmp_path, tensorboard=True)
    summary = loop.run()
    env.close()
    episodes = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert summary["episodes"] == len(episodes) == 3 and all(e["length"] == 5 for e in episodes)
    acc = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"episode/success", "episode/length", "actor/success_rate_last20", "actor/intervention_rate_last20"} <= tags
    assert [e.step for e in acc.Scalars("episode/length")] == [5, 10, 15]
