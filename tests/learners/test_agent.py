"""Agent tests: init reproduces the base, critic loss falls on fixed data, weights/state plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learners.agent import Agent, AgentConfig
from learners.replay import ReplayBuffer
from policies.base import BasePolicy

torch.set_num_threads(1)
SPEC = {"state": ((6,), "float32")}
SMALL = dict(num_critics=4, critic_hidden=(64, 64), actor_hidden=(64, 64), batch_size=64, augment=False)


class ConstantBase(BasePolicy):
    def act(self, obs):
        return np.array([0.3, -0.2, 0.1, 0.0, 0.0, 0.5, -1.0], np.float32)


def _filled_buffer(n=400, seed=0):
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(SPEC, 1000, n_step=3, gamma=0.9, seed=seed)
    s = rng.normal(size=6).astype(np.float32)
    for t in range(n):
        s2 = rng.normal(size=6).astype(np.float32)
        a = rng.uniform(-1, 1, 7).astype(np.float32)
        buf.add({"obs": {"state": s}, "next_obs": {"state": s2}, "action": a, "base_action": np.zeros(7, np.float32),
                 "reward": float(s[0] > 0.5), "terminated": bool(t % 40 == 39 and s[0] > 0), "truncated": t % 40 == 39})
        s = s2
    return buf


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_residual_agent_at_init_executes_base_action(algo):
    agent = Agent(SPEC, AgentConfig(algo=algo, **SMALL), ConstantBase())
    obs = {"state": np.ones(6, np.float32)}
    action, base, residual = agent.act(obs, deterministic=True)
    assert np.array_equal(action, base) and np.array_equal(residual, np.zeros(7, np.float32))
    action, base, residual = agent.act(obs)  # exploration stays within scale * residual of the base
    assert np.all(np.abs(action - base) <= 0.1 + 1e-6) and np.allclose(action, np.clip(base + 0.1 * residual, -1, 1))
    _, _, warm = agent.act(obs, warmup=True)
    assert np.abs(warm).max() > 0.05


def test_bc_mode_acts_with_base_and_never_learns():
    agent = Agent(SPEC, AgentConfig(mode="bc", **SMALL), ConstantBase())
    action, base, residual = agent.act({"state": np.zeros(6, np.float32)})
    assert np.array_equal(action, base) and not residual.any() and not agent.learns
    assert agent.update(_filled_buffer(50).sample(8)) == {}


def test_rlpd_mode_has_no_base_and_unit_scale():
    agent = Agent(SPEC, AgentConfig(mode="rlpd", algo="sac", **SMALL), ConstantBase())
    _, base, _ = agent.act({"state": np.zeros(6, np.float32)})
    assert not base.any() and np.all(agent.scale_np == 1)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_critic_loss_falls_on_fixed_data_and_weights_change(algo):
    torch.manual_seed(0)
    agent = Agent(SPEC, AgentConfig(algo=algo, critic_lr=1e-3, actor_lr=1e-3, critic_warmup_updates=50,
                                    actor_delay=2, tau=0.05, **SMALL))
    batch = _filled_buffer().sample(64)
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    first = [agent.update(batch)["critic_loss"] for _ in range(5)]
    for _ in range(200):
        m = agent.update(batch)
    assert m["critic_loss"] < 0.5 * np.mean(first)
    assert agent.num_updates == 205 and agent.num_actor_updates == (205 - 50) // 2
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    if algo == "sac":
        assert float(agent.log_alpha.exp()) != pytest.approx(0.01, rel=1e-4)


def test_critic_warmup_keeps_actor_fixed():
    agent = Agent(SPEC, AgentConfig(critic_warmup_updates=10, actor_lr=1e-2, **SMALL))
    before = [p.detach().clone() for p in agent.actor.parameters()]
    batch = _filled_buffer(100).sample(32)
    for _ in range(10):
        assert "actor_loss" not in agent.update(batch)
    assert all(torch.equal(a, b) for a, b in zip(before, agent.actor.parameters()))


def test_trainable_state_excludes_frozen_backbone_and_round_trips(tmp_path):
    spec = {"state": ((6,), "float32"), "front": ((32, 32, 3), "uint8")}
    cfg = AgentConfig(encoder={"backbone": "resnet10", "channels": 8, "freeze_backbone": True, "latent_dim": 8}, **SMALL)
    learner, actor_side = Agent(spec, cfg), Agent(spec, cfg)
    state = learner.trainable_state()
    assert any(k.startswith("actor.") for k in state) and any(k.startswith("encoder.") for k in state)
    assert not any(".backbone." in k for k in state)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    with torch.no_grad():
        learner.actor.net[-1].weight.fill_(0.01)
    actor_side.load_trainable(learner.trainable_state())
    assert torch.equal(actor_side.actor.net[-1].weight, learner.actor.net[-1].weight)
    bad = dict(learner.trainable_state())
    bad["actor.net.0.weight"] = bad["actor.net.0.weight"] * np.nan
    with pytest.raises(ValueError, match="non-finite"):
        actor_side.load_trainable(bad)
    with pytest.raises(KeyError):
        actor_side.load_trainable({"actor.x": np.zeros(1)})


def test_full_checkpoint_restores_optimisers_and_temperature(tmp_path):
    agent = Agent(SPEC, AgentConfig(algo="sac", critic_warmup_updates=0, actor_delay=1, **SMALL))
    batch = _filled_buffer(100).sample(32)
    for _ in range(5):
        agent.update(batch)
    path = agent.save(tmp_path / "agent.safetensors")
    back = Agent.from_checkpoint(path)
    assert back.num_updates == 5 and float(back.log_alpha) == float(agent.log_alpha)
    assert back.critic_optim.state_dict()["state"][0]["step"] == agent.critic_optim.state_dict()["state"][0]["step"]
    back.torch_rng.set_state(agent.torch_rng.get_state())
    torch.manual_seed(1)
    m1 = agent.update(batch)
    torch.manual_seed(1)
    m2 = back.update(batch)
    assert m1["critic_loss"] == pytest.approx(m2["critic_loss"], rel=1e-4)
