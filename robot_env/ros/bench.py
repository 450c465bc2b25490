"""``hilr bench ros``: the env over ROS2 against ``hilr sim-robot``, versus the in-process sim.

For each control rate (default 10 and 20 Hz) with two 128x128 cameras it runs the same
realtime env loop (scripted pick_cube expert) twice, in the same run:

* ``ros``: ``robot=ros_sim camera=ros_sim`` against a ``hilr sim-robot`` subprocess
  (cameras published at the control rate);
* ``inprocess``: ``robot=sim camera=sim`` (MuJoCo stepped and rendered in this process).

and reports, in milliseconds:

* ``obs_age_p50/p99``: age of the oldest part of each observation (arm state or camera
  frame) when ``env.step`` returns, from its arrival on this PC (``time.monotonic()``);
  in process: from the physics step;
* ``state_age_p50/p99``: the same for the arm state alone;
* ``obs_age_e2e_p50/p99`` (ros only): the same from the *publisher's* header stamps (system
  clock, same host), so it includes DDS transit and rendering;
* ``jitter_p50/p99``: ``|period - 1/rate|`` between consecutive ``env.step`` returns;
* ``rtt_p50/p99`` (ros only): ROS2 round trip of a ``std_msgs/Header`` echoed by the node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "launch" / "config"


def _profile(group: str, name: str) -> dict:
    return yaml.safe_load((CONFIG / group / f"{name}.yaml").read_text())


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * 1e3
    return {"p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2)}


def _loop(env, rate: float, steps: int, seed: int, ros: bool) -> dict:
    """Run ``steps`` realtime env steps with the expert; collect ages and periods."""
    from robot_env.sim.experts import make_expert

    inner = env.unwrapped
    expert = make_expert(inner.task, noise=0.1, seed=seed)
    ages, state_ages, e2e, periods = [], [], [], []
    obs, info = env.reset(seed=seed)
    expert.reset()
    last = time.monotonic()
    for i in range(steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
        now, wall = time.monotonic(), time.time()
        periods.append(now - last)
        last = now
        stamps = [inner._last_state.stamp] + [cam.read().stamp for cam in inner.cameras.values()]
        ages.append(now - min(stamps))
        state_ages.append(now - stamps[0])
        if ros:
            heads = [inner.arm.pose_header_stamp] + [cam.read().device_stamp for cam in inner.cameras.values()]
            e2e.append(wall - min(heads))
        if terminated or truncated:
            obs, info = env.reset(seed=seed + i + 1)
            expert.reset()
            last = time.monotonic()
            periods.pop()  # the reset is not a control period
    jitter = [abs(p - 1.0 / rate) for p in periods[1:]]
    out = {"obs_age_ms": _pct(ages), "state_age_ms": _pct(state_ages), "jitter_ms": _pct(jitter), "steps": steps,
           "overruns": int(info["control_overruns"])}
    if ros:
        out["obs_age_e2e_ms"] = _pct(e2e)
    return out


def _round_trip(n: int = 200) -> dict[str, float]:
    """Median/p99 of a ping echoed by the sim node, seconds -> ms."""
    import threading

    from std_msgs.msg import Header

    from robot_env.ros import runtime

    node = runtime.create_node("bench_ping")
    got = threading.Event()
    pub = node.create_publisher(Header, "/sim_robot/ping", runtime.make_qos("reliable", 10))
    node.create_subscription(Header, "/sim_robot/pong", lambda m: got.set(), runtime.make_qos("reliable", 10))
    rtts = []
    try:
        deadline = time.monotonic() + 10
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(n + 10):
            got.clear()
            t0 = time.monotonic()
            pub.publish(Header(frame_id="ping"))
            if got.wait(1.0):
                rtts.append(time.monotonic() - t0)
            time.sleep(0.005)
    finally:
        runtime.destroy_node(node)
    if len(rtts) < n // 2:
        raise RuntimeError(f"only {len(rtts)} of {n + 10} pings answered")
    return _pct(rtts[10:])


def _ros_case(rate: float, steps: int, seed: int, run_dir: Path) -> dict:
    import robot_env

    cmd = [sys.executable, "-m", "learners.cli", "sim-robot", f"hydra.run.dir={run_dir}",
           f"node.camera_hz={rate}", f"node.seed={seed}"]
    log = open(run_dir.with_suffix(".log"), "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT, cwd=CONFIG.parents[1])
    try:
        # staleness limits loose enough not to abort on a starved box: ages are measured, not enforced
        cameras = {n: {**c, "max_age_s": 1.0} for n, c in _profile("camera", "ros_sim").items()}
        env = robot_env.make_env({"robot": _profile("robot", "ros_sim"), "camera": cameras,
                                  "task": {"name": "pick_cube", "control_hz": rate},
                                  "control": {"mode": "realtime", "max_state_age_s": 0.5, "max_frame_age_s": 1.0}})
        try:
            result = _loop(env, rate, steps, seed, ros=True)
            result["rtt_ms"] = _round_trip()
        finally:
            env.close()
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    return result


def _inprocess_case(rate: float, steps: int, seed: int) -> dict:
    import robot_env

    env = robot_env.make_env({"robot": {"type": "mujoco"}, "camera": _profile("camera", "sim"),
                              "task": {"name": "pick_cube", "control_hz": rate},
                              # in process nothing can go stale; render time still shows in obs age
                              "control": {"mode": "realtime", "max_state_age_s": None,
                                          "max_frame_age_s": None}})
    try:
        return _loop(env, rate, steps, seed, ros=False)
    finally:
        env.close()


def run(cfg: dict) -> dict:
    """Benchmark entry point for ``hilr bench ros``.

    Args:
        cfg: the bench config; optional ``ros: {rates: [10, 20], seconds: 10}`` overrides.

    Returns:
        ``{"<rate>hz": {"ros": {...}, "inprocess": {...}}, ...}`` (milliseconds), plus the setup.
    """
    from tqdm import tqdm

    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    opts = dict(cfg.get("ros") or {})
    rates = [float(r) for r in opts.get("rates", [10, 20])]
    seconds = float(opts.get("seconds", 10))
    seed = int(cfg.get("seed", 0))
    out: dict = {"benchmark": "ros", "cameras": "front+wrist 128x128", "task": "pick_cube",
                 "seconds_per_case": seconds, "cpu_count": os.cpu_count(),
                 "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        cases = [(rate, kind) for rate in rates for kind in ("ros", "inprocess")]
        for rate, kind in tqdm(cases, desc="bench ros", unit="case"):
            steps = int(seconds * rate)
            if kind == "ros":
                res = _ros_case(rate, steps, seed, Path(tmp) / f"sim_robot_{int(rate)}")
            else:
                res = _inprocess_case(rate, steps, seed)
            out.setdefault(f"{rate:g}hz", {})[kind] = res
    out["load_avg_1min_end"] = round(os.getloadavg()[0], 2)  # other work on the box skews every number
    return out
