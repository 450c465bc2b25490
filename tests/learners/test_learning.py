"""The learning test: residual RL on a deliberately weak BC base raises the success rate.

State-based pick_cube in the real MuJoCo sim (object pose appended to the proprio with
``PrivilegedState``). The base is a BC policy trained briefly on 10 scripted-expert demos.
It is deployed after a "calibration drift": the observed cube y position is 1.5 cm off
(the demos were recorded before the drift), the situation residual RL is meant for; the
base then succeeds about 35-40 % of the time. The residual TD3 agent (CPU-sized ResFiT
recipe + a small L2 pull towards the base) trains online for 6000 env steps with the
demos in a 50/50 demo buffer.

The measured lift at this budget is small and seed-sensitive (+0.05 to +0.18 over the
base in 4 of 5 runs, -0.03 in one; docs/sections/policies_learning.md), so the bar is
+0.05, i.e. at least two more successes on the same 40 reset seeds. Success is measured deterministically on the SAME reset
seeds for the base and for base + residual, so the comparison is paired.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from learners.agent import Agent, AgentConfig
from learners.bc import BCTrainConfig, train_bc
from learners.inprocess import run_online
from learners.replay import MixedReplay, ReplayBuffer, relabel_base_actions
from learners.rollout import collect_episodes, evaluate
from learners.sim_obs import PrivilegedState
from policies.bc import BCBasePolicy, BCConfig

TASK = "pick_cube"
NUM_DEMOS = 10
BC_STEPS = 1000
RL_STEPS = 6000
DRIFT_Y = 0.015  # metres added to the observed cube y after the demos were recorded
EVAL_EPISODES = 40
RL_CONFIG = dict(
    num_critics=4, critic_hidden=(128, 128), actor_hidden=(128, 128), gamma=0.95, n_step=3,
    actor_lr=1e-4, critic_lr=3e-4, utd=2, actor_delay=2, critic_warmup_updates=500, warmup_steps=300,
    warmup_noise=0.5, batch_size=128, residual_scale=0.2, explore_sigma=0.1, residual_l2=0.02, augment=False, seed=1,
)


class CubeCalibrationDrift(gym.ObservationWrapper):
    """Adds ``DRIFT_Y`` to the observed cube y (state layout: proprio(20), cube_half_size, cube_pos, ...)."""

    def observation(self, obs):
        obs = dict(obs)
        state = obs["state"].copy()
        state[22] += DRIFT_Y
        obs["state"] = state
        return obs


def make_env(drift: bool = False):
    from robot_env import make_env as _make_env

    env = PrivilegedState(_make_env({"task": {"name": TASK}, "camera": {}}))
    return CubeCalibrationDrift(env) if drift else env


def weak_bc_base(env, seed: int = 0):
    """BC trained briefly on a few noisy expert demos; returns (policy, demos)."""
    from robot_env.sim.experts import make_expert

    expert = make_expert(TASK, noise=0.1, seed=seed)
    demos = collect_episodes(env, expert.act, NUM_DEMOS, seed=seed, reset=expert.reset, only_successful=True)
    torch.manual_seed(seed)
    model, _ = train_bc(demos, BCConfig(hidden=(128, 128), chunk_size=4, execute_steps=2),
                        BCTrainConfig(steps=BC_STEPS, batch_size=128, val_every=BC_STEPS, val_fraction=0.0, seed=seed),
                        progress=False)
    return BCBasePolicy(model), demos


def demo_replay(demos, base, cfg: AgentConfig, spec) -> MixedReplay:
    """Online buffer + demo buffer filled with the demos, labelled with the base's actions."""
    scale = cfg.scale_array()
    online = ReplayBuffer(spec, 20_000, n_step=cfg.n_step, gamma=cfg.gamma, seed=cfg.seed)
    demo = ReplayBuffer(spec, 5_000, n_step=cfg.n_step, gamma=cfg.gamma, seed=cfg.seed + 1)
    for ep in demos:
        demo.add_episode(relabel_base_actions(ep, base), scale=scale)
    return MixedReplay(online, demo, scale, demo_ratio=0.5)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_residual_rl_improves_weak_bc_base():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    base, demos = weak_bc_base(make_env())  # demos recorded before the drift
    env, eval_env = make_env(drift=True), make_env(drift=True)
    before = evaluate(eval_env, base.act, EVAL_EPISODES, seed=5000, reset=base.reset)
    assert 0.1 <= before["success_rate"] <= 0.8, f"base should be weak but not useless: {before['success_rate']}"

    cfg = AgentConfig(**RL_CONFIG)
    spec = {"state": (env.observation_space["state"].shape, "float32")}
    agent = Agent(spec, cfg, base)
    replay = demo_replay(demos, base, cfg, spec)
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    result = run_online(env, agent, replay, RL_STEPS, learning_starts=300, seed=1)
    after = evaluate(eval_env, lambda o: agent.act(o, deterministic=True)[0], EVAL_EPISODES, seed=5000, reset=agent.reset)

    print(f"\nbase success {before['success_rate']:.2f} -> residual {after['success_rate']:.2f} "
          f"after {RL_STEPS} steps, {result['updates']} updates ({result['seconds']:.0f} s)")
    assert result["updates"] >= RL_STEPS and result["actor_updates"] > 500
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    assert after["success_rate"] >= before["success_rate"] + 0.05
