"""End to end: `hilr learner` and `hilr actor` as separate processes over real ZMQ on loopback.

Asserts that updates ran, weights changed and reached the actor, that transitions counted
equal on both ends, and that a SIGKILLed learner restarted from its checkpoint loses nothing
while the actor keeps running.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SMALL_AGENT = [
    "learner.num_critics=2", "learner.critic_hidden=[64,64]", "learner.actor_hidden=[64,64]",
    "learner.batch_size=64", "learner.utd=1", "learner.warmup_steps=50", "learner.critic_warmup_updates=20",
    "learner.actor_delay=1", "learner.actor_lr=1e-3", "learner.seed=0",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state_dim() -> int:
    from learners.sim_obs import PrivilegedState
    from robot_env import make_env

    env = PrivilegedState(make_env({"task": {"name": "reach"}}))
    try:
        return int(env.observation_space["state"].shape[0])
    finally:
        env.close()


def _hilr(verb: str, args: list[str], run_dir: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "learners.cli", verb, *args, f"hydra.run.dir={run_dir}"]
    return subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=dict(os.environ))


@pytest.fixture()
def setup(tmp_path):
    ports = [f"transport.transitions_port={_free_port()}", f"transport.weights_port={_free_port()}"]
    dim = _state_dim()
    spec = [f"++obs_spec.state.shape=[{dim}]", "++obs_spec.state.dtype=float32"]
    learner_args = [*spec, *ports, *SMALL_AGENT, "torch_threads=1", "tensorboard=true",
                    f"checkpoint_dir={tmp_path / 'ckpt'}", "loop.learning_starts=100", "loop.publish_every=10",
                    "loop.checkpoint_every_s=1.0", "loop.idle_exit_s=4.0", "loop.log_every_s=1.0"]
    actor_args = [*ports, *SMALL_AGENT, "camera=none", "task=reach", "privileged_state=true", "~teleop",
                  "progress=false", "actor.max_steps_per_s=150", "actor.log_every_episodes=0",
                  "flush_timeout_s=60"]
    return tmp_path, learner_args, actor_args


def _wait(proc: subprocess.Popen, timeout: float, log: Path) -> None:
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"process timed out; log:\n{log.read_text()[-3000:]}")
    assert rc == 0, log.read_text()[-3000:]


def _initial_actor_weights(state_dim: int) -> dict[str, np.ndarray]:
    from learners.agent import Agent
    from learners.builders import agent_config

    cfg = agent_config({"num_critics": 2, "critic_hidden": [64, 64], "actor_hidden": [64, 64], "seed": 0})
    return Agent({"state": ((state_dim,), "float32")}, cfg).trainable_state()


def test_actor_and_learner_processes_train_and_count_equal(setup):
    tmp, learner_args, actor_args = setup
    learner = _hilr("learner", learner_args, tmp / "learner", tmp / "learner.log")
    actor = _hilr("actor", [*actor_args, "actor.total_steps=600"], tmp / "actor", tmp / "actor.log")
    _wait(actor, 240, tmp / "actor.log")
    _wait(learner, 120, tmp / "learner.log")
    a = json.loads((tmp / "actor" / "actor_summary.json").read_text())
    lrn = json.loads((tmp / "learner" / "learner_summary.json").read_text())
    assert a["env_steps"] == 600 and a["flushed"]
    assert a["transport"]["sent"] == 600 and a["transport"]["pending"] == 0
    assert lrn["env_steps"] == 600, "transitions counted differ between actor and learner"
    assert lrn["receiver"]["per_actor"] == {"actor0": 600}
    assert lrn["updates"] > 300 and lrn["actor_updates"] > 0
    # the actor received and used newer weights than the first published version
    assert a["weight_updates"] >= 3 and a["policy_version"] > 1
    # the learned residual actor moved away from its initialisation
    from learners.agent import Agent
    from learners.apps.evaluate import resolve_agent_checkpoint

    trained = Agent.from_checkpoint(resolve_agent_checkpoint(tmp / "ckpt")).trainable_state()
    init = _initial_actor_weights(Agent.from_checkpoint(resolve_agent_checkpoint(tmp / "ckpt")).spec["state"][0][0])
    moved = max(float(np.abs(trained[k] - init[k]).max()) for k in init)
    assert moved > 1e-3
    assert list((tmp / "learner" / "tensorboard").glob("events.out.tfevents.*"))
    # the residual's diagnostics reach TensorBoard, and the actor process ran the critic gate
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set(EventAccumulator(str(tmp / "learner" / "tensorboard")).Reload().Tags()["scalars"])
    assert {"train/q_base", "train/q_pi", "train/q_std_pi", "train/residual_saturation", "train/critic_loss"} <= tags
    episodes = [json.loads(line) for line in (tmp / "actor" / "episodes.jsonl").read_text().splitlines()]
    assert all("gate_open_steps" in e for e in episodes) and "critic.net.0.weight" in trained


def test_learner_killed_and_resumed_loses_no_transition(setup):
    tmp, learner_args, actor_args = setup
    total = 900
    learner = _hilr("learner", learner_args, tmp / "learner1", tmp / "learner1.log")
    actor = _hilr("actor", [*actor_args, f"actor.total_steps={total}"], tmp / "actor", tmp / "actor.log")
    # let a checkpoint land, then kill the learner hard in the middle of the run
    deadline = time.monotonic() + 120
    while not (tmp / "ckpt" / "LATEST").exists():
        assert time.monotonic() < deadline, (tmp / "learner1.log").read_text()[-3000:]
        assert learner.poll() is None, (tmp / "learner1.log").read_text()[-3000:]
        time.sleep(0.2)
    time.sleep(1.5)
    learner.send_signal(signal.SIGKILL)
    learner.wait()
    time.sleep(2.0)  # the actor keeps running without a learner, buffering in its outbox
    assert actor.poll() is None, "the actor must keep running while the learner is down"
    learner2 = _hilr("learner", learner_args, tmp / "learner2", tmp / "learner2.log")
    _wait(actor, 300, tmp / "actor.log")
    _wait(learner2, 120, tmp / "learner2.log")
    a = json.loads((tmp / "actor" / "actor_summary.json").read_text())
    lrn = json.loads((tmp / "learner2" / "learner_summary.json").read_text())
    assert a["env_steps"] == total and a["flushed"]
    # exactly once: the resumed replay holds every transition, duplicates were dropped
    assert lrn["env_steps"] == total, (lrn, a["transport"])
    from learners.replay import ReplayBuffer

    latest = (tmp / "ckpt" / "LATEST").read_text().strip()
    online = ReplayBuffer.load(tmp / "ckpt" / latest / "online.npz")
    assert online.num_transitions == total
    assert "resumed from" in (tmp / "learner2.log").read_text()


def test_actor_with_its_default_learner_config_adopts_the_gpu_learners_sizes(setup):
    """`hilr learner learner=residual_td3` (1024-wide) against `hilr actor` with its default
    `residual_td3_cpu` (256-wide): the actor builds the learner's networks and uses its weights."""
    tmp, learner_args, actor_args = setup
    base = [a for a in learner_args if not a.startswith("learner.")]
    gpu_sized = ["learner=residual_td3", "learner.device=cpu", "learner.num_critics=2",  # critics shrunk: a CPU budget
                 "learner.critic_hidden=[128,128]", "learner.batch_size=64", "learner.utd=1"]
    actor_defaults = [a for a in actor_args if not a.startswith("learner.")]
    learner = _hilr("learner", [*base, *gpu_sized], tmp / "learner", tmp / "learner.log")
    actor = _hilr("actor", [*actor_defaults, "actor.total_steps=600"], tmp / "actor", tmp / "actor.log")
    _wait(actor, 240, tmp / "actor.log")
    _wait(learner, 120, tmp / "learner.log")
    a = json.loads((tmp / "actor" / "actor_summary.json").read_text())
    # every version after the first passes the socket's layout check of the adopted model
    assert a["weight_updates"] >= 2 and a["policy_version"] > 1, a
    assert a["adopted_model"]["actor_hidden"] == [1024, 1024], a["adopted_model"]
    assert a["adopted_model"]["num_critics"] == 2 and a["adopted_model"]["residual_scale"] == 0.1
    assert a["adopted_model"]["encoder.image_size"] == 84 and a["weights"]["rejected"] == {}, a
    line = [ln for ln in (tmp / "actor.log").read_text().splitlines() if "adopted the learner's model" in ln]
    assert len(line) == 1 and "actor_hidden [256, 256] -> [1024, 1024]" in line[0], line


def test_actor_in_another_mode_than_the_learner_says_so_in_one_line(setup):
    tmp, learner_args, actor_args = setup
    learner = _hilr("learner", [*learner_args, "learner.mode=rlpd"], tmp / "learner", tmp / "learner.log")
    cmd = [sys.executable, "-m", "learners.cli", "actor", *actor_args, "actor.total_steps=400",
           f"hydra.run.dir={tmp / 'actor'}"]
    actor = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    learner.kill()
    learner.wait(timeout=30)
    assert actor.returncode == 1, actor.stderr[-2000:]
    lines = [line for line in actor.stderr.strip().splitlines() if line.startswith("hilr actor:")]
    assert len(lines) == 1 and "mode='rlpd'" in lines[0] and "never fit" in lines[0], actor.stderr[-2000:]
