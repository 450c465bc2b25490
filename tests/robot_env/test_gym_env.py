"""Any gymnasium env through robot_env.gym_env: a toy env with every space shape, and
gymnasium-robotics' FetchReach (a package we did not write) end to end: BC + residual RL."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from robot_env import make_env
from robot_env.gym_env import ExpertOperator, GymEnvConfig, load_expert, make_gym_env

torch.set_num_threads(1)
TOY_ID = "hilr_test/ToyDict-v0"


class ToyDictEnv(gym.Env):
    """Nested Dict obs (float64 vectors, an HWC and a CHW uint8 image), 3-D action in [0, 10]."""

    metadata = {"render_modes": []}

    def __init__(self, flag: str = "is_success") -> None:
        self.flag = flag
        self.observation_space = gym.spaces.Dict({
            "joints": gym.spaces.Box(-5, 5, (2, 2), np.float64),
            "cams": gym.spaces.Dict({"front": gym.spaces.Box(0, 255, (8, 6, 3), np.uint8),
                                     "side": gym.spaces.Box(0, 255, (3, 4, 5), np.uint8)}),
            "goal": gym.spaces.Box(-1, 1, (3,), np.float32),
        })
        self.action_space = gym.spaces.Box(0.0, 10.0, (3,), np.float32)
        self.last_action = None

    def _obs(self):
        rng = self.np_random
        return {"joints": rng.uniform(-1, 1, (2, 2)), "goal": np.array([0.1, 0.2, 0.3], np.float32),
                "cams": {"front": rng.integers(0, 255, (8, 6, 3), dtype=np.uint8),
                         "side": np.arange(60, dtype=np.uint8).reshape(3, 4, 5)}}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.last_action = np.asarray(action)
        success = bool(action[0] > 9.0)
        return self._obs(), float(success) * 5.0, False, self.t >= 20, {self.flag: np.float32(success)}


@pytest.fixture(scope="module", autouse=True)
def _register_toy():
    if TOY_ID not in gym.registry:
        gym.register(TOY_ID, entry_point=ToyDictEnv, max_episode_steps=20)


def _toy(**cfg):
    return make_env({"env": {"type": "gym", "id": TOY_ID, **cfg}})


def test_toy_spaces_are_converted_to_the_contract():
    env = _toy()
    space = env.observation_space
    assert set(space.spaces) == {"state", "cams_front", "cams_side"}  # nested keys joined with "_"
    assert space["state"].shape == (7,) and space["state"].dtype == np.float32  # 3 goal + 2x2 joints (key order)
    assert space["cams_front"].shape == (8, 6, 3) and space["cams_side"].shape == (4, 5, 3)
    assert env.action_space == gym.spaces.Box(-1, 1, (3,), np.float32) and env.action_dim == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert space.contains(obs)
    np.testing.assert_allclose(obs["state"][3:], info["raw_obs"]["joints"].ravel().astype(np.float32))
    np.testing.assert_array_equal(obs["cams_side"], info["raw_obs"]["cams"]["side"].transpose(1, 2, 0))
    assert info["success"] is False and info["is_success"] is False


def test_toy_actions_rescaled_and_success_mirrored_and_terminates():
    env = _toy()
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(np.array([-1.0, 0.0, 1.0], np.float32))
    np.testing.assert_allclose(env.unwrapped.last_action, [0.0, 5.0, 10.0], atol=1e-6)
    assert not term and info["success"] is False and info["is_success"] is False
    _, r, term, trunc, info = env.step(np.array([0.95, 0.0, 0.0], np.float32))  # 9.75 > 9
    assert term and info["success"] is True and info["is_success"] is True and r == 5.0
    np.testing.assert_allclose(env.to_normalized([0.0, 5.0, 10.0]), [-1, 0, 1], atol=1e-6)
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.array([np.nan, 0, 0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7, np.float32))


def test_success_key_threshold_and_no_termination_options():
    env = make_gym_env({"id": TOY_ID, "kwargs": {"flag": "success"}, "success_key": "is_success",
                        "terminate_on_success": False})
    env.reset(seed=0)
    _, _, term, _, info = env.step(np.ones(3, np.float32))
    assert info["success"] is False and not term  # the env sets "success", we read "is_success"
    env = make_gym_env({"id": TOY_ID, "kwargs": {"flag": "other"}, "success_threshold": 4.0})
    env.reset(seed=0)
    _, _, term, _, info = env.step(np.ones(3, np.float32))
    assert info["is_success"] is True and term
    # any info key: gym-hil reports success as info["succeed"]
    env = make_gym_env({"id": TOY_ID, "kwargs": {"flag": "succeed"}, "success_key": "succeed"})
    env.reset(seed=0)
    _, _, term, _, info = env.step(np.full(3, 0.99, np.float32))  # action[0] -> 9.95 in [0, 10]
    assert info["success"] is True and info["is_success"] is True and term
    with pytest.raises(ValueError, match="success_key"):
        GymEnvConfig(success_key="")
    with pytest.raises(ValueError, match="cannot make"):
        make_gym_env({"id": "NoSuchEnv-v9"})


def test_non_box_action_space_is_refused():
    with pytest.raises(TypeError, match="1-D Box"):
        make_gym_env({"id": "CartPole-v1"})


# ------------------------------------------------------------- gymnasium-robotics FetchReach
robotics = pytest.importorskip("gymnasium_robotics")
FETCH = {"type": "gym", "id": "FetchReach-v4", "imports": ["gymnasium_robotics"],
         "expert": "robot_env.gym_experts:fetch_reach", "max_episode_steps": 30}


def test_fetch_reach_passes_check_env_and_its_expert_succeeds():
    env = make_env({"env": FETCH})
    assert env.observation_space["state"].shape == (16,) and env.action_space.shape == (4,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    from learners.rollout import collect_episodes, evaluate

    expert = load_expert(env)  # function form
    eps = collect_episodes(env, expert.act, 3, seed=0, reset=expert.reset)
    assert all(bool(e["episode_success"]) and e["terminated"][-1] for e in eps)
    noisy = load_expert(env, "robot_env.gym_experts:NoisyFetchReach", noise=0.3, seed=1)  # factory form
    still = evaluate(env, lambda o: np.zeros(4, np.float32), 10)["success_rate"]
    assert still < 0.6  # standing still reaches only goals that spawn within 5 cm
    assert noisy.act(*env.reset(seed=0)).shape == (4,)


def test_fetch_reach_bc_then_residual_rl_with_operator_trains():
    from learners.agent import Agent
    from learners.bc import BCTrainConfig, train_bc
    from learners.builders import agent_config, build_replay
    from learners.inprocess import run_online
    from learners.rollout import collect_episodes
    from policies.bc import BCBasePolicy, BCConfig
    from policies.encoders import obs_spec_from_space

    env, eval_env = make_env({"env": FETCH}), make_env({"env": FETCH})
    demo_expert = load_expert(env, "robot_env.gym_experts:NoisyFetchReach", noise=0.2, seed=0)
    demos = collect_episodes(env, demo_expert.act, 8, seed=0, reset=demo_expert.reset, only_successful=True)
    model, m = train_bc(demos, BCConfig(hidden=(64, 64), chunk_size=2, execute_steps=1),
                        BCTrainConfig(steps=150, batch_size=64, lr=1e-3, val_fraction=0.0, val_every=150), None, False)
    assert model.action_dim == 4
    base = BCBasePolicy(model)
    assert base.act(env.reset(seed=5)[0]).shape == (4,)
    spec = obs_spec_from_space(env.observation_space)
    cfg = agent_config({"mode": "residual", "algo": "td3", "action_dim": env.action_dim, "actor_hidden": [32, 32],
                        "critic_hidden": [32, 32], "num_critics": 2, "batch_size": 32, "utd": 1,
                        "warmup_steps": 20, "critic_warmup_updates": 10, "actor_lr": 1e-3, "seed": 0})
    agent, replay = Agent(spec, cfg, base), build_replay(spec, cfg)
    for ep in demos:
        replay.demo.add_episode(ep, scale=cfg.scale_array())
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    operator = ExpertOperator(load_expert(env), disagreement=0.05, patience=1, takeover_steps=3)
    env = operator.wrap(env)
    res = run_online(env, agent, replay, 80, learning_starts=30, eval_env=eval_env, eval_every=80,
                     eval_episodes=3, operator=operator)
    assert res["updates"] == 80 - 30 + 1 and res["actor_updates"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    assert res["intervention_steps"] > 0 and operator.steps == res["intervention_steps"]
    assert len(res["curve"]) == 1 and 0.0 <= res["curve"][0][1] <= 1.0
