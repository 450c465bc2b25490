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
    ``warmup`` (untimed calls, 20), ``threads`` (torch threads, 1), ``image_size`` (128).
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
    b, r = out["base"], out["base_residual"]
    return {"benchmark": "actor", "threads": threads, "image_size": size, "cameras": 2, **out,
            "ratio_p50": round(r["p50_ms"] / b["p50_ms"], 3), "ratio_p99": round(r["p99_ms"] / b["p99_ms"], 3),
            "residual_extra_p50_ms": round(r["p50_ms"] - b["p50_ms"], 3),
            "classifier_share_of_period_p99": round(out["reward_classifier"]["p99_ms"] / 100.0, 4)}  # of 100 ms at 10 Hz
