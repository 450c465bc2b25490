"""Learner speed and memory (issue 13): FLOP counts, sync-free metrics, foreach Adam, the
compile switch and its fallback, `hilr bench learner` and `hilr bench memory` reports."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from learners import bench_learner, bench_memory
from learners.agent import Agent, AgentConfig
from learners.apps.bench import BENCHMARKS
from learners.flops import chain_dims, mlp_flops, sgemm_rate, update_flops

torch.set_num_threads(1)
SPEC = {"state": ((6,), "float32")}
TINY = dict(num_critics=3, critic_hidden=(16, 8), actor_hidden=(12,), batch_size=8, critic_warmup_updates=0,
            actor_delay=2, normalizer_updates=3, seed=0)


def _replay(spec=SPEC, n=120):
    return bench_learner._fill(spec, n, seed=0)


def _weights(agent: Agent) -> list[torch.Tensor]:
    nets = (agent.critic, agent.critic_target, agent.actor, agent.actor_target)
    return [p.detach().clone() for m in nets if m is not None for p in m.state_dict().values()]


def _train(cfg: AgentConfig, updates: int = 6) -> tuple[Agent, list[dict[str, float]]]:
    agent, replay = Agent(SPEC, cfg), _replay()
    return agent, [agent.update(replay.sample(cfg.batch_size)) for _ in range(updates)]


def test_mlp_flops_match_a_hand_count():
    layers = chain_dims(3, [4], 2)  # 3 -> 4 -> 2, batch 5
    assert layers == [(3, 4), (4, 2)]
    fwd = 2 * 5 * 3 * 4 + 2 * 5 * 4 * 2  # 120 + 80
    assert mlp_flops(5, layers) == fwd == 200
    assert mlp_flops(5, layers, "weights") == fwd + fwd + 2 * 5 * 4 * 2  # + weight grads + 2nd layer input grad
    assert mlp_flops(5, layers, "weights", input_grad=True) == 3 * fwd
    assert mlp_flops(5, layers, "inputs", input_grad=True) == 2 * fwd
    with pytest.raises(ValueError):
        mlp_flops(5, layers, "both")


@pytest.mark.parametrize("algo,bc_weight", [("td3", 0.0), ("sac", 1.0)])
def test_update_flops_equal_torch_flop_counter_on_real_updates(algo, bc_weight):
    cfg = AgentConfig(algo=algo, bc_weight=bc_weight, **TINY)
    agent, replay = Agent(SPEC, cfg), _replay()
    counted = []
    for _ in range(2):  # update 1: critic only; update 2: critic + actor (actor_delay 2)
        with FlopCounterMode(display=False) as counter:
            agent.update(replay.sample(cfg.batch_size))
        counted.append(counter.get_total_flops())
    f = update_flops(cfg, agent.encoder.out_dim)
    assert counted == [f["critic_step"] + f["target"], f["critic_step"] + f["target"] + f["actor_step"]]
    assert f["per_update"] == pytest.approx(sum(counted) / 2)


def test_metrics_are_read_every_n_updates_and_do_not_change_learning():
    _, every = _train(AgentConfig(**TINY))
    agent, sparse = _train(AgentConfig(metrics_every=3, **TINY))
    reference, _ = _train(AgentConfig(**TINY))
    assert all(torch.equal(a, b) for a, b in zip(_weights(agent), _weights(reference)))
    strip = lambda m: {k: v for k, v in m.items() if not k.startswith("num_")}  # noqa: E731
    # read at updates 1 (the first), 3 and 6; in between the last read values are returned
    assert strip(sparse[0]) == strip(every[0]) == strip(sparse[1])
    assert strip(sparse[2]) == strip(every[2]) == strip(sparse[3]) == strip(sparse[4])
    assert strip(sparse[5]) == strip(every[5])
    assert [m["num_updates"] for m in sparse] == [1, 2, 3, 4, 5, 6]
    assert all(isinstance(v, float) for m in sparse for k, v in m.items() if not k.startswith("num_"))
    with pytest.raises(ValueError, match="metrics_every"):
        AgentConfig(metrics_every=0)


def test_foreach_adam_gives_the_per_tensor_loop_numbers():
    agent, _ = _train(AgentConfig(**TINY))  # one after the other: the updates draw from torch's global RNG
    loop, replay = Agent(SPEC, AgentConfig(**TINY)), _replay()
    loop.critic_optim = torch.optim.AdamW(loop.critic_params, lr=loop.cfg.critic_lr, weight_decay=0.0, foreach=False)
    loop.actor_optim = torch.optim.AdamW(loop.actor.parameters(), lr=loop.cfg.actor_lr, weight_decay=0.0, foreach=False)
    for _ in range(6):
        loop.update(replay.sample(8))
    assert all(torch.equal(a, b) for a, b in zip(_weights(agent), _weights(loop)))


def test_compile_switch_is_off_by_default_and_compiled_learner_matches_eager():
    eager, eager_metrics = _train(AgentConfig(**TINY))
    assert eager.compiled is False
    # the "eager" dynamo backend traces and runs the compiled graphs without a C++ toolchain
    compiled, compiled_metrics = _train(AgentConfig(compile=True, compile_backend="eager", **TINY))
    assert compiled.compiled is True
    assert all(torch.equal(a, b) for a, b in zip(_weights(compiled), _weights(eager)))
    assert compiled_metrics == eager_metrics
    assert compiled.trainable_state().keys() == eager.trainable_state().keys()  # compiled in place: same names
    assert compiled.state_dict()["critic"].keys() == eager.state_dict()["critic"].keys()


def test_compile_failure_falls_back_to_eager_with_a_warning():
    eager, _ = _train(AgentConfig(**TINY))
    with pytest.warns(RuntimeWarning, match="running eager"):
        broken, _ = _train(AgentConfig(compile=True, compile_backend="no_such_backend", **TINY))
    assert broken.compiled is False
    assert all(torch.equal(a, b) for a, b in zip(_weights(broken), _weights(eager)))
    broken.act({"state": np.zeros(6, np.float32)})  # the actor side still works


def test_sgemm_rate_reports_a_positive_rate_at_the_thread_count():
    r = sgemm_rate(32, min_seconds=0.05)
    assert r["shape"] == [32, 32, 32] and r["threads"] == torch.get_num_threads()
    assert 0 < r["gflops_median"] <= r["gflops_best"]


def test_bench_learner_reports_gflops_against_the_same_run_matmul():
    cfg = {"seed": 0, "learner_bench": {
        "device": "cpu", "batch_size": 8, "num_critics": 2, "critic_hidden": [16], "actor_hidden": [16],
        "updates": 2, "max_seconds": 5.0, "image_size": 16, "profile": True, "naive": True}}
    result = bench_learner.run(cfg)
    matmul = result["matmul"]
    assert matmul["shape"] == [8, 16, 16] and matmul["gflops"] == max(matmul["gflops_rounds"])
    for kind in ("state", "two_cameras"):
        entry = result[kind]
        for variant in ("batched", "naive_loop"):
            v = entry[variant]
            assert v["updates"] == 2 and v["gflops"] > 0
            assert v["ratio_to_matmul"] == pytest.approx(v["gflops"] / matmul["gflops"])
            assert v["updates_per_s_best_round"] == v["updates_per_s"]  # fewer updates than one round
    assert result["state"]["flops_per_update"]["source"] == "analytic"
    cams = result["two_cameras"]["flops_per_update"]  # convolutions counted, the MLP part analytic
    assert cams["per_update"] > cams["mlp_analytic"]["per_update"] and 0 < cams["encoder_share"] < 1
    cached = result["two_cameras"]["cached_features"]  # frozen backbone, features in replay
    assert cached["updates"] == 2 and cached["over_trainable"] > 0 and cached["state_over_cached"] > 0
    prof = result["state"]["batched"]["profile"]
    assert 0 < prof["matmul_share"] < 1 and prof["top_ops_ms_per_update"]


def test_bench_memory_is_registered_and_reports_bytes_per_transition(capsys):
    module, func = BENCHMARKS["memory"].split(":")
    assert getattr(importlib.import_module(module), func) is bench_memory.run
    o = {"transitions": 1000, "image_fill": 200, "image_size": 16, "feature_shape": [8, 2, 2], "episode_length": 50,
         "batch_size": 4}
    result = bench_memory.run({"memory_bench": o})
    state, cams, feats = result["state"], result["two_cameras"], result["features"]
    # 4 action arrays of 7 float32, reward, classifier probability, 4 bool flags, segment int64
    data = 4 * 7 * 4 + 4 + 4 + 4 + 8
    assert state["bytes_per_slot"] == {"frames": 20 * 4, "data": data, "total": 80 + data}
    assert cams["bytes_per_slot"]["frames"] == 80 + 2 * 16 * 16 * 3
    assert feats["bytes_per_slot"]["frames"] == 80 + 2 * 8 * 2 * 2 * 2  # float16 maps
    for r in (state, cams, feats):
        assert r["bytes_per_transition"] == pytest.approx(r["bytes_per_slot"]["total"] * 51 / 50)
        assert r["frame_copies_per_transition"] == pytest.approx(51 / 50)  # frames stored once
    assert cams["images_uint8"] is True and state["images_uint8"] is None and feats["images_uint8"] is None
    assert cams["batch"]["encoder_float32_copy_bytes"] == 4 * cams["batch"]["obs_and_next_obs_bytes"] - 4 * 2 * 4 * 80
    assert state["filled_transitions"] == 1000 and state["at_target"]["how"] == "measured"
    assert cams["filled_transitions"] == 200 and cams["at_target"]["how"].startswith("extrapolated")
    assert "[bench memory] two_cameras" in capsys.readouterr().out
    with pytest.raises(ValueError, match="max_gib"):
        bench_memory.run({"memory_bench": {**o, "max_gib": 1e-6, "layouts": ["two_cameras"]}})


def test_image_encoder_makes_one_float_copy_and_never_modifies_its_input():
    from policies.encoders import EncoderConfig, ImageEncoder

    enc = ImageEncoder(EncoderConfig(channels=4, latent_dim=4), (16, 16, 3))
    images = torch.randint(0, 256, (2, 16, 16, 3), dtype=torch.uint8)
    as_float = images.float()
    kept = as_float.clone()
    out = enc(images)
    assert torch.equal(enc(as_float), out) and torch.equal(as_float, kept)  # float input untouched
    ref = enc.head(enc.pool(enc.backbone(images.permute(0, 3, 1, 2).float() / 255.0)))  # the former scaling
    assert torch.equal(out, ref)


CAM_SPEC = {"state": ((5,), "float32"), "front": ((24, 24, 3), "uint8"), "wrist": ((24, 24, 3), "uint8")}
FROZEN = {"backbone": "small_conv", "channels": 4, "latent_dim": 8, "freeze_backbone": True}


def _episode_stream(n: int, rng: np.random.Generator):
    frames = [{k: (rng.integers(0, 256, s, dtype=np.uint8) if dt == "uint8" else rng.normal(size=s).astype(np.float32))
               for k, (s, dt) in CAM_SPEC.items()} for _ in range(n + 1)]
    for t in range(n):
        yield {"obs": frames[t], "next_obs": frames[t + 1], "action": np.zeros(7, np.float32),
               "base_action": np.zeros(7, np.float32), "reward": float(t == n - 1), "terminated": t == n - 1,
               "truncated": False}


def test_cached_backbone_features_give_the_image_path_features():
    agent = Agent(CAM_SPEC, AgentConfig(encoder=FROZEN, **TINY))
    enc = agent.encoder.encoders["front"]
    images = torch.randint(0, 256, (3, 24, 24, 3), dtype=torch.uint8)
    cached = enc.backbone_features(images)
    assert cached.dtype == torch.float16 and tuple(cached.shape[1:]) == enc.feature_shape
    torch.testing.assert_close(enc(cached), enc(images), atol=2e-3, rtol=0)  # float16 storage only
    trainable = Agent(CAM_SPEC, AgentConfig(encoder={**FROZEN, "freeze_backbone": False}, **TINY))
    with pytest.raises(RuntimeError, match="freeze_backbone"):
        trainable.encoder.encoders["front"](cached)


def test_feature_cache_runs_the_backbone_once_per_frame_and_the_learner_trains_on_features():
    from learners.feature_cache import FeatureCache
    from learners.replay import ReplayBuffer

    agent = Agent(CAM_SPEC, AgentConfig(encoder=FROZEN, cache_features=True, **TINY))
    cache = FeatureCache(agent.encoder)
    spec = cache.replay_spec()
    assert spec["front"] == (agent.encoder.encoders["front"].feature_shape, "float16") and spec["state"] == CAM_SPEC["state"]
    buf, rng = ReplayBuffer(spec, 200, n_step=3, frame_transform=cache.frame), np.random.default_rng(0)
    for _ in range(3):
        for tr in _episode_stream(20, rng):  # images in, as the actors send them
            buf.add(tr)
    assert cache.backbone_frames == 3 * 21  # T + 1 frames per T-step episode, each featurized once
    assert buf.frames["front"].dtype == np.float16
    episode = {"obs/front": rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8),
               "obs/wrist": rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8),
               "obs/state": rng.normal(size=(5, 5)).astype(np.float32), "action": np.zeros((4, 7), np.float32),
               "reward": np.zeros(4, np.float32), "terminated": np.zeros(4, bool), "truncated": np.zeros(4, bool)}
    buf.add_episode(episode)  # recorded demos go through the same transform
    assert cache.backbone_frames == 3 * 21 + 5
    before = [p.detach().clone() for p in agent.critic.parameters()]
    for _ in range(4):
        agent.update(buf.sample(8))
    assert any(not torch.equal(a, p) for a, p in zip(before, agent.critic.parameters()))
    agent.act(next(_episode_stream(1, rng))["obs"])  # the actor still acts on images
    with pytest.raises(ValueError, match="freeze_backbone"):
        FeatureCache(Agent(CAM_SPEC, AgentConfig(encoder={**FROZEN, "freeze_backbone": False}, **TINY)).encoder)
    with pytest.raises(ValueError, match="freeze_backbone"):
        AgentConfig(cache_features=True)


def test_a_resumed_learner_keeps_caching_features(tmp_path):
    from learners.builders import build_replay
    from learners.feature_cache import FeatureCache
    from learners.learner_loop import LearnerLoop, LearnerLoopConfig
    from learners.transport import TransitionReceiver
    from tests.learners.transport_helpers import fast_cfg

    acfg = AgentConfig(encoder=FROZEN, cache_features=True, buffer_capacity=100, demo_capacity=50, **TINY)
    agent = Agent(CAM_SPEC, acfg)
    cache = FeatureCache(agent.encoder)
    replay = build_replay(CAM_SPEC, acfg, cache)
    assert replay.online.frame_transform == cache.frame and replay.demo.frame_transform == cache.frame
    loop = LearnerLoop(agent, replay, TransitionReceiver(fast_cfg()), None, LearnerLoopConfig(), tmp_path)
    rng = np.random.default_rng(1)
    for tr in _episode_stream(6, rng):
        loop.replay.add(tr)
    loop.save_checkpoint()
    assert loop.resume()
    assert loop.replay.online.frame_transform == cache.frame and loop.replay.demo.frame_transform == cache.frame
    for tr in _episode_stream(3, rng):
        loop.replay.add(tr)  # images again after the resume: featurized, not refused
    assert len(loop.replay.online) == 9 and loop.replay.online.frames["front"].dtype == np.float16
