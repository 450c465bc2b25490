"""Sim-HIL with the real-robot reward path: the success the actor learns from comes only from the
image classifier, over ROS2, with the sim robot's own success hidden and only audited.

1. Frames recorded in process through ``EpisodeWriter`` (the recorder's writer): scripted-expert
   episodes (success frames at their ends, plus the held success state) and idle episodes.
2. The classifier trained on them (``learners.reward_training``).
3. ``hilr sim-robot`` in its own process, ``hilr learner`` in another and ``hilr actor
   robot=ros_sim camera=ros_sim reward=classifier`` in a third, the simulated operator driving:
   the actor's summary gives the classifier's precision and recall against the sim robot's task
   report; the learner's replay shows that the rewards it trained on are the classifier's.

The learning result of the same three processes at a real budget is ``hilr bench reward
reward_study.process_steps=...`` (README).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from learners.bench_reward_hil import checkpoints_by_env_steps, free_port
from tests.robot_env._sim_robot_proc import start_sim_robot, stop

pytestmark = [pytest.mark.ros, pytest.mark.slow, pytest.mark.timeout(900)]
SIZE = 64


def _record_frames(root):
    """Expert and idle pick_cube episodes with the front camera rendered at 128 and resized to 64,
    exactly as the ROS2 camera path does."""
    from robot_env import make_env
    from robot_env.dataset import EpisodeWriter
    from robot_env.sim.experts import make_expert

    env = make_env({"task": {"name": "pick_cube", "image_size": [SIZE, SIZE]},
                    "camera": {"front": {"type": "mujoco", "height": 128, "width": 128}}})
    try:
        writer = EpisodeWriter(root, fps=10, task="pick_cube", observation_space=env.observation_space,
                               action_space=env.action_space)
        expert = make_expert("pick_cube", noise=0.1, seed=0)
        idle = np.zeros(7, np.float32)
        for i in range(10):
            use_expert = i < 7
            obs, info = env.reset(seed=500 + i)
            expert.reset()
            writer.begin(obs)
            done, steps = False, 0
            while not done and steps < 40:
                action = expert.act(obs, info) if use_expert else idle
                obs, reward, terminated, truncated, info = env.step(action)
                writer.add(action, obs, reward, terminated, truncated, info)
                done, steps = terminated or truncated, steps + 1
            writer.end(bool(info["success"]))
            if info["success"]:
                held, labels = [], []
                for _ in range(8):
                    obs, _, _, _, info = env.step(expert.act(obs, info))
                    held.append(obs)
                    labels.append(bool(info["success"]))
                writer.add_frames(held, labels)
    finally:
        env.close()


def test_actor_rewards_come_only_from_the_classifier_over_ros2(tmp_path):
    from learners.reward_training import RewardTrainConfig, train_reward_classifier
    from policies.reward import RewardClassifierConfig
    from robot_env.dataset import load_frames

    _record_frames(tmp_path / "demos")
    frames = load_frames(tmp_path / "demos")
    assert frames["label"].sum() >= 20
    model_cfg = RewardClassifierConfig(threshold=0.7, hidden=(64,),
                                       encoder={"channels": 8, "latent_dim": 32, "image_size": SIZE})
    _, metrics = train_reward_classifier(frames, model_cfg, RewardTrainConfig(steps=300, batch_size=48, val_fraction=0.0),
                                         tmp_path / "clf", progress=False)
    print("\nclassifier train metrics:", metrics["train"])
    ckpt = tmp_path / "clf" / "reward_classifier.safetensors"

    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    ports = [f"transport.transitions_port={free_port()}", f"transport.weights_port={free_port()}"]
    node = start_sim_robot(tmp_path / "sim", "task=pick_cube", "node.command_timeout_s=0.5")
    learner_log = open(tmp_path / "learner.log", "w")  # noqa: SIM115
    # the learner's obs layout is the recorded dataset's (front camera + proprio), as the actor's
    learner = subprocess.Popen(
        [sys.executable, "-m", "learners.cli", "learner", f"hydra.run.dir={tmp_path / 'learner'}",
         f"demos={tmp_path / 'demos'}", "learner.batch_size=16", "loop.learning_starts=40", "loop.publish_every=2",
         "loop.checkpoint_every_s=2", "loop.idle_exit_s=5", "torch_threads=1", *ports],
        env=dict(os.environ), stdout=learner_log, stderr=subprocess.STDOUT, cwd=repo)
    try:
        cmd = [sys.executable, "-m", "learners.cli", "actor", f"hydra.run.dir={tmp_path / 'actor'}",
               "robot=ros_sim", "camera=ros_sim", "~camera.wrist", "task=pick_cube", f"task.image_size=[{SIZE},{SIZE}]",
               "reward=classifier", f"reward.checkpoint={ckpt}",
               # strict settings, as an operator would pick after reading the held-out precision:
               # a frame just below the sim's lift height is the classifier's typical false positive
               "reward.threshold=0.9", "reward.consecutive=3",
               "progress=false", "actor.total_steps=0", "actor.episodes=6", "flush_timeout_s=120", *ports,
               "camera.front.max_age_s=1.0", "++control.max_state_age_s=0.5", "++control.max_frame_age_s=1.0",
               "robot.max_state_age_s=0.5", "labels.keyboard=false"]
        proc = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=420, cwd=repo)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        summary = json.loads((tmp_path / "actor" / "actor_summary.json").read_text())
        learner.wait(timeout=120)  # idle exit after a final checkpoint, once the actor has gone quiet
    finally:
        stop(node)
        stop(learner)
        learner_log.close()
    assert learner.returncode == 0, (tmp_path / "learner.log").read_text()[-3000:]
    audit = summary["classifier_audit"]
    print("actor summary:", {k: summary[k] for k in ("episodes", "successes", "reward_sources")}, "audit:", audit)
    assert summary["episodes"] == 6
    # every reward came from the classifier (or nobody): the sim robot's own success was never used
    assert set(summary["reward_sources"]) <= {"classifier", "none"}
    assert audit["episodes"] == 6 and audit["steps"]["audit_tp"] + audit["steps"]["audit_tn"] > 0
    # the operator (scripted expert) lifts the cube in most episodes; the classifier must see it,
    # and must not call an episode a success that the sim says was not
    assert audit["episode_tp"] >= 4, audit
    assert audit["episode_fp"] <= 1, audit

    # the learner trained on exactly these transitions, and their rewards are the classifier's
    from learners.replay import ReplayBuffer

    env_steps, updates, folder = checkpoints_by_env_steps(tmp_path / "learner" / "checkpoints")[-1]
    online = ReplayBuffer.load(folder / "online.npz")
    valid = online.data["valid"][: online.size].astype(bool)  # (an episode's last slot holds only its final obs)
    assert env_steps == len(online) == summary["env_steps"], (env_steps, len(online), summary["env_steps"])
    assert updates > 0 and summary["weights"]["received"] > 0, (updates, summary["weights"])
    prob = online.data["success_probability"][: online.size][valid]
    reward = online.data["reward"][: online.size][valid]
    assert np.isfinite(prob).all(), "every transition carries the classifier's probability"
    assert reward.sum() == summary["successes"] == audit["episode_tp"] + audit["episode_fp"]
    # a reward of 1 only where the classifier's probability was above its threshold
    assert (prob[reward > 0] > 0.9).all(), prob[reward > 0]
