"""Agent tests: init reproduces the base, critic loss falls on fixed data, weights/state plumbing."""

from __future__ import annotations

import copy
import dataclasses

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


# ---------------------------------------------------------------- the residual's contract with its base
def _linear_critic(agent: Agent, slope: float) -> None:
    """Make every critic head ``Q = slope * action[0]`` (no hidden layer, identical heads)."""
    from policies.critics import CriticEnsemble

    agent.critic = CriticEnsemble(agent.encoder.out_dim, 7, agent.cfg.num_critics, (), False)
    with torch.no_grad():
        agent.critic.net[0].weight.zero_()
        agent.critic.net[0].bias.zero_()
        agent.critic.net[0].weight[:, agent.encoder.out_dim + 0, 0] = slope
    agent.critic_target = copy.deepcopy(agent.critic).requires_grad_(False)
    agent.critic_optim = torch.optim.SGD(agent.critic.parameters(), lr=0.0)  # the critic stays as set
    agent.critic_params = list(agent.critic.parameters())


@pytest.mark.parametrize("slope, gate_open", [(1.0, True), (-1.0, False)])
def test_gate_keeps_the_base_unless_the_critic_is_confident_the_residual_is_better(slope, gate_open):
    agent = Agent(SPEC, AgentConfig(gate=True, gate_kappa=1.0, **SMALL), ConstantBase())
    obs = {"state": np.ones(6, np.float32)}
    action, base, residual = agent.act(obs, deterministic=True)
    assert not agent.gate_open and np.array_equal(action, base)  # zero residual at init: nothing to gain
    with torch.no_grad():
        agent.actor.net[-1].bias.fill_(0.5)  # the residual now pushes every dim by +tanh(0.5)
    _linear_critic(agent, slope)
    action, base, residual = agent.act(obs, deterministic=True)
    assert agent.gate_open is gate_open
    assert np.array_equal(action, base) is (not gate_open)
    # disagreeing heads (a wide ensemble spread) close the gate even when the mean says "better"
    with torch.no_grad():
        agent.critic.net[0].weight[0, agent.encoder.out_dim, 0] = 20.0 * slope
        agent.critic.net[0].weight[1:, agent.encoder.out_dim, 0] = -slope
    agent.act(obs, deterministic=True)
    assert not agent.gate_open


def test_gate_explore_false_gates_only_deterministic_acting():
    agent = Agent(SPEC, AgentConfig(gate=True, gate_explore=False, explore_sigma=0.0, **SMALL), ConstantBase())
    obs = {"state": np.ones(6, np.float32)}
    with torch.no_grad():
        agent.actor.net[-1].bias.fill_(0.5)
    _linear_critic(agent, -1.0)  # the critic says the residual is worse: the gate closes
    action, base, _ = agent.act(obs, deterministic=True)
    assert agent.gate_open is False and np.array_equal(action, base)  # evaluation / deployment: the base
    action, base, residual = agent.act(obs)  # exploring in training: the residual's own action, ungated
    assert agent.gate_open is True and not np.array_equal(action, base) and np.all(residual > 0.4)
    agent.cfg = dataclasses.replace(agent.cfg, gate_explore=True)
    action, base, _ = agent.act(obs)
    assert agent.gate_open is False and np.array_equal(action, base)  # the default gates training actions too


def test_gate_heads_travel_with_the_weights_and_decide_the_same_on_the_actor():
    cfg = AgentConfig(gate=True, gate_heads=2, **SMALL)
    learner, actor_side = Agent(SPEC, cfg), Agent(SPEC, cfg, ConstantBase())
    with torch.no_grad():
        learner.actor.net[-1].bias.fill_(0.5)
    _linear_critic(learner, 1.0)
    state = learner.trainable_state()
    assert state["critic.net.0.weight"].shape[0] == 2  # only the gate's heads are sent
    _linear_critic(actor_side, -1.0)
    actor_side.load_trainable(state)
    actor_side.act({"state": np.ones(6, np.float32)}, deterministic=True)
    assert actor_side.gate_open


def test_weights_of_another_network_size_are_refused_with_a_clear_error():
    small = Agent(SPEC, AgentConfig(**SMALL))
    wide = Agent(SPEC, AgentConfig(**{**SMALL, "actor_hidden": (32, 32)}))
    with pytest.raises(ValueError, match="different network sizes"):
        small.load_trainable(wide.trainable_state())


def test_state_normaliser_is_learned_from_batches_then_frozen_and_travels_to_the_actor():
    cfg = AgentConfig(normalizer_updates=5, **SMALL)
    learner, actor_side = Agent(SPEC, cfg), Agent(SPEC, cfg)
    buf = ReplayBuffer(SPEC, 2000, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        s = (rng.normal(size=6) * [1, 10, 100, 1, 1, 1] + [0, 5, -50, 0, 0, 0]).astype(np.float32)
        buf.add({"obs": {"state": s}, "next_obs": {"state": s}, "action": np.zeros(7, np.float32),
                 "reward": 0.0, "terminated": False, "truncated": True})
    for _ in range(5):
        learner.update(buf.sample(64))
    mean, std = learner.encoder.state_mean.numpy(), learner.encoder.state_std.numpy()
    assert mean[2] == pytest.approx(-50, abs=15) and std[2] == pytest.approx(100, rel=0.3) and std[0] < 2
    learner.update(buf.sample(64))
    assert np.array_equal(learner.encoder.state_mean.numpy(), mean)  # frozen after normalizer_updates
    assert torch.equal(learner.target_encoder.state_mean, learner.encoder.state_mean)
    actor_side.load_trainable(learner.trainable_state())
    assert torch.equal(actor_side.encoder.state_std, learner.encoder.state_std)


def test_exploration_noise_is_held_for_explore_hold_steps_and_reset_per_episode():
    agent = Agent(SPEC, AgentConfig(explore_hold=3, explore_sigma=0.3, **SMALL), ConstantBase())
    obs = {"state": np.zeros(6, np.float32)}
    r = [agent.act(obs)[2] for _ in range(4)]
    assert np.array_equal(r[0], r[1]) and np.array_equal(r[1], r[2]) and not np.array_equal(r[2], r[3])
    agent.reset()
    assert not np.array_equal(agent.act(obs)[2], r[3])


@pytest.mark.parametrize("q_filter, moves_to_label", [(False, True), (True, False)])
def test_bc_term_pulls_the_residual_to_human_labels_only_where_the_critic_agrees(q_filter, moves_to_label):
    torch.manual_seed(0)
    cfg = AgentConfig(bc_weight=5.0, q_filter=q_filter, critic_lr=0.0, actor_lr=3e-3, critic_warmup_updates=0,
                      actor_delay=1, **SMALL)
    agent = Agent(SPEC, cfg)
    batch = _filled_buffer(200).sample(64)
    label = np.full((64, 7), 0.8, np.float32)
    batch.update(residual_action=label, labelled=np.ones(64, bool),
                 action=np.clip(batch["base_action"] + 0.1 * label, -1, 1))
    _linear_critic(agent, -1.0)  # the critic says the human's (larger a0) action is worse: filter it out
    for _ in range(150):
        m = agent.update(batch)
    residual = agent.actor(agent.encoder(agent_obs(batch)), torch.as_tensor(batch["base_action"])).detach().numpy()
    assert bool(np.abs(residual - 0.8).mean() < 0.2) is moves_to_label
    assert m["bc_keep_rate"] == (0.0 if q_filter else 1.0)


def agent_obs(batch):
    return {"state": torch.as_tensor(batch["obs"]["state"])}


def test_device_auto_resolves_and_missing_cuda_is_a_clear_error():
    assert AgentConfig(device="auto", **{k: v for k, v in SMALL.items()}).device in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            AgentConfig(device="cuda")


def test_a_base_trained_on_another_observation_layout_is_refused_with_the_likely_cause():
    from policies.bc import BCBasePolicy, BCConfig, BCPolicy

    base = BCBasePolicy(BCPolicy({"state": ((28,), "float32")}, BCConfig(hidden=(8,))))
    with pytest.raises(ValueError, match="privileged_state / camera"):
        Agent({"state": ((20,), "float32")}, AgentConfig(**SMALL), base)
    Agent({"state": ((28,), "float32")}, AgentConfig(**SMALL), base)  # the layout it was trained on


def test_backbone_from_base_uses_the_bc_policys_conv_trunk_on_both_sides(tmp_path):
    """encoder.backbone_from=base: the residual's frozen camera backbone is the BC base's, so an
    actor and a learner built with different seeds compute the same cached features."""
    from policies.bc import BCBasePolicy, BCConfig, BCPolicy, load_bc_policy, save_bc_policy

    spec = {"state": ((6,), "float32"), "front": ((32, 32, 3), "uint8")}
    enc = {"channels": 8, "latent_dim": 8, "image_size": 32}
    torch.manual_seed(5)
    bc = BCPolicy(spec, BCConfig(hidden=(32,), chunk_size=1, execute_steps=1, encoder=enc))
    save_bc_policy(tmp_path / "bc.safetensors", bc)
    base = load_bc_policy(tmp_path / "bc.safetensors")
    cfg = dict(encoder={**enc, "freeze_backbone": True, "backbone_from": "base"}, cache_features=True, **SMALL)
    actor_side = Agent(spec, AgentConfig(seed=1, **cfg), base)
    learner = Agent(spec, AgentConfig(seed=2, **cfg), backbone_source=load_bc_policy(tmp_path / "bc.safetensors"))
    want = bc.encoder.encoders["front"].backbone.state_dict()
    for agent in (actor_side, learner):
        for enc_ in (agent.encoder, agent.target_encoder):
            got = enc_.encoders["front"].backbone.state_dict()
            assert all(torch.equal(got[k], want[k]) for k in want)
    frames = {"front": np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)}
    np.testing.assert_array_equal(actor_side.encoder.featurize(frames)["front"], learner.encoder.featurize(frames)["front"])
    # without backbone_from, different seeds give different random trunks
    other = Agent(spec, AgentConfig(seed=2, **{**cfg, "encoder": {**enc, "freeze_backbone": True}}))
    assert not np.array_equal(other.encoder.featurize(frames)["front"], learner.encoder.featurize(frames)["front"])

    with pytest.raises(ValueError, match="needs the BC base policy with cameras"):
        Agent(spec, AgentConfig(**cfg), ConstantBase())
    with pytest.raises(ValueError, match="needs the BC base policy"):
        Agent(spec, AgentConfig(**cfg))
    with pytest.raises(ValueError, match=r"camera 'front' of the base policy has backbone small_conv x8 at 32 px, "
                                         r"this encoder small_conv x16"):
        Agent(spec, AgentConfig(**{**cfg, "encoder": {**cfg["encoder"], "channels": 16}}), base)
    assert isinstance(base, BCBasePolicy)
