"""``hilr bench sim``: env steps per second on one core, state-only and with two cameras.

Pinned to one CPU (``os.sched_setaffinity``) with Mesa's llvmpipe rasterising in the
calling thread (``LP_NUM_THREADS=0``, unless already set), free-running mode, random
actions, the default ``robot=sim`` and ``task=pick_cube`` (``cfg["task"]`` picks another).

``*_steps_per_s`` divide by the process's CPU time (``time.process_time``): the rate one
dedicated core delivers, which other jobs on a shared box cannot distort;
``*_steps_per_wall_s`` divide by wall time and do drop under load (both are reported).
Targets: >= 200 state-only steps/s and >= 20 steps/s with two 128x128 cameras.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from typing import Any

import numpy as np


@contextlib.contextmanager
def _one_core():
    """Run the block on one CPU (the first one this process may use)."""
    try:
        before = os.sched_getaffinity(0)
    except AttributeError:  # not Linux
        yield None
        return
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def _steps_per_s(env_cfg: dict, steps: int, seed: int) -> tuple[float, float, float]:
    """(steps per CPU second, steps per wall second, sim seconds per CPU second)."""
    import robot_env

    env = robot_env.make_env(env_cfg)
    try:
        rng = np.random.default_rng(seed)
        env.reset(seed=seed)
        for _ in range(5):  # warm-up: GL context, renderer buffers, caches
            env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        done, t0, cpu0 = 0, time.perf_counter(), time.process_time()
        sim_t0 = env.unwrapped.world.time
        sim_time = 0.0
        while done < steps:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 7).astype(np.float32))
            done += 1
            if terminated or truncated:
                sim_time += env.unwrapped.world.time - sim_t0
                env.reset()
                sim_t0 = env.unwrapped.world.time
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        sim_time += env.unwrapped.world.time - sim_t0
        return steps / cpu, steps / elapsed, sim_time / cpu
    finally:
        env.close()


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Measure and print a table; return the numbers (the caller prints them as JSON).

    Args:
        cfg: the ``bench`` config; optional keys ``task`` (name, default pick_cube),
            ``state_steps`` (default 600), ``image_steps`` (default 150), ``seed``.
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("LP_NUM_THREADS", "0")
    task = str(cfg.get("task") or "pick_cube") if not isinstance(cfg.get("task"), dict) else cfg["task"]["name"]
    seed = int(cfg.get("seed") or 0)
    state_steps = int(cfg.get("state_steps") or 600)
    image_steps = int(cfg.get("image_steps") or 150)
    cams = {"front": {"type": "mujoco"}, "wrist": {"type": "mujoco"}}
    base = {"robot": {"type": "mujoco"}, "task": {"name": task, "image_size": [128, 128]},
            "control": {"mode": "free_running"}}
    with _one_core() as cpu:
        state_sps, state_wall, state_rtf = _steps_per_s({**base, "camera": {}}, state_steps, seed)
        image_sps, image_wall, image_rtf = _steps_per_s({**base, "camera": cams}, image_steps, seed)
    result = {
        "task": task,
        "control_hz": 10.0,
        "state_steps_per_s": round(state_sps, 1),
        "image_steps_per_s": round(image_sps, 1),
        "state_steps_per_wall_s": round(state_wall, 1),
        "image_steps_per_wall_s": round(image_wall, 1),
        "state_realtime_factor": round(state_rtf, 1),
        "image_realtime_factor": round(image_rtf, 1),
        "cameras": "front+wrist 128x128",
        "cpu": cpu,
        "lp_num_threads": os.environ.get("LP_NUM_THREADS"),
        "machine": platform.processor() or platform.machine(),
        "targets": {"state_steps_per_s": 200, "image_steps_per_s": 20},
    }
    rows = [("state only", state_steps, state_sps, state_wall, state_rtf, 200),
            ("2 cams 128x128", image_steps, image_sps, image_wall, image_rtf, 20)]
    print(f"hilr bench sim: task={task}, 10 Hz control, free-running, one core (cpu {cpu})")
    print(f"{'mode':<16}{'steps':>7}{'steps/cpu-s':>13}{'steps/wall-s':>14}{'x realtime':>12}{'target':>8}")
    for name, n, sps, wall, rtf, target in rows:
        verdict = "ok" if sps >= target else "LOW"
        print(f"{name:<16}{n:>7}{sps:>13.1f}{wall:>14.1f}{rtf:>12.1f}{target:>5} {verdict}")
    return result
