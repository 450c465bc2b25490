"""Keyboard labels through a real pseudo-terminal (as over SSH) and cv2 key codes."""

from __future__ import annotations

import os
import termios
import time

import pytest

from teleop.keyboard import EpisodeEvent, KeyBindings, KeyboardControl, TerminalKeyboard


def wait_events(kb, n, timeout=2.0):
    out, deadline = [], time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += kb.poll()
        time.sleep(0.01)
    return out


def test_pty_keys_become_events_and_tty_is_restored():
    master, slave = os.openpty()
    try:
        before = termios.tcgetattr(slave)
        assert before[3] & termios.ICANON
        with TerminalKeyboard(fd=slave) as kb:
            assert not termios.tcgetattr(slave)[3] & termios.ICANON  # cbreak: no Enter needed
            os.write(master, b"s")
            assert wait_events(kb, 1) == [EpisodeEvent.SUCCESS]
            os.write(master, b"xF\x1b[Ar pq\x1b")  # junk, upper case, arrow key, space, Esc
            got = wait_events(kb, 6)
        assert got == [EpisodeEvent.FAILURE, EpisodeEvent.RESET, EpisodeEvent.PAUSE,
                       EpisodeEvent.PAUSE, EpisodeEvent.QUIT, EpisodeEvent.QUIT]
        assert termios.tcgetattr(slave) == before
    finally:
        os.close(master)
        os.close(slave)


def test_pipe_input_and_eof():
    r, w = os.pipe()
    kb = TerminalKeyboard(fd=r)
    kb.start()
    os.write(w, b"fq")
    os.close(w)
    assert wait_events(kb, 2) == [EpisodeEvent.FAILURE, EpisodeEvent.QUIT]
    kb.stop()
    os.close(r)


def test_cv_waitkey_codes_and_bindings():
    kb = KeyboardControl(KeyBindings(success="y", failure="n"))
    assert kb.feed_cv_key(-1) is None
    assert kb.feed_cv_key(ord("y") | 0x100000) == EpisodeEvent.SUCCESS  # modifier bits masked
    assert kb.feed_cv_key(27) == EpisodeEvent.QUIT
    assert kb.poll() == [EpisodeEvent.SUCCESS, EpisodeEvent.QUIT] and kb.poll() == []
    assert "y: success" in KeyBindings(success="y").help_lines()
    with pytest.raises(ValueError, match="bound to both"):
        KeyBindings(success="s", failure="s")
