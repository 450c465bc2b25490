"""Learner checkpoints (issue 15, defects 6 and 7): a learner SIGKILLed while rewriting its
checkpoint always restarts; a corrupt newest checkpoint falls back to the previous one
with one clear line; stale temporary folders are removed at start."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from learners.learner_loop import LearnerLoop, LearnerLoopConfig
from learners.transport import TransitionReceiver
from tests.learners.transport_helpers import fast_cfg

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]


def make_loop(checkpoint_dir: Path) -> LearnerLoop:
    """A real learner loop (small agent, real buffers, an unstarted receiver)."""
    import torch

    from learners.agent import Agent
    from learners.builders import agent_config, build_replay

    torch.set_num_threads(1)
    spec = {"state": ((4,), "float32")}
    acfg = agent_config({"num_critics": 2, "critic_hidden": [16, 16], "actor_hidden": [16, 16], "seed": 0})
    return LearnerLoop(Agent(spec, acfg), build_replay(spec, acfg), TransitionReceiver(fast_cfg()), None,
                       LearnerLoopConfig(keep_checkpoints=2), checkpoint_dir)


def add_transitions(loop: LearnerLoop, n: int) -> None:
    """``n`` transitions straight into the replay buffer, counted like received ones."""
    rng = np.random.default_rng(loop.env_steps)
    for i in range(n):
        a = rng.uniform(-1, 1, 7).astype(np.float32)
        loop.replay.add({"obs": {"state": rng.standard_normal(4).astype(np.float32)},
                         "next_obs": {"state": rng.standard_normal(4).astype(np.float32)}, "action": a,
                         "base_action": a, "residual_action": np.zeros(7, np.float32), "reward": np.float32(i),
                         "terminated": np.bool_(i % 5 == 4), "truncated": np.bool_(False)})
        loop.env_steps += 1


def _flip(path: Path, at: float = 0.6) -> None:
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0x10
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CORRUPTIONS = {  # name -> (corrupt(newest folder), which checkpoint must load: "prev" or "newest")
    "agent bit flip in tensor data": (lambda d: _flip(d / "agent.safetensors"), "prev"),
    "agent truncated": (lambda d: _truncate(d / "agent.safetensors"), "prev"),
    "online buffer bit flip": (lambda d: _flip(d / "online.npz"), "prev"),
    "online buffer truncated": (lambda d: _truncate(d / "online.npz"), "prev"),
    "demo buffer deleted": (lambda d: (d / "demo.npz").unlink(), "prev"),
    "learner.json not UTF-8": (lambda d: (d / "learner.json").write_bytes(b"\xff\xfe\x00garbage"), "prev"),
    "learner.json not JSON": (lambda d: (d / "learner.json").write_text("{\"env_steps\": 1"), "prev"),
    "learner.json key removed": (lambda d: (d / "learner.json").write_text("{\"env_steps\": 20}"), "prev"),
    "manifest deleted": (lambda d: (d / "MANIFEST.json").unlink(), "prev"),
    "manifest garbage": (lambda d: (d / "MANIFEST.json").write_bytes(b"\x00" * 40), "prev"),
    "LATEST empty": (lambda d: (d.parent / "LATEST").write_text(""), "newest"),
    "LATEST names a missing folder": (lambda d: (d.parent / "LATEST").write_text("step_999"), "newest"),
    "newest folder deleted": (lambda d: shutil.rmtree(d), "prev"),
}


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    pristine = tmp_path / "pristine"
    loop = make_loop(pristine)
    add_transitions(loop, 10)
    loop.save_checkpoint()
    add_transitions(loop, 10)
    newest = loop.save_checkpoint()
    assert loop.env_steps == 20 and len(list(pristine.glob("step_*"))) == 2
    for i, (name, (corrupt, expect)) in enumerate(CORRUPTIONS.items()):
        work = tmp_path / f"case{i}"
        shutil.copytree(pristine, work)
        corrupt(work / newest.name)
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="learners.learner_loop"):
            fresh = make_loop(work)
            assert fresh.resume(), name
        assert fresh.env_steps == (10 if expect == "prev" else 20), name
        assert len(fresh.replay.online) == fresh.env_steps, name
        fallbacks = [r for r in caplog.records if "falling back" in r.getMessage()]
        assert len(fallbacks) == (1 if expect == "prev" and name != "newest folder deleted" else 0), \
            (name, caplog.text)


def test_data_parallel_followers_pick_the_checkpoint_rank_0_resumes_from(tmp_path):
    from learners.apps.learner import first_verified_checkpoint

    loop = make_loop(tmp_path)
    add_transitions(loop, 5)
    prev = loop.save_checkpoint()
    add_transitions(loop, 5)
    newest = loop.save_checkpoint()
    assert first_verified_checkpoint(tmp_path) == newest
    _flip(newest / "agent.safetensors")
    assert first_verified_checkpoint(tmp_path) == prev
    fresh = make_loop(tmp_path)
    assert fresh.resume() and fresh.env_steps == 5


def test_no_usable_checkpoint_is_one_clear_error(tmp_path):
    loop = make_loop(tmp_path)
    add_transitions(loop, 5)
    only = loop.save_checkpoint()
    _flip(only / "online.npz")
    with pytest.raises(RuntimeError, match="no usable checkpoint .*content hash"):
        make_loop(tmp_path).resume()


KILLER = r"""
import os, random, signal, sys, time
from pathlib import Path
from tests.learners.test_learner_checkpoint import add_transitions, make_loop
root, rounds = Path(sys.argv[1]), int(sys.argv[2])
loop = make_loop(root)
add_transitions(loop, 12)
loop.save_checkpoint()
random.seed(0)
ok = 0
for k in range(rounds):
    pid = os.fork()
    if pid == 0:  # an idle learner: the same counters, checkpoint after checkpoint
        while True:
            loop.save_checkpoint()
    time.sleep(random.uniform(0.005, 0.12))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    fresh = make_loop(root)
    assert fresh.resume(), k
    assert fresh.env_steps == 12 and len(fresh.replay.online) == 12, (k, fresh.env_steps)
    assert not list(root.glob(".tmp-*")), k
    ok += 1
print(f"resumed {ok}/{rounds}")
"""


def test_idle_learner_killed_while_rewriting_its_checkpoint_always_restarts(tmp_path):
    """Defect 6: SIGKILL a process that rewrites a same-counter checkpoint in a loop, 20
    times at random instants; every restart resumes with the 12 transitions."""
    out = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "ckpt"), "20"], cwd=REPO,
                         capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resumed 20/20" in out.stdout


def test_refused_messages_reach_the_learner_metrics(tmp_path):
    """Refusals by reason are logged to TensorBoard with the learner's other metrics."""
    loop = make_loop(tmp_path)
    loop.receiver.rejections.reject("spec_mismatch", "an actor with another observation config")
    loop.receiver.rejections.reject("spec_mismatch", "again")
    assert loop.log_metrics()["transport/rejected_spec_mismatch"] == 2.0


def test_an_idle_learner_says_so_once_a_minute_not_every_period(tmp_path, caplog, monkeypatch):
    import logging

    from learners import learner_loop

    loop = make_loop(tmp_path)
    clock = [1000.0]
    monkeypatch.setattr(learner_loop.time, "monotonic", lambda: clock[0])
    loop._t_log = clock[0]
    with caplog.at_level(logging.INFO, logger="learners.learner_loop"):
        for _ in range(13):  # 65 s of 5 s periods without a transition or an update
            clock[0] += 5.0
            loop.log_metrics()
        lines = [r.getMessage() for r in caplog.records if "| " in r.getMessage()]
        assert len(lines) == 2 and all("idle for" in line for line in lines), lines
        assert "idle for 5 s" in lines[0] and "idle for 65 s" in lines[1]
        loop.env_steps += 1  # a transition: the next period logs its metrics again
        clock[0] += 5.0
        loop.log_metrics()
    assert "idle for" not in caplog.records[-1].getMessage()
