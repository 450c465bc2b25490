"""``hilr bench memory``: replay bytes per transition and the learner's resident memory.

For each observation layout (``state``; ``two_cameras``: state + two uint8 cameras, 128×128
by default; ``features``: state + each camera's cached frozen-backbone feature map, float16
``(512, 4, 4)`` by default: what :class:`learners.feature_cache.FeatureCache` stores for a
ResNet-10 of width 64 on 128² images) it reports:

- ``bytes_per_slot``: what one slot of :class:`learners.replay.ReplayBuffer` holds (every
  frame array plus the per-step data), from the arrays' own ``nbytes``;
- ``bytes_per_transition``: per slot × (T + 1) / T: a segment of T steps uses T + 1 slots
  because ``next_obs`` is the next slot's frame (images stored once, never an
  ``obs``/``next_obs`` pair), T = ``episode_length``;
- ``frame_copies_per_transition``: frames written per transition, counted on the filled
  buffer (1 + 1/T when frames are stored once, 2 if obs and next_obs were both stored);
- ``rss``: resident memory of this process before and after filling a real buffer with
  ``fill`` transitions (all ``transitions`` for state; for cameras ``fill`` is smaller and
  the value at ``transitions`` is **extrapolated** linearly from the measured growth, and
  labelled so), refused above ``max_gib``;
- ``batch``: bytes of one sampled batch (uint8 images for obs and next_obs) and of a
  float32 copy of its images, which the encoder makes per update (``x.float() / 255``;
  transient, freed after the update).

Overrides (hydra, new keys need ``+``): ``+memory_bench.transitions=200000``,
``+memory_bench.image_fill=5000``, ``+memory_bench.image_size=128``, ...
"""

from __future__ import annotations

import gc
import resource
import sys
from pathlib import Path
from typing import Any

import numpy as np

from learners.replay import ReplayBuffer

DEFAULTS: dict[str, Any] = {
    "transitions": 200_000,  # the learner's default online buffer_capacity
    "image_fill": 5_000,  # transitions really stored for the camera layouts (then extrapolated)
    "image_size": 128,  # camera H = W
    "state_dim": 20,
    "feature_shape": [512, 4, 4],  # per camera, cached float16 backbone features (ResNet-10, width 64, 128 px)
    "episode_length": 100,  # steps per segment
    "batch_size": 256,
    "max_gib": 6.0,  # refuse a fill whose replay arrays would exceed this
    "layouts": ["state", "two_cameras", "features"],
}
ACTION_DIM = 7


def rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; elsewhere the peak from getrusage)."""
    statm = Path("/proc/self/statm")
    if statm.exists():
        import os

        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def layout_spec(layout: str, o: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Observation spec of a layout (``state`` | ``two_cameras`` | ``features``)."""
    spec = {"state": ((int(o["state_dim"]),), "float32")}
    if layout == "two_cameras":
        s = int(o["image_size"])
        spec.update({"front": ((s, s, 3), "uint8"), "wrist": ((s, s, 3), "uint8")})
    elif layout == "features":
        f = tuple(int(d) for d in o["feature_shape"])
        spec.update({"front": (f, "float16"), "wrist": (f, "float16")})
    elif layout != "state":
        raise ValueError(f"unknown layout {layout!r}: state | two_cameras | features")
    return spec


def slot_bytes(buf: ReplayBuffer) -> dict[str, int]:
    """Bytes per slot: ``frames`` (observation arrays), ``data`` (actions, reward, flags)."""
    frames = sum(a.nbytes for a in buf.frames.values()) // buf.capacity
    data = sum(a.nbytes for a in buf.data.values()) // buf.capacity
    return {"frames": int(frames), "data": int(data), "total": int(frames + data)}


def fill(buf: ReplayBuffer, n: int, episode_length: int, seed: int = 0) -> None:
    """Add ``n`` transitions in episodes of ``episode_length``, from a small pool of random frames
    (the pool keeps generation cheap; every slot is still written, so its pages are resident)."""
    rng = np.random.default_rng(seed)
    pool = [{k: (rng.integers(0, 256, s, dtype=np.uint8) if dt == "uint8" else rng.normal(size=s).astype(dt))
             for k, (s, dt) in buf.spec.items()} for _ in range(16)]
    action = np.zeros(ACTION_DIM, np.float32)
    for t in range(n):
        step = t % episode_length
        obs = dict(pool[t % 16])
        obs["state"] = np.full_like(obs["state"], float(t))  # distinct, so segments continue
        nxt = dict(pool[(t + 1) % 16])
        nxt["state"] = np.full_like(nxt["state"], float(t + 1))
        buf.add({"obs": obs, "next_obs": nxt, "action": action, "base_action": action, "reward": 0.0,
                 "terminated": False, "truncated": step == episode_length - 1}, new_segment=step == 0)


def measure_layout(layout: str, o: dict[str, Any]) -> dict[str, Any]:
    """Bytes per transition and RSS for one layout (see the module docstring)."""
    spec = layout_spec(layout, o)
    target = int(o["transitions"])
    n = target if layout == "state" else min(target, int(o["image_fill"]))
    T = int(o["episode_length"])
    slots = n + -(-n // T)  # T + 1 slots per segment of T steps
    probe = ReplayBuffer(spec, 2, ACTION_DIM)
    per_slot = slot_bytes(probe)
    if slots * per_slot["total"] > float(o["max_gib"]) * 2**30:
        raise ValueError(f"{layout}: {n} transitions need {slots * per_slot['total'] / 2**30:.1f} GiB of replay, "
                         f"over memory_bench.max_gib={o['max_gib']}: lower memory_bench.image_fill")
    gc.collect()
    rss0 = rss_bytes()
    buf = ReplayBuffer(spec, slots, ACTION_DIM, n_step=3, gamma=0.99)
    rss_empty = rss_bytes()
    fill(buf, n, T)
    rss1 = rss_bytes()
    frames_written = buf.size  # slots holding a frame
    batch = buf.sample(int(o["batch_size"]))
    image_keys = [k for k, (shape, dt) in spec.items() if len(shape) == 3 and dt == "uint8"]  # (H, W, 3) cameras
    images_uint8 = all(buf.frames[k].dtype == np.uint8 and batch["obs"][k].dtype == np.uint8 for k in image_keys)
    batch_bytes = sum(batch[p][k].nbytes for p in ("obs", "next_obs") for k in batch["obs"])
    float_copy = sum(batch[p][k].size * 4 for p in ("obs", "next_obs") for k in image_keys)
    grown = rss1 - rss0
    out: dict[str, Any] = {
        "spec": {k: [list(s), dt] for k, (s, dt) in spec.items()},
        "bytes_per_slot": per_slot,
        "bytes_per_transition": per_slot["total"] * (T + 1) / T,
        "frame_copies_per_transition": frames_written / n,
        "images_uint8": images_uint8 if image_keys else None,  # stored and sampled as uint8
        "filled_transitions": n,
        "rss": {"before_mib": rss0 / 2**20, "empty_buffer_mib": rss_empty / 2**20, "filled_mib": rss1 / 2**20,
                "growth_mib": grown / 2**20, "growth_bytes_per_transition": grown / n},
        "batch": {"batch_size": int(o["batch_size"]), "obs_and_next_obs_bytes": int(batch_bytes),
                  "encoder_float32_copy_bytes": int(float_copy)},
    }
    at_target = {"transitions": target, "replay_mib": per_slot["total"] * (target + -(-target // T)) / 2**20}
    if n == target:
        at_target.update(rss_mib=rss1 / 2**20, how="measured")
    else:
        at_target.update(rss_mib=(rss0 + grown * target / n) / 2**20,
                         how=f"extrapolated linearly from {n} transitions filled")
    out["at_target"] = at_target
    del buf, batch
    gc.collect()
    return out


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run the benchmark; ``cfg`` is the bench config (``memory_bench`` overrides DEFAULTS)."""
    o = {**DEFAULTS, **dict(cfg.get("memory_bench") or {})}
    result: dict[str, Any] = {"transitions": int(o["transitions"]), "episode_length": int(o["episode_length"]),
                              "image_size": int(o["image_size"])}
    for layout in o["layouts"]:
        r = measure_layout(layout, o)
        result[layout] = r
        t = r["at_target"]
        print(f"[bench memory] {layout:12s} {r['bytes_per_transition']:9.0f} B/transition "
              f"(frames {r['bytes_per_slot']['frames']} + data {r['bytes_per_slot']['data']} B/slot, "
              f"{r['frame_copies_per_transition']:.3f} frame copies/transition) | RSS at {t['transitions']} transitions "
              f"{t['rss_mib']:.0f} MiB ({t['how']})", flush=True)
    return result
