"""``hilr bench learner``: learner updates per second and GFLOP/s against a same-run sgemm.

For each input kind (``state``: proprio only; ``two_cameras``: proprio + two uint8 cameras)
it builds the real :class:`learners.agent.Agent` (TD3 residual update by default) with a
10-head critic ensemble, fills a real :class:`learners.replay.MixedReplay` with synthetic
transitions, and times full ``agent.update(replay.sample(256))`` calls (sampling,
host->device copy, augmentation, target, critic, actor, Polyak; metrics read once at the
end, ``metrics_every``). Then it swaps the batched ensemble for
:class:`policies.critics.NaiveCriticList` (E separate MLPs in a Python loop) and times the
same thing in the same run; with ``compile=true`` also the ``torch.compile``d agent.

FLOPs per update: the actor and critic MLPs counted from the layer sizes
(:func:`learners.flops.update_flops`) and, for cameras, the encoder's convolutions counted
by ``torch.utils.flop_counter`` on real updates. GFLOP/s = FLOPs per update x updates/s,
divided by a float32 sgemm of the update's widest layer (``B x h x h``) timed in the same
process at the same thread count (the best of rounds before and after) = ``ratio_to_matmul``;
``ratio_to_matmul_best_round`` compares like with like on a shared machine: the best round of
``ROUND`` updates against the best sgemm round.
``profile=true`` adds the top operators of ``torch.profiler`` over the timed state updates
and the share of time in matmuls: what limits the ratio.

Overrides (hydra, new keys need ``+``): ``+learner_bench.device=cuda``,
``+learner_bench.updates=50``, ``+learner_bench.critic_hidden=[1024,1024,1024]``, ...
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from learners.agent import Agent, AgentConfig
from learners.feature_cache import FeatureCache
from learners.flops import sgemm_rate, update_flops
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
    "threads": 0,  # torch CPU threads (0 = OMP_NUM_THREADS: under `hilr`, half the cores, at most 4)
    "inputs": ["state", "two_cameras"],
    "naive": True,  # also time the per-critic Python loop
    "compile": False,  # also time the torch.compile'd agent (learner.compile=true)
    "profile": False,  # torch.profiler over the timed state updates: top operators, matmul share
    "cached_features": True,  # cameras: also a frozen backbone with its features cached in replay
    "cached_encoder": {},  # encoder overrides of that variant, e.g. {backbone: resnet10, channels: 64}
}

ROUND = 10  # timed updates per round (even: critic-only and actor updates alternate)
MATMUL_OPS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm", "aten::convolution",
              "aten::mkldnn_convolution", "aten::convolution_backward")


def _spec(kind: str, o: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    spec = {"state": ((int(o["state_dim"]),), "float32")}
    if kind == "two_cameras":
        s = int(o["image_size"])
        spec.update({"front": ((s, s, 3), "uint8"), "wrist": ((s, s, 3), "uint8")})
    return spec


def _fill(spec: dict, n: int, seed: int, cache: FeatureCache | None = None) -> MixedReplay:
    """Online + demo buffers of ``n`` synthetic transitions each; with ``cache`` the cameras are
    stored as frozen-backbone features (the same frames, featurized once each)."""
    rng = np.random.default_rng(seed)
    buffer_spec, transform = (cache.replay_spec(), cache.frame) if cache is not None else (spec, None)
    bufs = [ReplayBuffer(buffer_spec, n + 64, n_step=3, gamma=0.99, seed=seed + i, frame_transform=transform)
            for i in range(2)]

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
    agent.critic_optim = torch.optim.AdamW(agent.critic_params, lr=cfg.critic_lr, weight_decay=cfg.weight_decay,
                                           foreach=True)


def _time_updates(agent: Agent, replay: MixedReplay, o: dict[str, Any], flops: dict[str, float] | None = None,
                  profile: bool = False) -> dict[str, Any]:
    """Time ``agent.update(replay.sample(B))``; an even count, so critic-only and actor updates
    alternate as in ``flops["per_update"]``; with ``flops``: achieved GFLOP/s; with ``profile``:
    a second, profiled pass of as many updates (after the timing: the profiler slows them)."""
    bs = int(o["batch_size"])
    for _ in range(4):  # warm-up (allocator, cuDNN autotune, compiled graphs)
        agent.update(replay.sample(bs))
    sync = torch.cuda.synchronize if agent.device.type == "cuda" else (lambda: None)
    sync()
    t0 = t_round = time.perf_counter()
    n, rounds = 0, []
    while n < int(o["updates"]) and (n % 2 or time.perf_counter() - t0 < float(o["max_seconds"])):
        agent.update(replay.sample(bs))
        n += 1
        if n % ROUND == 0:  # rounds of ROUND updates: the best one is the least disturbed by other jobs
            sync()
            now = time.perf_counter()
            rounds.append(ROUND / (now - t_round))
            t_round = now
    sync()
    dt = time.perf_counter() - t0
    out: dict[str, Any] = {"updates": n, "seconds": dt, "updates_per_s": n / dt, "ms_per_update": 1000 * dt / n,
                           "updates_per_s_best_round": max(rounds, default=n / dt)}
    if flops is not None:
        out["gflops"] = flops["per_update"] * n / dt / 1e9
        out["gflops_best_round"] = flops["per_update"] * out["updates_per_s_best_round"] / 1e9
    if profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(n):
                agent.update(replay.sample(bs))
            sync()
        out["profile"] = _profile_summary(prof, n)
    return out


def _profile_summary(prof: Any, n: int, top: int = 10) -> dict[str, Any]:
    """Self CPU time per operator (ms per update), the top ``top`` and the matmul share."""
    rows = [(e.key, e.self_cpu_time_total / 1000.0 / n) for e in prof.key_averages()]
    total = sum(ms for _, ms in rows) or 1.0
    matmul = sum(ms for k, ms in rows if k in MATMUL_OPS)
    rows.sort(key=lambda r: -r[1])
    return {"ms_per_update_self_cpu": total, "matmul_share": matmul / total,
            "top_ops_ms_per_update": {k: round(ms, 3) for k, ms in rows[:top]}}


def count_update_flops(agent: Agent, replay: MixedReplay, batch_size: int) -> float:
    """Matmul + convolution FLOPs of one update (mean of a critic-only and an actor update),
    counted by ``torch.utils.flop_counter`` on a deep copy of ``agent`` (left untouched)."""
    probe = copy.deepcopy(agent)
    probe.cfg = dataclasses.replace(agent.cfg, critic_warmup_updates=0, actor_delay=2, compile=False)
    probe.num_updates, probe.compiled = 0, False
    total = 0
    for _ in range(2):
        with FlopCounterMode(display=False) as counter:
            probe.update(replay.sample(batch_size))
        total += counter.get_total_flops()
    return total / 2.0


def _flops(agent: Agent, replay: MixedReplay, kind: str, o: dict[str, Any]) -> dict[str, Any]:
    """FLOPs per update: analytic MLP part; for cameras plus the encoder, counted."""
    mlp = update_flops(agent.cfg, agent.encoder.out_dim, encoder_trainable=kind != "state")
    out: dict[str, Any] = {"mlp_analytic": mlp, "per_update": mlp["per_update"], "source": "analytic"}
    if kind != "state":
        out["per_update"] = count_update_flops(agent, replay, int(o["batch_size"]))
        out["source"] = "torch.utils.flop_counter (encoder convolutions + MLPs)"
        out["encoder_share"] = 1.0 - mlp["per_update"] / out["per_update"]
    return out


def _agent_config(o: dict[str, Any], device: str, seed: int, compile_: bool = False,
                  freeze_backbone: bool = False, encoder: dict[str, Any] | None = None) -> AgentConfig:
    return AgentConfig(algo=o["algo"], num_critics=int(o["num_critics"]), critic_hidden=tuple(o["critic_hidden"]),
                       actor_hidden=tuple(o["actor_hidden"]), batch_size=int(o["batch_size"]),
                       critic_warmup_updates=0, actor_delay=2, device=device, seed=seed,
                       metrics_every=10**9, compile=compile_,  # metrics read once: no sync per update
                       cache_features=freeze_backbone,
                       encoder={"backbone": o["backbone"], "latent_dim": 64, "channels": 32,
                                "freeze_backbone": freeze_backbone, **(encoder or {})})


def _cached_features(spec: dict, o: dict[str, Any], device: str, seed: int,
                     trainable: dict[str, Any]) -> dict[str, Any]:
    """Frozen backbone, features cached in replay (:class:`learners.feature_cache.FeatureCache`):
    updates/s against the trainable encoder's, and the one-off backbone cost per stored frame."""
    agent = Agent(spec, _agent_config(o, device, seed, freeze_backbone=True, encoder=dict(o["cached_encoder"])))
    cache = FeatureCache(agent.encoder)
    t0 = time.perf_counter()
    replay = _fill(spec, 600, seed, cache)
    fill_s = time.perf_counter() - t0
    flops = {"per_update": count_update_flops(agent, replay, int(o["batch_size"]))}
    out = _time_updates(agent, replay, o, flops)
    out.update(flops_per_update=flops["per_update"], backbone_frames=cache.backbone_frames,
               encoder={"backbone": agent.cfg.encoder.backbone, "channels": agent.cfg.encoder.channels,
                        "feature_shape": list(agent.encoder.encoders[cache.keys[0]].feature_shape)},
               fill_ms_per_transition=1000 * fill_s / 1200,  # 2 buffers x 600, backbone included
               over_trainable=out["updates_per_s"] / trainable["updates_per_s"])
    return out


def _matmul(o: dict[str, Any], device: str) -> dict[str, Any]:
    widest = max([*o["critic_hidden"], *o["actor_hidden"]])
    return sgemm_rate(int(o["batch_size"]), int(widest), int(widest), device=device)


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
    matmul = [_matmul(o, device)]
    for kind in o["inputs"]:
        spec = _spec(kind, o)
        acfg = _agent_config(o, device, seed)
        replay = _fill(spec, 2000 if kind == "state" else 600, seed)
        agent = Agent(spec, acfg)
        flops = _flops(agent, replay, kind, o)
        batched = _time_updates(agent, replay, o, flops, profile=bool(o["profile"]) and kind == "state")
        entry: dict[str, Any] = {"flops_per_update": flops, "batched": batched}
        if o["naive"]:
            naive_agent = Agent(spec, acfg)
            _make_naive(naive_agent, o)
            entry["naive_loop"] = _time_updates(naive_agent, replay, o, flops)
            entry["speedup"] = batched["updates_per_s"] / entry["naive_loop"]["updates_per_s"]
        if o["compile"]:
            compiled = Agent(spec, _agent_config(o, device, seed, compile_=True))
            t0 = time.perf_counter()
            compiled.update(replay.sample(int(o["batch_size"])))  # compiles (or falls back, with a warning)
            first_update_s = time.perf_counter() - t0
            entry["compiled"] = {**_time_updates(compiled, replay, o, flops), "compiled": bool(compiled.compiled),
                                 "first_update_s": first_update_s}
        if o["cached_features"] and kind != "state":
            entry["cached_features"] = _cached_features(spec, o, device, seed, batched)
        result[kind] = entry
        print(f"[bench learner] {kind:12s} {device}: batched {batched['updates_per_s']:8.1f} upd/s "
              f"({batched['ms_per_update']:.1f} ms, {batched['gflops']:.1f} GFLOP/s)"
              + (f" | naive loop {entry['naive_loop']['updates_per_s']:8.1f} upd/s" if "naive_loop" in entry else "")
              + (f" | compiled {entry['compiled']['updates_per_s']:8.1f} upd/s" if "compiled" in entry else "")
              + (f" | cached features {entry['cached_features']['updates_per_s']:8.1f} upd/s"
                 if "cached_features" in entry else ""), flush=True)
    if "state" in result and any("cached_features" in result.get(k, {}) for k in o["inputs"]):
        for kind in o["inputs"]:
            if "cached_features" in result[kind]:  # the goal: within 3x of state updates/s
                c = result[kind]["cached_features"]
                c["state_over_cached"] = result["state"]["batched"]["updates_per_s"] / c["updates_per_s"]
    matmul.append(_matmul(o, device))
    best = max(m["gflops_best"] for m in matmul)
    result["matmul"] = {"shape": matmul[0]["shape"], "threads": matmul[0]["threads"], "gflops": best,
                        "gflops_rounds": [m["gflops_best"] for m in matmul],
                        "gflops_median": [m["gflops_median"] for m in matmul]}
    for kind in o["inputs"]:
        for variant in ("batched", "naive_loop", "compiled", "cached_features"):
            if variant in result[kind]:
                v = result[kind][variant]
                v["ratio_to_matmul"] = v["gflops"] / best  # mean rate of all timed updates
                v["ratio_to_matmul_best_round"] = v["gflops_best_round"] / best  # best against best
        b = result[kind]["batched"]
        print(f"[bench learner] {kind:12s} batched {b['gflops']:.1f} GFLOP/s = {b['ratio_to_matmul']:.2f} x sgemm "
              f"{matmul[0]['shape']} ({best:.1f} GFLOP/s, {matmul[0]['threads']} thread(s), same run); best round "
              f"{b['gflops_best_round']:.1f} GFLOP/s = {b['ratio_to_matmul_best_round']:.2f} x", flush=True)
    return result
