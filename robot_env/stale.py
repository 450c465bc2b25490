"""What the env does when a sample is stale: hold the arm and wait, or raise.

One late ROS2 message (a ``joint_states`` 265 ms old on a loaded PC) should not end a
training session, and a target computed from old data must never reach the arm. With
``policy: hold`` (the default) a stale read makes the env hold the arm (``Arm.stop()``: a
zero twist, or the *fresh* current pose as target; nothing at all when the pose itself
is stale), warn (at most once per ``warn_every_s``) and re-read until the data is fresh
again. Only a loss longer than ``max_consecutive_s`` ends the episode
(:class:`DataLossError`). ``policy: raise`` keeps the strict behaviour: the first stale
read raises ``StaleDataError``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from robot_env.hardware import StaleDataError

log = logging.getLogger(__name__)
T = TypeVar("T")


class DataLossError(StaleDataError):
    """The data stayed stale longer than ``stale.max_consecutive_s``; the arm was held."""


@dataclasses.dataclass
class StaleConfig:
    """The env's stale-data policy (``control.stale``).

    Attributes:
        policy: ``hold`` (hold the arm, count, warn, wait for fresh data) or ``raise``
            (the first stale sample raises ``StaleDataError``).
        max_consecutive_s: under ``hold``, a loss lasting longer than this ends the
            episode (``truncated`` with ``info["stale_abort"]``; in ``reset()`` it
            raises ``DataLossError``), seconds.
        poll_s: how often a held env re-reads its devices, seconds.
        warn_every_s: at most one warning per this many seconds, seconds.
    """

    policy: str = "hold"
    max_consecutive_s: float = 2.0
    poll_s: float = 0.005
    warn_every_s: float = 5.0

    def __post_init__(self) -> None:
        if self.policy not in ("hold", "raise"):
            raise ValueError(f"control.stale.policy must be 'hold' or 'raise', got {self.policy!r}")
        if not self.max_consecutive_s > 0 or not self.poll_s > 0:
            raise ValueError("control.stale.max_consecutive_s and poll_s must be > 0")


class StaleGuard:
    """Re-reads devices under a :class:`StaleConfig`; holds the arm while their data is stale.

    Args:
        cfg: the policy.
        hold: makes the arm hold still (must never send a target computed from stale
            data; it may raise ``DeviceError`` when nothing safe can be sent).
        clock: seconds, monotonic.
    """

    def __init__(self, cfg: StaleConfig, hold: Callable[[], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg, self._hold, self._clock = cfg, hold, clock
        self._last_warning = -float("inf")
        self._suppressed = 0

    @property
    def strict(self) -> bool:
        """True under ``policy: raise``."""
        return self.cfg.policy == "raise"

    def hold(self, exc: StaleDataError) -> None:
        """Hold the arm after ``exc`` and warn (rate-limited); re-raise it under ``policy: raise``."""
        if self.strict:
            raise exc
        from robot_env.hardware import DeviceError

        try:
            self._hold()
        except DeviceError:  # the pose itself is stale: send nothing, the robot keeps its last target
            pass
        now = self._clock()
        if now - self._last_warning >= self.cfg.warn_every_s:
            more = f" ({self._suppressed} more since the last warning)" if self._suppressed else ""
            log.warning("stale data, holding the arm until fresh data arrives: %s%s", exc, more)
            self._last_warning, self._suppressed = now, 0
        else:
            self._suppressed += 1

    def wait_fresh(self, read: Callable[[], T], what: str) -> tuple[T, float]:
        """``read()`` until it stops raising ``StaleDataError``.

        Args:
            read: reads the devices (raises ``StaleDataError`` on stale data).
            what: what is being read, for the error message.

        Returns:
            ``(value, held_s)``: ``read()``'s value and how long the arm was held, seconds
            (0.0 when the first read was fresh).

        Raises:
            StaleDataError: the first stale read, under ``policy: raise``.
            DataLossError: still stale after ``max_consecutive_s``.
        """
        try:
            return read(), 0.0
        except StaleDataError as exc:
            self.hold(exc)
            last = exc
        start = self._clock()
        while True:
            time.sleep(self.cfg.poll_s)
            try:
                return read(), max(self._clock() - start, 1e-9)
            except StaleDataError as exc:
                last = exc
            held = self._clock() - start
            if held > self.cfg.max_consecutive_s:
                raise DataLossError(
                    f"no fresh data for {held:.1f} s while {what} (control.stale.max_consecutive_s="
                    f"{self.cfg.max_consecutive_s}): {last}; the arm was held") from last
