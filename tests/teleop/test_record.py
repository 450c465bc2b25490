"""Recording in sim with the simulated operator: bit-exact episodes, crash safety, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robot_env import make_env
from robot_env.dataset import EpisodeWriter, list_episodes, list_frames, load_episode, load_frames
from teleop.base import make_teleoperator
from teleop.intervention import InterventionWrapper
from teleop.keyboard import KeyboardControl
from teleop.recorder import record_episodes

REPO = Path(__file__).resolve().parents[2]
ENV_CFG = {"control": {"mode": "free_running"},
           "task": {"name": "pick_cube", "image_size": [48, 48], "episode_steps": 40},
           "camera": {"front": {"type": "mujoco", "camera": "front"}}}


class Tap(gym.Wrapper):
    """Keeps a copy of everything the env returned and every action it executed."""

    def __init__(self, env):
        super().__init__(env)
        self.episodes = []

    def reset(self, **kw):
        obs, info = self.env.reset(**kw)
        self.episodes.append({"obs": [obs], "action": [], "reward": []})
        return obs, info

    def step(self, action):
        out = self.env.step(action)
        ep = self.episodes[-1]
        ep["action"].append(np.array(action, np.float32))
        ep["obs"].append(out[0])
        ep["reward"].append(out[1])
        return out


def test_sim_operator_records_episodes_that_load_back_bit_exactly(tmp_path):
    tap = Tap(make_env(ENV_CFG))
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "skill": 0.9, "seed": 1})
    op.connect()
    env = InterventionWrapper(tap, op, always_active=True, clock="steps")
    writer = EpisodeWriter(tmp_path, fps=10, task="pick_cube", observation_space=env.observation_space,
                           action_space=env.action_space)
    stats = record_episodes(env, writer, 3, progress=False, seed=0)
    assert stats.kept == 3 and len(list_episodes(tmp_path)) == 3
    assert stats.successes >= 2, stats  # a skilled simulated operator mostly succeeds
    for path, ep in zip(list_episodes(tmp_path), tap.episodes):
        data = load_episode(path)
        np.testing.assert_array_equal(data["obs/front"], np.stack([o["front"] for o in ep["obs"]]))
        np.testing.assert_array_equal(data["obs/state"], np.stack([o["state"] for o in ep["obs"]]))
        np.testing.assert_array_equal(data["action"], np.stack(ep["action"]))
        np.testing.assert_array_equal(data["reward"], np.asarray(ep["reward"], np.float32))
        assert data["intervened"].all() and data["obs/front"].dtype == np.uint8
        np.testing.assert_array_equal(data["teleop_action"], data["action"])
        assert data["episode_success"] == data["success"].any()
    frames = load_frames(tmp_path)
    assert frames["label"].any() and (~frames["label"]).any()


def test_keyboard_labels_and_reset_in_the_loop(tmp_path):
    env = make_env(ENV_CFG)
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "skill": 0.5})
    op.connect()
    env = InterventionWrapper(env, op, always_active=True, clock="steps")
    kb = KeyboardControl()
    writer = EpisodeWriter(tmp_path, fps=10, task="pick_cube", observation_space=env.observation_space,
                           action_space=env.action_space, keep_only_successful=True)
    script = iter(["r", "f", "s", "q"])  # discard, label failure (dropped), success, quit

    def press(info, steps=[0]):
        steps[0] += 1
        if steps[0] % 3 == 0:
            kb.feed_char(next(script, "q"))
    stats = record_episodes(env, writer, 5, keyboard=kb, progress=False, seed=0, on_step=press)
    assert stats.discarded == 1 and stats.attempts == 3 and stats.quit
    assert stats.kept == 1 and stats.successes == 1
    ep = load_episode(list_episodes(tmp_path)[0])
    assert len(ep["action"]) == 3 and ep["episode_success"] and ep["success"][-1]
    assert len(list_frames(tmp_path)) == 3  # the failed and quit attempts still give frames


def hilr(*args, **kw):
    env = dict(os.environ, HILR_RUNS_DIR=str(kw.pop("runs")))
    return [sys.executable, "-m", "learners.cli", "record", *args], env


COMMON = ["control.mode=free_running", "sticky_clock=steps", "task.image_size=[48,48]",
          "task.episode_steps=40", "progress=false", "console.mode=off", "keyboard.terminal=false",
          "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def test_hilr_record_cli_sigkill_loses_nothing_and_resumes(tmp_path):
    data = tmp_path / "demos"
    cmd, env = hilr(f"dataset={data}", "episodes=50", "keep_only_successful=false", *COMMON,
                    runs=tmp_path / "runs")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list_episodes(data)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)  # well into the next episode
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    finished = list_episodes(data)
    assert len(finished) >= 2
    before = {p.name: load_episode(p) for p in finished}  # every finished episode is whole
    # resume into the same dataset: numbering continues, old episodes untouched
    cmd, env = hilr(f"dataset={data}", "episodes=1", "keep_only_successful=false", *COMMON,
                    runs=tmp_path / "runs")
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 1 and summary["episodes_in_dataset"] == len(finished) + 1
    after = list_episodes(data)
    assert [p.name for p in after[:-1]] == sorted(before)
    assert after[-1].name == f"episode_{len(finished):06d}.npz"
    for name, ep in before.items():
        again = load_episode(data / "episodes" / name)
        for key in ep:
            np.testing.assert_array_equal(again[key], ep[key])
    assert not list(data.rglob(".*.tmp"))


def test_hilr_record_help_lists_options():
    out = subprocess.run([sys.executable, "-m", "learners.cli", "record", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for key in ("keep_only_successful", "teleop:", "sim_operator", "console"):
        assert key in out.stdout


def test_hilr_record_with_replayed_spacemouse_config(tmp_path):
    """The spacemouse_replay hydra config end to end: hex file -> pyspacemouse -> dataset."""
    data = tmp_path / "sm"
    hexfile = REPO / "tests" / "teleop" / "data" / "wireless_push_right.hex"
    cmd, env = hilr(f"dataset={data}", "episodes=1", "keep_only_successful=false",
                    "teleop=spacemouse_replay", f"teleop.source.file={hexfile}",
                    "task.episode_steps=6", *[c for c in COMMON if "episode_steps" not in c],
                    runs=tmp_path / "runs")
    out = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    ep = load_episode(list_episodes(data)[0])
    assert len(ep["action"]) == 6 and ep["intervened"].all()
    np.testing.assert_allclose(ep["action"][-1, :6], [1, 0, 0, 0, 0, 0])  # full push right


def test_spacemouse_drives_the_sim_arm_step_by_step(tmp_path):
    """Reports pushed between steps: rest -> policy-free hold, push -> arm moves, click -> closes."""
    import struct

    from teleop.spacemouse import SpaceMouse, SpaceMouseConfig

    sm = SpaceMouse(SpaceMouseConfig(model="SpaceMouseWireless", poll_hz=500.0,
                                     max_motion_age_s=None,  # reports are pushed once, not repeated
                                     source={"type": "replay"}))
    sm.connect()
    env = InterventionWrapper(make_env(ENV_CFG), sm, sticky_s=0.0)
    writer = EpisodeWriter(tmp_path, fps=10, task="pick_cube", observation_space=env.observation_space,
                           action_space=env.action_space)
    script = {2: b"\x01" + struct.pack("<6h", 0, -350, 0, 0, 0, 0),  # push away from you
              5: bytes([3, 1, 0]), 6: bytes([3, 0, 0]),                # click left: close
              8: b"\x01" + struct.pack("<6h", 0, 0, 0, 0, 0, 0)}      # let go
    count = [0]

    def feed(info):
        count[0] += 1
        if count[0] in script:
            sm.hid_device.push(script[count[0]])
            while sm.hid_device.pending():
                time.sleep(0.002)
            time.sleep(0.01)
    try:
        record_episodes(env, writer, 1, progress=False, seed=0, max_attempts=1,
                        on_step=feed, policy=None)
    finally:
        sm.disconnect()
    ep = load_episode(list_episodes(tmp_path)[0])
    flags = ep["intervened"]
    assert not flags[:2].any() and flags[2:8].all() and not flags[9:].any(), flags
    np.testing.assert_allclose(ep["action"][2], [0, 1, 0, 0, 0, 0, -1])  # +y in hid_z_up = away
    np.testing.assert_allclose(ep["action"][6], [0, 1, 0, 0, 0, 0, 1])
    assert ep["action"][-1][6] == 1.0  # the hold policy keeps the operator's closed gripper
    assert ep["obs/state"][8, 1] > ep["obs/state"][2, 1] + 0.05  # the TCP moved along +y


def test_hilr_record_ctrl_c_keeps_finished_episodes(tmp_path):
    data = tmp_path / "demos"
    cmd, env = hilr(f"dataset={data}", "episodes=50", "keep_only_successful=false", *COMMON,
                    runs=tmp_path / "runs")
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 120
    while not list_episodes(data) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["interrupted"] and summary["kept"] == len(list_episodes(data)) >= 1, (summary, list_episodes(data))
    for path in list_episodes(data):
        load_episode(path)
    assert not list(data.rglob(".*.tmp"))


def test_pause_holds_the_loop_until_resumed(tmp_path):
    import threading

    env = make_env(ENV_CFG)
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube"})
    op.connect()
    env = InterventionWrapper(env, op, always_active=True, clock="steps")
    kb = KeyboardControl()
    writer = EpisodeWriter(tmp_path, fps=10, task="pick_cube", observation_space=env.observation_space,
                           action_space=env.action_space)
    steps, seen = [0], {}

    def on_step(info):
        steps[0] += 1
        if steps[0] == 2:
            kb.feed_char("p")

    def operator():
        deadline = time.monotonic() + 30
        while steps[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        seen["at_pause"] = steps[0]
        time.sleep(0.4)
        seen["after_wait"] = steps[0]
        kb.feed_char(" ")  # space also toggles pause
        time.sleep(0.2)
        kb.feed_char("s")
    t = threading.Thread(target=operator)
    t.start()
    stats = record_episodes(env, writer, 1, keyboard=kb, progress=False, seed=0, on_step=on_step)
    t.join()
    assert seen["at_pause"] == seen["after_wait"] == 2  # no step while paused
    assert stats.kept == 1 and stats.steps > 2


def test_success_hold_records_extra_positive_frames_and_f_drops_them(tmp_path):
    """After a success the operator holds the scene: those frames become classifier positives
    (their own frames file, no episode file); `f` during a hold drops it."""
    env = make_env(ENV_CFG)
    op = make_teleoperator({"type": "sim_operator", "task": "pick_cube", "skill": 1.0, "seed": 3})
    op.connect()
    env = InterventionWrapper(env, op, always_active=True, clock="steps")
    kb = KeyboardControl()
    writer = EpisodeWriter(tmp_path, fps=10, task="pick_cube", observation_space=env.observation_space,
                           action_space=env.action_space)
    stats = record_episodes(env, writer, 2, keyboard=kb, progress=False, seed=0, success_hold_steps=6)
    assert stats.kept == 2 and stats.successes >= 1, stats
    assert stats.held_success_frames == 6 * stats.successes
    frames = load_frames(tmp_path)
    # every successful attempt adds one frames file of 6 positives after its own
    assert len(list_frames(tmp_path)) == stats.attempts + stats.successes
    assert frames["label"].sum() >= 6 * stats.successes + stats.successes
    assert len(list_episodes(tmp_path)) == 2  # the episode files are unchanged by the holds

    # a failure key during the hold drops the held frames
    writer2 = EpisodeWriter(tmp_path / "b", fps=10, task="pick_cube", observation_space=env.observation_space,
                            action_space=env.action_space)
    before = len(list_frames(tmp_path / "b")) if (tmp_path / "b" / "frames").exists() else 0

    def press_f_after_success(info):
        if info.get("success"):
            kb.feed_char("f")
    stats2 = record_episodes(env, writer2, 1, keyboard=kb, progress=False, seed=10, success_hold_steps=6,
                             on_step=press_f_after_success)
    assert stats2.successes == 1 and stats2.held_success_frames == 0
    assert len(list_frames(tmp_path / "b")) - before == stats2.attempts
