"""BudgetWatch: one early warning when a loop will take long, with what to change."""

from __future__ import annotations

import logging
import time

from learners.budget import BudgetWatch, format_duration


def test_a_slow_loop_warns_once_with_the_estimate_and_the_hint(caplog):
    watch = BudgetWatch("train-bc", total_steps=100_000, hint="use a GPU", warn_after_s=60, probe_steps=5)
    with caplog.at_level(logging.WARNING):
        warned = []
        for step in range(1, 12):
            time.sleep(0.002)
            warned.append(watch.step(step))
    assert warned.count(True) == 1 and warned[4]
    assert "train-bc: about" in caplog.text and "use a GPU" in caplog.text and watch.estimate_s > 60


def test_a_short_loop_stays_quiet(caplog):
    watch = BudgetWatch("train-reward", total_steps=50, hint="-", warn_after_s=3600, probe_steps=5)
    with caplog.at_level(logging.WARNING):
        assert not any(watch.step(s) for s in range(1, 50))
    assert caplog.text == "" and format_duration(3725) == "1 h 2 min" and format_duration(95) == "2 min"
