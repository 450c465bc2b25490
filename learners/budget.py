"""Say early when a job will take hours on this machine, and what to change.

A user who starts image BC on a laptop CPU should learn in the first seconds that it needs
six hours, not find out after one. :class:`BudgetWatch` times the first steps of a loop and
logs one warning with the estimate and the overrides that shorten it.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``3725`` -> ``'1 h 2 min'``; ``95`` -> ``'2 min'``."""
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{max(minutes, 1)} min"


class BudgetWatch:
    """Estimate a loop's wall time after ``probe_steps`` steps and warn once if it is long.

    Args:
        job: the job's name in the warning (``train-bc``).
        total_steps: steps the loop will run.
        hint: what to change to make it shorter (overrides, a GPU).
        warn_after_s: warn when the estimated total exceeds this, seconds.
        probe_steps: steps timed before estimating.
    """

    def __init__(self, job: str, total_steps: int, hint: str, warn_after_s: float = 1800.0,
                 probe_steps: int = 20) -> None:
        self.job, self.total, self.hint = job, int(total_steps), hint
        self.warn_after_s, self.probe_steps = float(warn_after_s), int(probe_steps)
        self.t0 = time.monotonic()
        self.estimate_s: float | None = None

    def step(self, step: int) -> bool:
        """Call after each step (1-based); True when it just warned."""
        if step != self.probe_steps or self.total <= self.probe_steps:
            return False
        rate = step / max(time.monotonic() - self.t0, 1e-9)
        self.estimate_s = self.total / rate
        if self.estimate_s <= self.warn_after_s:
            return False
        log.warning("%s: about %s for %d steps at %.1f steps/s on this machine; %s", self.job,
                    format_duration(self.estimate_s), self.total, rate, self.hint)
        return True
