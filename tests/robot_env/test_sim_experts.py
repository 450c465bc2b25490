"""Each task's scripted expert over >= 20 seeded episodes: success rates, printed and asserted."""

from __future__ import annotations

import numpy as np
import pytest

import robot_env
from robot_env.sim.experts import make_expert

# (task, noise, minimum success rate over 20 seeded episodes)
CASES = [("reach", 0.1, 0.9), ("pick_cube", 0.1, 0.8), ("peg_insert", 0.1, 0.8)]


def run_expert(task: str, noise: float, episodes: int = 20, speed: float = 1.0) -> tuple[float, float]:
    """Success rate and mean episode length of ``task``'s expert on seeds 0..episodes-1."""
    env = robot_env.make_env({"task": {"name": task}})
    expert = make_expert(task, noise=noise, speed=speed, seed=123)
    successes, lengths = 0, []
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        expert.reset()
        for t in range(1, 10_000):
            obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
            if terminated or truncated:
                break
        successes += bool(info["success"])
        lengths.append(t)
    env.close()
    return successes / episodes, float(np.mean(lengths))


@pytest.mark.parametrize(("task", "noise", "min_rate"), CASES)
def test_expert_success_rate(task, noise, min_rate):
    rate, mean_len = run_expert(task, noise)
    print(f"\nexpert {task} noise={noise}: success {rate:.0%} over 20 episodes, mean length {mean_len:.1f} steps")
    assert rate >= min_rate


def test_expert_is_tunable():
    weak, _ = run_expert("pick_cube", noise=0.6, episodes=10)
    slow_rate, slow_len = run_expert("reach", noise=0.0, episodes=5, speed=0.4)
    fast_rate, fast_len = run_expert("reach", noise=0.0, episodes=5, speed=1.0)
    print(f"\npick_cube noise=0.6: {weak:.0%}; reach speed 0.4: {slow_len:.1f} steps, speed 1.0: {fast_len:.1f}")
    assert weak <= 0.8
    assert slow_rate == fast_rate == 1.0 and slow_len > 1.5 * fast_len
