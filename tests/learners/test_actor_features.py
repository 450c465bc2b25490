"""Backbone features made on the actor (``learner.features_from=actor``, issue 13): the actor runs
the frozen backbone once per frame, acts on and sends the features with the backbone's digest; the
learner stores them without running its backbone and refuses another backbone's."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from learners.actor_loop import ActorConfig, ActorLoop
from learners.agent import Agent, AgentConfig
from learners.builders import build_replay
from learners.feature_cache import FeatureCache
from learners.transport import TransitionReceiver, TransitionSender
from learners.transport import wire
from learners.transport.spec import transition_spec
from tests.learners.transport_helpers import collect, fast_cfg, wait_for

torch.set_num_threads(1)
CAM_SPEC = {"state": ((5,), "float32"), "front": ((24, 24, 3), "uint8"), "wrist": ((24, 24, 3), "uint8")}
FROZEN = {"backbone": "small_conv", "channels": 4, "latent_dim": 8, "freeze_backbone": True}
TINY = dict(num_critics=2, critic_hidden=(16,), actor_hidden=(12,), batch_size=8, critic_warmup_updates=0,
            warmup_steps=0, buffer_capacity=200, demo_capacity=50)


def _cfg(seed: int = 0, **changes) -> AgentConfig:
    return AgentConfig(**{"encoder": FROZEN, "cache_features": True, "features_from": "actor", "seed": seed,
                          **TINY, **changes})


class TwoCameras(gym.Env):
    """Random camera frames and state (the physical edge); keeps every frame it showed."""

    observation_space = gym.spaces.Dict({
        "state": gym.spaces.Box(-10, 10, (5,), np.float32),
        "front": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8),
        "wrist": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8)})
    action_space = gym.spaces.Box(-1, 1, (7,), np.float32)

    def __init__(self, episode_steps: int = 8) -> None:
        self.episode_steps, self.shown, self._t = episode_steps, [], 0
        self._rng = np.random.default_rng(0)

    def _obs(self) -> dict:
        obs = {"state": self._rng.normal(size=5).astype(np.float32),
               "front": self._rng.integers(0, 256, (24, 24, 3), dtype=np.uint8),
               "wrist": self._rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)}
        self.shown.append(obs)
        return obs

    def reset(self, seed=None, options=None):
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        self._t += 1
        return self._obs(), 0.0, False, self._t >= self.episode_steps, {}


def _learner_side(acfg: AgentConfig):
    agent = Agent(CAM_SPEC, acfg)
    cache = FeatureCache(agent.encoder)
    required, optional = transition_spec(cache.replay_spec(), acfg.action_dim, features=True)
    rx = TransitionReceiver(fast_cfg(), expected=required, optional=optional, check=cache.check_transition)
    return agent, cache, rx


def test_the_actor_sends_its_features_and_the_learner_stores_them_without_its_backbone():
    acfg = _cfg()
    learner, cache, rx = _learner_side(acfg)
    env = TwoCameras()
    actor = Agent(CAM_SPEC, _cfg())  # its own process in real use: the same base, so the same backbone
    with rx, TransitionSender(fast_cfg(), "actor0", port=rx.port) as tx:
        loop = ActorLoop(env, actor, ActorConfig(total_steps=24, log_every_episodes=0), sender=tx)
        loop.run()
        got = collect(rx, 24, timeout_s=20)
        assert rx.rejections.counts() == {} and len(got) == 24, rx.rejections.counts()
    assert loop.features is not None and loop.features.backbone_frames == len(env.shown) == 24 + 3
    shapes = cache.replay_spec()
    frames = iter(env.shown)
    for i, t in enumerate(got):
        for k in ("front", "wrist"):
            feat = t.data["obs"][k]
            assert feat.dtype == np.float16 and feat.shape == shapes[k][0]
        if i % 8 == 0:  # an episode's first frame
            shown = next(frames)
        # exactly what the learner's own backbone makes of the image the env showed
        want = learner.encoder.featurize({k: shown[k][None] for k in ("front", "wrist")})
        for k in ("front", "wrist"):
            np.testing.assert_array_equal(t.data["obs"][k], want[k][0])
        shown = next(frames)
        want = learner.encoder.featurize({k: shown[k][None] for k in ("front", "wrist")})
        for k in ("front", "wrist"):
            np.testing.assert_array_equal(t.data["next_obs"][k], want[k][0])
    replay = build_replay(CAM_SPEC, acfg, cache)
    for t in got:
        replay.add(t.data)
    assert cache.backbone_frames == 0 and cache.passed_frames == 24 + 3  # one frame per step + each episode's first
    before = [p.detach().clone() for p in learner.critic.parameters()]
    for _ in range(3):
        learner.update(replay.sample(8))
    assert any(not torch.equal(a, p) for a, p in zip(before, learner.critic.parameters()))


def test_the_actor_acts_on_its_features_as_on_its_images():
    agent = Agent(CAM_SPEC, _cfg())
    cache = FeatureCache(agent.encoder)
    obs = TwoCameras()._obs()
    a_img = agent.act(obs, deterministic=True)
    a_feat = agent.act(obs, deterministic=True, features=cache.frame(obs))
    np.testing.assert_allclose(a_feat[0], a_img[0], atol=1e-3)  # float16 features: rounding only
    assert cache.backbone_frames == 1


def test_features_of_another_backbone_are_refused_and_the_actor_is_told_why(caplog):
    _, cache, rx = _learner_side(_cfg(seed=0))
    actor = Agent(CAM_SPEC, _cfg(seed=1))  # another backbone (another base policy in real use)
    assert actor.encoder.backbone_digest() != cache.encoder.backbone_digest()
    with rx, TransitionSender(fast_cfg(), "actor0", port=rx.port) as tx:
        ActorLoop(TwoCameras(), actor, ActorConfig(total_steps=8, log_every_episodes=0), sender=tx).run()
        assert wait_for(lambda: tx.stats()["refused"] == 8, timeout_s=20), (tx.stats(), rx.rejections.counts())
        assert rx.rejections.counts() == {"check": 8} and collect(rx, 1, timeout_s=0.3) == []
    assert "LEARNER REFUSED" in caplog.text and "same base_policy" in caplog.text


def test_an_actor_sending_images_to_a_features_learner_is_refused_and_told_what_to_set():
    _, _, rx = _learner_side(_cfg())
    images = Agent(CAM_SPEC, _cfg(features_from="learner"))
    with rx:
        # before the learner's pong (or from a peer that ignores it) the learner refuses at its socket
        with TransitionSender(fast_cfg(), "early", port=rx.port, use_learner_spec=False) as tx:
            ActorLoop(TwoCameras(), images, ActorConfig(total_steps=4, log_every_episodes=0), sender=tx).run()
            assert wait_for(lambda: tx.stats()["refused"] == 4, timeout_s=20), (tx.stats(), rx.rejections.counts())
            assert rx.rejections.counts() == {"spec_mismatch": 4} and collect(rx, 1, timeout_s=0.3) == []
        # once the actor knows the learner's spec, it stops at send() and names the setting
        with TransitionSender(fast_cfg(), "late", port=rx.port) as tx:
            assert wait_for(lambda: tx.learner_spec is not None, timeout_s=20)
            loop = ActorLoop(TwoCameras(), images, ActorConfig(total_steps=4, log_every_episodes=0), sender=tx)
            with pytest.raises(wire.SpecMismatch, match="learner.features_from=actor"):
                loop.run()


def test_a_frozen_batchnorm_backbone_never_moves_and_the_actor_sends_eval_mode_features():
    """ResNet backbones carry BatchNorm statistics: a frozen one must use them in every mode (the
    actor featurizes right after reset, during warm-up and after a model rebuild)."""
    resnet = {"backbone": "resnet10", "channels": 8, "freeze_backbone": True, "latent_dim": 8}
    acfg = _cfg(encoder=resnet, warmup_steps=6)
    learner, cache, rx = _learner_side(acfg)
    actor = Agent(CAM_SPEC, _cfg(encoder=resnet, warmup_steps=6))
    digest = actor.encoder.backbone_digest()
    assert not actor.encoder.encoder_for("front").backbone.training
    env = TwoCameras()
    with rx, TransitionSender(fast_cfg(), "actor0", port=rx.port) as tx:
        ActorLoop(env, actor, ActorConfig(total_steps=8, log_every_episodes=0), sender=tx).run()
        got = collect(rx, 8, timeout_s=20)
        assert len(got) == 8 and rx.rejections.counts() == {}
    assert actor.encoder.backbone_digest() == digest == learner.encoder.backbone_digest()
    want = learner.encoder.featurize({k: env.shown[0][k][None] for k in ("front", "wrist")})
    for k in ("front", "wrist"):
        np.testing.assert_array_equal(got[0].data["obs"][k], want[k][0])
    enc = learner.encoder.encoder_for("front")
    enc.backbone.train()  # a caller that forgot the frozen backbone's mode
    enc.backbone_features(torch.zeros(2, 24, 24, 3, dtype=torch.uint8))
    enc(torch.zeros(2, 24, 24, 3, dtype=torch.uint8))
    assert learner.encoder.backbone_digest() == digest


def test_a_bc_actor_makes_no_features():
    loop = ActorLoop(TwoCameras(), Agent(CAM_SPEC, _cfg(mode="bc")), ActorConfig(total_steps=2, log_every_episodes=0))
    assert loop.features is None
    assert ActorLoop(TwoCameras(), Agent(CAM_SPEC, _cfg()), ActorConfig(total_steps=2)).features is not None


def test_the_backbone_digest_follows_every_backbone_weight_and_buffer():
    a, b = Agent(CAM_SPEC, _cfg(seed=0)), Agent(CAM_SPEC, _cfg(seed=0))
    assert a.encoder.backbone_digest() == b.encoder.backbone_digest()
    b.encoder.encoder_for("front").head[0].weight.data += 1  # the trained head is not the backbone
    assert a.encoder.backbone_digest() == b.encoder.backbone_digest()
    p = next(b.encoder.encoder_for("wrist").backbone.parameters())
    p.data.view(-1)[0] = torch.nextafter(p.data.view(-1)[0], torch.tensor(np.inf))  # one ulp
    assert a.encoder.backbone_digest() != b.encoder.backbone_digest()
    resnet = {"backbone": "resnet10", "channels": 8, "freeze_backbone": True, "latent_dim": 8}
    r1, r2 = Agent(CAM_SPEC, _cfg(encoder=resnet)), Agent(CAM_SPEC, _cfg(encoder=resnet))
    assert r1.encoder.backbone_digest() == r2.encoder.backbone_digest()
    r2.encoder.encoder_for("front").backbone.bn1.running_var += 1e-3  # a BatchNorm statistic moves the features
    assert r1.encoder.backbone_digest() != r2.encoder.backbone_digest()


def test_feature_cache_passes_actor_features_through_and_refuses_mixed_frames():
    cache = FeatureCache(Agent(CAM_SPEC, _cfg()).encoder)
    obs = TwoCameras()._obs()
    feats = cache.frame(obs)
    assert cache.backbone_frames == 1 and cache.is_features(feats) and not cache.is_features(obs)
    again = cache.frame(feats)
    assert cache.backbone_frames == 1 and cache.passed_frames == 1
    np.testing.assert_array_equal(again["front"], feats["front"])
    with pytest.raises(ValueError, match="some hold backbone features and others images"):
        cache.frame({**obs, "front": feats["front"]})
    cache.check_digest(cache.digest)
    with pytest.raises(ValueError, match="same base_policy"):
        cache.check_digest(np.zeros(32, np.uint8))


def test_features_from_is_checked():
    with pytest.raises(ValueError, match="features_from must be learner or actor"):
        _cfg(features_from="gpu")
    with pytest.raises(ValueError, match="needs cache_features=true"):
        AgentConfig(features_from="actor")


def test_a_resumed_learner_checks_against_the_backbone_it_resumed(tmp_path):
    """A checkpoint holds the backbone whose features fill its replay: after a resume the learner
    accepts that backbone's features, not those of the backbone its config would build."""
    old, new = Agent(CAM_SPEC, _cfg(seed=0)), Agent(CAM_SPEC, _cfg(seed=1))
    old.save(tmp_path / "agent.safetensors")
    cache = FeatureCache(new.encoder)
    assert not cache.refresh_digest()
    new.load(tmp_path / "agent.safetensors")  # what LearnerLoop.resume does
    assert cache.refresh_digest()
    cache.check_digest(np.frombuffer(old.encoder.backbone_digest(), np.uint8))
    with pytest.raises(ValueError, match="same base_policy"):
        cache.check_digest(np.frombuffer(Agent(CAM_SPEC, _cfg(seed=1)).encoder.backbone_digest(), np.uint8))
