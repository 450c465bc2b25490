"""``hilr bench actor``: actor inference latency on CPU, base only vs base + residual.

Both are measured in the same run, interleaved call by call so machine load hits them
equally, on real observations of the sim (two 128x128 MuJoCo cameras + proprio):

* ``base``: the BC base policy (``launch/config/policy/bc_image.yaml``, a small conv encoder
  per camera) through ``Agent.act`` in ``bc`` mode;
* ``base_residual``: the same base plus the residual actor and its image encoder
  (``launch/config/learner/residual_td3_cpu.yaml``) through ``Agent.act`` in ``residual`` mode.

* ``reward_classifier``: the image success classifier (``reward=classifier``; the shipped
  ``hilr train-reward`` architecture on both cameras) scoring the same observation, the extra
  work a real-robot actor does per step.

The base runs a network forward pass on every call (its chunk queue is cleared first), the
worst case; ``chunked_*`` entries give the latency with the configured receding-chunk
execution. The ratio ``base_residual / base`` is the cost of the residual on the actor.

``features``: a residual on a frozen backbone whose features the learner caches
(``learner.cache_features=true``), for the base's own conv trunk (``backbone_from=base``) and
a ResNet-10 at full resolution, each with ``learner.features_from=learner`` (the actor acts on
and sends images; the learner's backbone runs on every received frame) against ``actor`` (the
actor runs the backbone once per frame, acts on and sends the features): the actor's time per
step, the bytes of one encoded transition on the wire, and the learner's backbone time per
received frame, all in the same run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from learners.bench_learn import REPO


def _yaml(path: str) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(REPO / "launch" / "config" / path))


def _observations(n: int, size: int, seed: int) -> list[dict[str, np.ndarray]]:
    """``n`` real sim observations (random actions) with two ``size`` px cameras."""
    from robot_env import make_env

    cams = {name: {"type": "mujoco", "height": size, "width": size} for name in ("front", "wrist")}
    env = make_env({"task": {"name": "pick_cube", "image_size": [size, size]}, "camera": cams})
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    while len(out) < n:
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
    env.close()
    return out


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "mean_ms": round(float(a.mean()), 3), "n": int(a.size)}


def run(cfg: dict) -> dict:
    """Measure; returns ``base``, ``base_residual`` (p50/p99/mean ms) and their ratios.

    Config (``actor:`` node of bench.yaml, all optional): ``steps`` (timed calls per mode, 300),
    ``warmup`` (untimed calls, 20), ``threads`` (torch threads, 1), ``image_size`` (128),
    ``features`` (also time actor-made backbone features against images, true).
    """
    import torch

    from learners.agent import Agent
    from learners.builders import agent_config
    from policies.bc import BCBasePolicy, BCConfig, BCPolicy
    from policies.encoders import obs_spec_from_example
    from policies.reward import RewardClassifier, RewardClassifierConfig

    opts = {k: v for k, v in dict(cfg.get("actor") or {}).items() if v is not None}
    steps, warmup = int(opts.get("steps", 300)), int(opts.get("warmup", 20))
    threads, size = int(opts.get("threads", 1)), int(opts.get("image_size", 128))
    torch.set_num_threads(threads)
    torch.manual_seed(int(cfg.get("seed", 0)))
    observations = _observations(32, size, int(cfg.get("seed", 0)))
    spec = obs_spec_from_example(observations[0])
    base = BCBasePolicy(BCPolicy(spec, BCConfig(**_yaml("policy/bc_image.yaml"))))
    learner = _yaml("learner/residual_td3_cpu.yaml")
    only_base = Agent(spec, agent_config(learner, mode="bc"), base)
    with_residual = Agent(spec, agent_config(learner, mode="residual"), base)
    clf_cfg = {k: v for k, v in _yaml("train_reward.yaml")["model"].items()}
    classifier = RewardClassifier(spec, RewardClassifierConfig(**clf_cfg)).eval()
    results: dict[str, list[float]] = {"base": [], "base_residual": [], "chunked_base": [], "chunked_base_residual": [],
                                       "reward_classifier": []}
    agents = {"base": only_base, "base_residual": with_residual}
    for i in range(warmup + steps):
        obs = observations[i % len(observations)]
        for name, agent in agents.items():
            base.executor.reset()  # a forward pass of the base on every call (worst case)
            t0 = time.perf_counter()
            agent.act(obs)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                results[name].append(dt)
        t0 = time.perf_counter()
        classifier.success_probability(obs)
        if i >= warmup:
            results["reward_classifier"].append((time.perf_counter() - t0) * 1e3)
    for name, agent in agents.items():  # configured chunk execution: the base infers every execute_steps
        base.reset()
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            agent.act(observations[i % len(observations)])
            if i >= warmup:
                results["chunked_" + name].append((time.perf_counter() - t0) * 1e3)
    out = {k: _stats(v) for k, v in results.items()}
    if opts.get("features", True):
        base_enc = dict(_yaml("policy/bc_image.yaml")["encoder"])
        out["features"] = {
            "base_conv": _features(observations, spec, base, learner, {**base_enc, "backbone_from": "base"}, steps, warmup),
            "resnet10": _features(observations, spec, base, learner, {"backbone": "resnet10", "channels": 64,
                                                                      "image_size": None}, steps, warmup)}
    b, r = out["base"], out["base_residual"]
    return {"benchmark": "actor", "threads": threads, "image_size": size, "cameras": 2, **out,
            "ratio_p50": round(r["p50_ms"] / b["p50_ms"], 3), "ratio_p99": round(r["p99_ms"] / b["p99_ms"], 3),
            "residual_extra_p50_ms": round(r["p50_ms"] - b["p50_ms"], 3),
            "classifier_share_of_period_p99": round(out["reward_classifier"]["p99_ms"] / 100.0, 4)}  # of 100 ms at 10 Hz


def _features(observations: list[dict[str, np.ndarray]], spec: dict, base: Any, learner: dict, encoder: dict,
              steps: int, warmup: int) -> dict[str, Any]:
    """Images against actor-made features on one frozen backbone, interleaved step by step.

    Returns, per ``learner`` (images on the wire) and ``actor`` (features on the wire): the
    actor's step (backbone + residual, p50/p99 ms; the base is the same in both and left
    out), the encoded transition's bytes (two frames: obs and next obs) and the learner's
    backbone ms per received frame; plus ``bytes_ratio`` (images / features).
    """
    from learners.actor_loop import make_transition
    from learners.agent import Agent
    from learners.builders import agent_config
    from learners.feature_cache import FeatureCache
    from learners.transport import wire
    from learners.transport.spec import DIGEST

    class _NoBase:  # the base's cost is the same either way: time the residual side alone
        def act(self, obs):
            return np.zeros(7, np.float32)

        def reset(self):
            pass

    enc = {**encoder, "freeze_backbone": True}
    source = base if enc.get("backbone_from") == "base" else None
    agent = Agent(spec, agent_config(learner, mode="residual", cache_features=True, features_from="actor",
                                     encoder={**learner.get("encoder", {}), **enc}), _NoBase(), backbone_source=source)
    actor_cache, learner_cache = FeatureCache(agent.encoder), FeatureCache(agent.encoder)
    fields = {"actor": "bench", "stream": 0, "seq": 0, "policy_version": 0, "sent_unix": 0.0}
    zeros = np.zeros(7, np.float32)
    times: dict[str, list[float]] = {"actor_ms_learner": [], "actor_ms_actor": [], "ingest_ms_learner": [],
                                     "ingest_ms_actor": []}
    nbytes = {}
    for i in range(warmup + steps):
        obs, nxt = observations[i % len(observations)], observations[(i + 1) % len(observations)]
        t0 = time.perf_counter()
        agent.act(obs)  # images: the residual's encoder runs the frozen backbone
        t1 = time.perf_counter()
        feats = actor_cache.frame(obs)  # features: the backbone once, then act on its output
        agent.act(obs, features=feats)
        t2 = time.perf_counter()
        learner_cache.frame(obs)  # the learner's backbone on a received image frame
        t3 = time.perf_counter()
        learner_cache.frame(feats)  # an actor-made frame is stored as it comes
        t4 = time.perf_counter()
        if i >= warmup:
            for key, dt in (("actor_ms_learner", t1 - t0), ("actor_ms_actor", t2 - t1),
                            ("ingest_ms_learner", t3 - t2), ("ingest_ms_actor", t4 - t3)):
                times[key].append(dt * 1e3)
        if not nbytes:
            tr = make_transition(obs, nxt, zeros, zeros, zeros, 0.0, False, False, {})
            nbytes["learner"] = len(wire.encode("transition", fields, tr))
            tr = make_transition(feats, actor_cache.frame(nxt), zeros, zeros, zeros, 0.0, False, False, {})
            tr[DIGEST] = actor_cache.digest
            nbytes["actor"] = len(wire.encode("transition", fields, tr))
    out: dict[str, Any] = {"backbone": enc["backbone"], "feature_shape": list(actor_cache.shapes[actor_cache.keys[0]])}
    for where in ("learner", "actor"):
        out[where] = {"actor_step": _stats(times[f"actor_ms_{where}"]), "transition_bytes": nbytes[where],
                      "learner_ingest_p50_ms_per_frame": _stats(times[f"ingest_ms_{where}"])["p50_ms"]}
    out["bytes_ratio"] = round(nbytes["learner"] / nbytes["actor"], 3)
    out["actor_step_ratio_p50"] = round(out["actor"]["actor_step"]["p50_ms"] / out["learner"]["actor_step"]["p50_ms"], 3)
    return out
