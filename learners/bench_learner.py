"""``hilr bench learner``: learner updates per second, batched critic ensemble vs a naive loop.

For each input kind (``state``: proprio only; ``two_cameras``: proprio + two uint8 cameras)
it builds the real :class:`learners.agent.Agent` (TD3 residual update by default) with a
10-head critic ensemble, fills a real :class:`learners.replay.MixedReplay` with synthetic
transitions, and times full ``agent.update(replay.sample(256))`` calls (sampling,
host->device copy, augmentation, target, critic, actor, Polyak). Then it swaps the batched
ensemble for :class:`policies.critics.NaiveCriticList` (E separate MLPs in a Python loop)
and times the same thing in the same run. The result holds both rates and their ratio.

Overrides (hydra, new keys need ``+``): ``+learner_bench.device=cuda``,
``+learner_bench.updates=50``, ``+learner_bench.critic_hidden=[1024,1024,1024]``, ...
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from learners.agent import Agent, AgentConfig
from learners.replay import MixedReplay, ReplayBuffer
from policies.critics import NaiveCriticList

DEFAULTS: dict[str, Any] = {
    "device": "auto",  # auto -> cuda when available, else cpu
    "batch_size": 256,
    "num_critics": 10,
    "critic_hidden": [256, 256],
    "actor_hidden": [256, 256],
    "algo": "td3",
    "updates": 30,  # timed updates per variant (after warm-up), capped by max_seconds
    "max_seconds": 20.0,  # per variant
    "image_size": 64,  # camera H = W for the two_cameras input
    "backbone": "small_conv",  # encoder for the two_cameras input
    "state_dim": 20,
    "threads": 0,  # torch CPU threads (0 = leave torch's default)
    "inputs": ["state", "two_cameras"],
}


def _spec(kind: str, o: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    spec = {"state": ((int(o["state_dim"]),), "float32")}
    if kind == "two_cameras":
        s = int(o["image_size"])
        spec.update({"front": ((s, s, 3), "uint8"), "wrist": ((s, s, 3), "uint8")})
    return spec


def _fill(spec: dict, n: int, seed: int) -> MixedReplay:
    rng = np.random.default_rng(seed)
    bufs = [ReplayBuffer(spec, n + 64, n_step=3, gamma=0.99, seed=seed + i) for i in range(2)]

    def obs() -> dict[str, np.ndarray]:
        return {k: (rng.integers(0, 256, s, dtype=np.uint8) if dt == "uint8" else rng.normal(size=s).astype(np.float32))
                for k, (s, dt) in spec.items()}

    for buf in bufs:
        o = obs()
        for t in range(n):
            o2 = obs()
            buf.add({"obs": o, "next_obs": o2, "action": rng.uniform(-1, 1, 7).astype(np.float32),
                     "base_action": rng.uniform(-1, 1, 7).astype(np.float32), "reward": float(rng.random() < 0.1),
                     "terminated": False, "truncated": t % 100 == 99})
            o = o2 if t % 100 != 99 else obs()
    return MixedReplay(bufs[0], bufs[1], np.full(7, 0.1, np.float32))


def _make_naive(agent: Agent, o: dict[str, Any]) -> None:
    """Replace the batched ensemble by E separate critics in a Python loop (same sizes)."""
    cfg = agent.cfg
    agent.critic = NaiveCriticList(agent.encoder.out_dim, cfg.action_dim, cfg.num_critics,
                                   cfg.critic_hidden, cfg.layer_norm).to(agent.device)
    agent.critic_target = copy.deepcopy(agent.critic).requires_grad_(False)
    agent.critic_params = list(agent.critic.parameters()) + [p for p in agent.encoder.parameters() if p.requires_grad]
    agent.critic_optim = torch.optim.AdamW(agent.critic_params, lr=cfg.critic_lr)


def _time_updates(agent: Agent, replay: MixedReplay, o: dict[str, Any]) -> dict[str, float]:
    bs = int(o["batch_size"])
    for _ in range(3):  # warm-up (allocator, cuDNN autotune)
        agent.update(replay.sample(bs))
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    n = 0
    while n < int(o["updates"]) and time.perf_counter() - t0 < float(o["max_seconds"]):
        agent.update(replay.sample(bs))
        n += 1
    sync()
    dt = time.perf_counter() - t0
    return {"updates": n, "seconds": dt, "updates_per_s": n / dt, "ms_per_update": 1000 * dt / n}


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark; ``cfg`` is the bench config (``learner_bench`` overrides DEFAULTS)."""
    o = {**DEFAULTS, **dict(cfg.get("learner_bench") or {})}
    device = o["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if int(o["threads"]) > 0:
        torch.set_num_threads(int(o["threads"]))
    seed = int(cfg.get("seed", 0))
    result: dict[str, Any] = {
        "device": device, "device_name": torch.cuda.get_device_name(0) if device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(), "batch_size": int(o["batch_size"]),
        "num_critics": int(o["num_critics"]), "critic_hidden": list(o["critic_hidden"]), "algo": o["algo"],
    }
    for kind in o["inputs"]:
        spec = _spec(kind, o)
        acfg = AgentConfig(algo=o["algo"], num_critics=int(o["num_critics"]), critic_hidden=tuple(o["critic_hidden"]),
                           actor_hidden=tuple(o["actor_hidden"]), batch_size=int(o["batch_size"]),
                           critic_warmup_updates=0, actor_delay=2, device=device, seed=seed,
                           encoder={"backbone": o["backbone"], "latent_dim": 64, "channels": 32})
        replay = _fill(spec, 2000 if kind == "state" else 600, seed)
        batched = _time_updates(Agent(spec, acfg), replay, o)
        naive_agent = Agent(spec, acfg)
        _make_naive(naive_agent, o)
        naive = _time_updates(naive_agent, replay, o)
        result[kind] = {"batched": batched, "naive_loop": naive,
                        "speedup": batched["updates_per_s"] / naive["updates_per_s"]}
        print(f"[bench learner] {kind:12s} {device}: batched {batched['updates_per_s']:8.1f} upd/s "
              f"({batched['ms_per_update']:.1f} ms) | naive loop {naive['updates_per_s']:8.1f} upd/s "
              f"({naive['ms_per_update']:.1f} ms) | x{result[kind]['speedup']:.2f}", flush=True)
    return result
