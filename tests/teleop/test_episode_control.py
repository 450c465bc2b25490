"""Operator labels, pause and reset confirmation in the actor, through the devices' own code paths:
a pseudo-terminal for the keyboard, HID reports through pyspacemouse's parser for the buttons."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from robot_env import make_env
from teleop.episode_control import EpisodeControl, build_episode_control
from teleop.keyboard import EpisodeEvent, KeyboardControl, TerminalKeyboard
from tests.teleop.test_spacemouse import buttons, make, wait_drained

ZERO = np.zeros(7, np.float32)


def reach_env(**extra):
    return make_env({"task": {"name": "reach"}, "camera": None, **extra})


def wait_for(kb_source, n=1, timeout=3.0):
    """Block until the terminal reader queued ``n`` events (without consuming them)."""
    deadline = time.monotonic() + timeout
    while kb_source._events.qsize() < n and time.monotonic() < deadline:
        time.sleep(0.01)


def test_pty_success_and_failure_keys_end_the_episode_with_the_right_reward():
    master, slave = os.openpty()
    env = reach_env()
    try:
        with TerminalKeyboard(fd=slave) as kb:
            wrapped = EpisodeControl(env, [kb])
            wrapped.reset(seed=0)
            _, reward, terminated, truncated, info = wrapped.step(ZERO)
            assert (reward, terminated, info["reward_source"]) == (0.0, False, "none")
            os.write(master, b"s")
            wait_for(kb)
            _, reward, terminated, truncated, info = wrapped.step(ZERO)
            assert (reward, terminated, truncated) == (1.0, True, False)
            assert info["success"] and info["reward_source"] == "operator" and info["label"] == "success"
            assert not info["disagreement"]  # no classifier to disagree with

            wrapped.reset(seed=1)
            os.write(master, b"f")
            wait_for(kb)
            _, reward, terminated, truncated, info = wrapped.step(ZERO)
            assert (reward, terminated, info["success"], info["failure"]) == (0.0, True, False, True)
            assert wrapped.stats["success_labels"] == 1 and wrapped.stats["failure_labels"] == 1

            wrapped.reset(seed=2)
            os.write(master, b"q")
            wait_for(kb)
            _, _, terminated, truncated, info = wrapped.step(ZERO)
            assert truncated and not terminated and wrapped.quit_requested
    finally:
        env.close()
        os.close(master)
        os.close(slave)


def test_pause_holds_the_arm_drops_the_action_and_counts_no_overrun():
    kb = KeyboardControl()
    env = reach_env(control={"mode": "realtime"})
    try:
        wrapped = EpisodeControl(env, [kb], poll_s=0.01)
        wrapped.reset(seed=0)
        arm = env.unwrapped.arm
        stops = []
        real_stop = arm.stop
        arm.stop = lambda: (stops.append(time.monotonic()), real_stop())[1]
        before = arm.read_state().ee_pos.copy()
        kb.feed_char("p")
        threading.Timer(0.4, kb.feed_char, args=("p",)).start()
        t0 = time.monotonic()
        obs, reward, terminated, truncated, info = wrapped.step(np.full(7, 1.0, np.float32))  # a big move, if sent
        assert time.monotonic() - t0 >= 0.35 and info["paused_s"] >= 0.35
        assert info["action_dropped"] and not terminated and not truncated and reward == 0.0
        assert len(stops) >= 5  # the arm was told to hold throughout
        assert np.linalg.norm(arm.read_state().ee_pos - before) < 1e-3  # nothing moved it
        _, _, _, _, info = wrapped.step(ZERO)
        assert info["control_overruns"] == 0  # the pause restarted the clock
        assert wrapped.stats["pauses"] == 1
    finally:
        env.close()


def test_reset_waits_for_the_operator_to_confirm_and_a_label_during_pause_applies():
    kb = KeyboardControl()
    env = reach_env(control={"mode": "realtime"})
    try:
        wrapped = EpisodeControl(env, [kb], confirm_reset=True, poll_s=0.01)
        fed = []
        threading.Timer(0.5, lambda: (fed.append(time.monotonic()), kb.feed_char("\n"))).start()
        _, info = wrapped.reset(seed=0)
        assert fed and time.monotonic() >= fed[0] and info["reset_wait_s"] > 0  # returned only after Enter
        _, _, _, _, info = wrapped.step(ZERO)
        assert info["control_overruns"] == 0  # the wait is not an overrun
        # success pressed while paused: the episode ends as a success on resume
        for ch in "ps":
            kb.feed_char(ch)
        threading.Timer(0.2, kb.feed_char, args=("p",)).start()
        _, reward, terminated, _, info = wrapped.step(ZERO)
        assert reward == 1.0 and terminated and info["action_dropped"] and info["reward_source"] == "operator"
    finally:
        env.close()


def test_operator_label_overrides_the_classifier_and_the_disagreement_is_counted(tmp_path):
    from tests.policies.test_reward_source import classifier_file

    env = make_env({"task": {"name": "reach", "image_size": [32, 32]}, "camera": {"front": {"type": "mujoco"}},
                    "reward": {"type": "classifier", "checkpoint": str(classifier_file(tmp_path, 6.0)),
                               "consecutive": 2}})
    kb = KeyboardControl()
    try:
        wrapped = EpisodeControl(env, [kb])
        wrapped.reset(seed=0)
        _, _, _, _, info = wrapped.step(ZERO)  # 1 positive frame (the reset frame never counts): not yet
        assert info["reward_source"] == "classifier" and not info["success"]
        kb.feed_char("f")
        _, reward, terminated, _, info = wrapped.step(ZERO)  # the classifier says success, the operator no
        assert info["classifier_success"] and reward == 0.0 and terminated
        assert info["reward_source"] == "operator" and info["disagreement"]
        assert wrapped.stats["disagreements"] == 1
    finally:
        env.close()


def test_spacemouse_label_buttons_and_chords_through_hid_reports():
    with make(reports=[], success_button="LEFT+RIGHT", failure_button="RIGHT") as sm:
        # bit 0 = LEFT, bit 1 = RIGHT: right, release, both (the chord swallows RIGHT), left only, both
        for mask in (0b10, 0, 0b11, 0b01, 0b11, 0):
            sm.hid_device.push(buttons(mask))
            wait_drained(sm)
        assert sm.poll() == [EpisodeEvent.FAILURE, EpisodeEvent.SUCCESS, EpisodeEvent.SUCCESS]
        assert sm.poll() == []
        env = reach_env()
        try:
            wrapped, keyboard = build_episode_control(env, {"labels": {"keyboard": False}}, teleop=sm)
            assert keyboard is None and wrapped.sources == [sm] and not wrapped.confirm_reset  # sim: no confirm
            wrapped.reset(seed=0)
            sm.hid_device.push(buttons(0b11))
            wait_drained(sm)
            _, reward, terminated, _, info = wrapped.step(ZERO)
            assert reward == 1.0 and terminated and info["label"] == "success"
        finally:
            env.close()


def test_unknown_label_button_is_refused():
    from robot_env.hardware import DeviceError

    with pytest.raises(DeviceError, match="'BTN_9' is not a button of"):
        make(reports=[], pause_button="BTN_9").connect()
