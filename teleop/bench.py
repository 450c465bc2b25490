"""Teleop measurements: input latency and the simulated operator's demos by skill level.

``python -m teleop.bench [--episodes N] [--skills 0.2,0.5,0.8,1.0]`` prints one JSON object:

* ``hid_latency_ms``: HID report handed to the (replayed) device -> visible in
  ``SpaceMouse.read()`` through pyspacemouse's parser and the reader thread (median, p95);
* ``ros_latency_ms``: ``geometry_msgs/Twist`` published -> visible in ``Ros2Twist.read()``
  over DDS on loopback (median, p95);
* ``skills``: per skill level, success rate of always-in-control simulated-operator demos
  on sim pick_cube, mean episode length and recording throughput (steps/s, two 128 px
  cameras, free-running physics, episodes written to a temp dataset).
"""

from __future__ import annotations

import argparse
import json
import struct
import tempfile
import time
from typing import Any

import numpy as np


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {"median": round(float(np.median(arr)), 3), "p95": round(float(np.percentile(arr, 95)), 3),
            "n": len(samples)}


def hid_latency(n: int = 200) -> dict[str, float]:
    """Report pushed -> state visible, through pyspacemouse, seconds -> ms."""
    from teleop.spacemouse import SpaceMouse, SpaceMouseConfig

    sm = SpaceMouse(SpaceMouseConfig(model="SpaceMouseWireless", source={"type": "replay"},
                                     max_motion_age_s=None))
    rng = np.random.default_rng(0)
    out = []
    with sm:
        for i in range(n):
            value = 100 + (i % 200)
            time.sleep(rng.uniform(0, 2.0 / sm.cfg.poll_hz))  # reports arrive at any poll phase
            t0 = time.monotonic()
            sm.hid_device.push(b"\x01" + struct.pack("<6h", value, 0, 0, 0, 0, 0))
            want = sm.reports_received + 1
            while sm.reports_received < want:
                time.sleep(0.0002)
            out.append(time.monotonic() - t0)
    return _percentiles(out)


def ros_latency(n: int = 100) -> dict[str, float]:
    """Twist published -> visible in ``Ros2Twist.read()``, over loopback DDS."""
    import rclpy
    from geometry_msgs.msg import Twist

    from teleop.ros_input import Ros2Twist, Ros2TwistConfig

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node("bench_spacenav", context=ctx, start_parameter_services=False)
    pub = node.create_publisher(Twist, "/spacenav/twist", 10)
    teleop = Ros2Twist(Ros2TwistConfig(joy_topic=""))
    out = []
    try:
        with teleop:
            deadline = time.monotonic() + 10
            while teleop.messages_received == 0 and time.monotonic() < deadline:
                pub.publish(Twist())
                time.sleep(0.05)
            for i in range(n):
                msg = Twist()
                msg.linear.x = 0.2 + 0.7 * (i % 2)
                want = teleop.messages_received + 1
                t0 = time.monotonic()
                pub.publish(msg)
                while teleop.messages_received < want and time.monotonic() - t0 < 1.0:
                    time.sleep(0.0002)
                out.append(time.monotonic() - t0)
                time.sleep(0.005)
    finally:
        node.destroy_node()
        ctx.shutdown()
    return _percentiles(out)


class NoisyExpertPolicy:
    """A stand-in for a flawed learned policy: the expert plus noise and, in half of the
    episodes, a constant horizontal bias of ``bias`` in a random direction (a systematic
    error that closed-loop correction alone does not remove)."""

    def __init__(self, task_cfg: Any, noise: float, bias: float, seed: int) -> None:
        from robot_env.sim.experts import make_expert

        self.expert = make_expert(task_cfg, noise=0.0, seed=seed)
        self.rng = np.random.default_rng(seed + 1)
        self.noise, self.bias = noise, bias
        self.offset = np.zeros(3)
        self.info: dict = {}

    def reset(self) -> None:
        """New episode: new bias direction (on in half of the episodes)."""
        self.expert.reset()
        angle = self.rng.uniform(0, 2 * np.pi)
        on = self.rng.random() < 0.5
        self.offset = on * self.bias * np.array([np.cos(angle), np.sin(angle), 0.0])

    def act(self, obs: dict) -> np.ndarray:
        """Expert action + noise + this episode's bias, clipped to [-1, 1]."""
        a = self.expert.act(obs, self.info)
        a[:3] += self.rng.normal(0, self.noise, 3) + self.offset
        return np.clip(a, -1, 1).astype(np.float32)


def skill_sweep(skills: list[float], episodes: int, seed: int = 0) -> dict[str, Any]:
    """Demo success rate and recording throughput of the simulated operator per skill level,
    and success/intervention rates when it supervises a noisy, biased policy."""
    from robot_env import make_env
    from robot_env.dataset import EpisodeWriter
    from teleop.base import make_teleoperator
    from teleop.intervention import InterventionWrapper
    from teleop.recorder import record_episodes

    env_cfg = {"control": {"mode": "free_running"}, "task": {"name": "pick_cube"},
               "camera": {"front": {"type": "mujoco", "camera": "front"},
                          "wrist": {"type": "mujoco", "camera": "wrist"}}}
    results = {}
    for skill in skills:
        op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "skill": skill,
                                "seed": seed, "always_active": True})
        op.connect()
        env = InterventionWrapper(make_env(env_cfg), op, always_active=True, clock="steps")
        with tempfile.TemporaryDirectory() as root:
            writer = EpisodeWriter(root, fps=10, task="pick_cube",
                                   observation_space=env.observation_space,
                                   action_space=env.action_space)
            t0 = time.monotonic()
            stats = record_episodes(env, writer, episodes, progress=False, seed=seed)
            wall = time.monotonic() - t0
        env.close()
        results[str(skill)] = {
            "demo_success_rate": stats.successes / max(stats.attempts, 1),
            "demo_mean_steps": stats.steps / max(stats.attempts, 1),
            "record_steps_per_s": round(stats.steps / wall, 1),
            "episodes": stats.attempts,
        }
        results[str(skill)].update(supervise(skill, episodes, seed))
    results["unsupervised_policy_success_rate"] = supervise(None, episodes, seed)["supervised_success_rate"]
    return results


def supervise(skill: float | None, episodes: int, seed: int) -> dict[str, float]:
    """The simulated operator (or nobody, ``skill=None``) supervising ``NoisyExpertPolicy``."""
    from robot_env import make_env
    from teleop.base import make_teleoperator
    from teleop.intervention import InterventionWrapper

    env = make_env({"control": {"mode": "free_running"}, "task": {"name": "pick_cube"}})
    policy = NoisyExpertPolicy(env.unwrapped.task, noise=0.3, bias=0.9, seed=seed)
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "seed": seed,
                            "skill": 1.0 if skill is None else skill})
    op.connect()
    wrapped = InterventionWrapper(env, op, sticky_s=0.0, clock="steps")
    successes, rates = 0, []
    for ep in range(episodes):
        obs, info = (wrapped.env if skill is None else wrapped).reset(seed=seed + ep)
        policy.reset()
        done = False
        while not done:
            policy.info = info
            if skill is None:
                obs, _, term, trunc, info = wrapped.env.step(policy.act(obs))
            else:
                obs, _, term, trunc, info = wrapped.step(policy.act(obs))
            done = term or trunc
        successes += int(info.get("success", False))
        rates.append(info.get("intervention_rate", 0.0))
    env.close()
    return {"supervised_success_rate": successes / episodes,
            "supervised_intervention_rate": round(float(np.mean(rates)), 3)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the measurements and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=20, help="demos per skill level")
    parser.add_argument("--skills", default="0.2,0.5,0.8,1.0", help="comma-separated skill levels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first reset and the operator")
    args = parser.parse_args(argv)
    result = {"hid_latency_ms": hid_latency(), "ros_latency_ms": ros_latency(),
              "skills": skill_sweep([float(s) for s in args.skills.split(",")], args.episodes, args.seed)}
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
