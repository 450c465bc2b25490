"""The learning test: residual RL corrects a base policy's systematic error, on every seed.

Real MuJoCo reach task, state observations with the target position appended
(``PrivilegedState``). The base is a proportional controller that aims ``BIAS_M`` off the
target along y: a calibration offset, the situation residual RL is for. It succeeds only when
its straight path happens to pass within the 2 cm success radius (about a third of the
resets). Base + residual (the shipped ``residual_td3_cpu`` recipe, CPU-sized networks) must
learn the constant correction from reward alone.

The margin is far above seed noise: over ``SEEDS`` seeds, each evaluated on the same
``EVAL_EPISODES`` fixed reset seeds before and after (paired), every seed must gain at least
``MIN_GAIN_EACH`` and the mean gain must be at least ``MIN_GAIN_MEAN``; measured gains are
reported in docs/sections/policies_learning.md. A separate test checks that the residual does
not fall below an already-perfect base (the "never worse" half of the contract).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learners.agent import Agent
from learners.builders import agent_config, build_replay
from learners.inprocess import run_online
from learners.rollout import evaluate
from policies.base import BasePolicy

SEEDS = 3
RL_STEPS = 3000
EVAL_EPISODES = 40
BIAS_M = 0.03
MIN_GAIN_EACH = 0.25
MIN_GAIN_MEAN = 0.4
SMALL = dict(actor_hidden=[64, 64], critic_hidden=[128, 128], num_critics=4, batch_size=128, device="cpu",
             warmup_steps=500, critic_warmup_updates=500, utd=2)


class BiasedReachBase(BasePolicy):
    """``a = gain * (target + bias - tcp) / max_translation`` (clipped), gripper open.

    State layout: ``[0:3]`` TCP position, ..., ``[20:23]`` target position (privileged).
    """

    def __init__(self, bias: np.ndarray, max_translation: float, gain: float = 0.3) -> None:
        self.bias, self.max_translation, self.gain = np.asarray(bias, float), max_translation, gain

    def act(self, obs):
        s = np.asarray(obs["state"], float)
        a = np.zeros(7, np.float32)
        a[:3] = np.clip(self.gain * (s[20:23] + self.bias - s[0:3]) / self.max_translation, -1, 1)
        a[6] = -1.0
        return a


def make_env():
    from robot_env import make_env as _make_env
    from robot_env.wrappers import PrivilegedState

    return PrivilegedState(_make_env({"task": {"name": "reach"}, "camera": None}))


def recipe(seed: int):
    from omegaconf import OmegaConf

    from learners.bench_learn import REPO

    values = OmegaConf.to_container(OmegaConf.load(REPO / "launch" / "config" / "learner" / "residual_td3_cpu.yaml"))
    values.update(SMALL, seed=seed)
    return agent_config(values)


def train_and_evaluate(base: BasePolicy, seed: int, steps: int = RL_STEPS) -> tuple[float, float, dict]:
    torch.manual_seed(seed)
    env, eval_env = make_env(), make_env()
    cfg = recipe(seed)
    agent = Agent({"state": (env.observation_space["state"].shape, "float32")}, cfg, base)
    before = evaluate(eval_env, base.act, EVAL_EPISODES, seed=7000, reset=base.reset)["success_rate"]
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    result = run_online(env, agent, build_replay(agent.spec, cfg), steps, learning_starts=200, seed=seed)
    after = evaluate(eval_env, lambda o: agent.act(o, deterministic=True)[0], EVAL_EPISODES, seed=7000,
                     reset=agent.reset)["success_rate"]
    assert result["updates"] >= steps and result["actor_updates"] > 200
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    return before, after, result


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_residual_rl_corrects_a_biased_base_on_every_seed():
    torch.set_num_threads(1)
    mt = make_env().unwrapped.task.max_translation
    gains = []
    for seed in range(SEEDS):
        before, after, result = train_and_evaluate(BiasedReachBase([0.0, BIAS_M, 0.0], mt), seed)
        print(f"\nseed {seed}: base {before:.2f} -> residual {after:.2f} after {RL_STEPS} steps, "
              f"{result['updates']} updates ({result['seconds']:.0f} s)")
        assert before <= 0.6, f"the biased base should be weak: {before}"
        assert after >= before + MIN_GAIN_EACH, f"seed {seed}: {before:.2f} -> {after:.2f}"
        gains.append(after - before)
    assert np.mean(gains) >= MIN_GAIN_MEAN, gains


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_residual_never_falls_below_a_perfect_base():
    torch.set_num_threads(1)
    mt = make_env().unwrapped.task.max_translation
    before, after, _ = train_and_evaluate(BiasedReachBase([0.0, 0.0, 0.0], mt, gain=0.5), seed=0, steps=1500)
    print(f"\nperfect base {before:.2f} -> residual {after:.2f}")
    assert before >= 0.95 and after >= before - 0.05
