"""The operator's labels and episode control while the robot practises (``hilr actor``).

:class:`EpisodeControl` is the outermost env wrapper in the actor. It reads
:class:`~teleop.keyboard.EpisodeEvent` s from any number of sources with a ``poll()``
method: the terminal keyboard (works over SSH) and the SpaceMouse's label buttons.

* **success** / **failure**: end the running episode now, with reward 1 / 0 and
  ``terminated=True``. A label overrides the automatic success source (the reward
  classifier): when the two disagree on that step the disagreement is counted, and
  ``info["reward_source"]`` says who decided (``operator``, ``classifier``, ``sim``, ...).
* **pause**: the arm holds (its own ``stop()``), nothing is sent; a second press resumes.
  The action the policy chose before the pause is dropped (``info["action_dropped"]``:
  the actor does not stream it) and the observation is read afresh; the control clock
  restarts, so the pause counts as no overrun.
* **reset**: end the episode as truncated (no reward, not learned from as a failure).
* **quit**: end the episode as truncated and ask the actor to stop.
* **confirm**: with ``confirm_reset``, each ``reset()`` (the arm has driven to its reset
  pose through the normal command path) waits, arm holding, until the operator confirms
  that the scene is put back. The observation is then read afresh and the wait counts
  as no control overrun. In the in-process sim nobody needs to put anything back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym

from teleop.keyboard import EpisodeEvent

log = logging.getLogger(__name__)

LABELS = (EpisodeEvent.SUCCESS, EpisodeEvent.FAILURE, EpisodeEvent.RESET, EpisodeEvent.QUIT)


class EpisodeControl(gym.Wrapper):
    """Operator labels, pause and reset confirmation around the actor's env.

    Args:
        env: the (intervention-wrapped) env.
        sources: objects with ``poll() -> list[EpisodeEvent]`` (keyboard, SpaceMouse).
        confirm_reset: wait for a confirm event after every ``reset()``.
        poll_s: how often a pause or a reset wait polls the sources, seconds.
        sleep: injectable sleep (tests).
    """

    def __init__(self, env: gym.Env, sources: Sequence[Any], confirm_reset: bool = False,
                 poll_s: float = 0.05, sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(env)
        self.sources = list(sources)
        self.confirm_reset = confirm_reset
        self.poll_s, self._sleep = poll_s, sleep
        self.quit_requested = False
        self.stats = {"success_labels": 0, "failure_labels": 0, "reset_labels": 0, "disagreements": 0,
                      "pauses": 0, "paused_s": 0.0, "reset_wait_s": 0.0}
        self._pending: list[EpisodeEvent] = []

    # ------------------------------------------------------------------ events
    def _poll(self) -> list[EpisodeEvent]:
        events, self._pending = self._pending, []
        for source in self.sources:
            events.extend(source.poll())
        return events

    def _hold(self) -> None:
        arm = getattr(self.env.unwrapped, "arm", None)
        if arm is not None and getattr(arm, "is_connected", False):
            arm.stop()

    def _fresh(self) -> tuple[dict, dict] | None:
        observe = getattr(self.env.unwrapped, "observe_now", None)
        return observe() if observe is not None else None

    def _wait_for(self, wanted: EpisodeEvent, what: str) -> tuple[float, list[EpisodeEvent]]:
        """Hold the arm until ``wanted`` (or quit); returns the seconds waited and the label
        events that arrived meanwhile (applied to the step after a pause)."""
        t0 = time.monotonic()
        log.warning("%s: the arm holds; press %s to go on", what, wanted.value)
        later: list[EpisodeEvent] = []
        while True:
            self._hold()
            for event in self._poll():
                if event is wanted:
                    return time.monotonic() - t0, later
                if event is EpisodeEvent.QUIT:
                    self.quit_requested = True
                    return time.monotonic() - t0, later + [event]
                if event in LABELS:
                    later.append(event)
            self._sleep(self.poll_s)

    # ------------------------------------------------------------------ gym API
    def reset(self, **kwargs: Any):
        """Reset; with ``confirm_reset``, wait (arm holding) for the operator's confirm."""
        obs, info = self.env.reset(**kwargs)
        stale = [e for e in self._poll() if e is EpisodeEvent.QUIT]  # labels from the last episode expire
        if stale:
            self.quit_requested = True
        if self.confirm_reset and not self.quit_requested:
            waited, later = self._wait_for(EpisodeEvent.CONFIRM, "reset the scene")
            self.stats["reset_wait_s"] += waited
            self._pending = [e for e in later if e is EpisodeEvent.QUIT]
            fresh = self._fresh()
            if fresh is not None:
                obs, info = fresh
            info = {**info, "reset_wait_s": waited}
        return obs, info

    def step(self, action: Any):
        """One step, then the operator's label (if any) decides reward and termination."""
        events = self._poll()
        if EpisodeEvent.PAUSE in events:
            if self._can_pause():
                return self._pause(events)
            log.warning("pause needs the robot env (a gymnasium env cannot hold an arm); ignored")
            events = [e for e in events if e is not EpisodeEvent.PAUSE]
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info.setdefault("reward_source", "robot" if info.get("success") else "none")
        return (obs, *self._apply(events, reward, terminated, truncated, info))

    def _can_pause(self) -> bool:
        return getattr(self.env.unwrapped, "observe_now", None) is not None

    def _pause(self, events: list[EpisodeEvent]):
        self.stats["pauses"] += 1
        self._pending = [e for e in events[events.index(EpisodeEvent.PAUSE) + 1:]]
        waited, later = self._wait_for(EpisodeEvent.PAUSE, "paused")
        self.stats["paused_s"] += waited
        obs, info = self._fresh()
        info = {**info, "action_dropped": True, "paused_s": waited, "reward_source": "none"}
        reward, terminated, truncated, info = self._apply(
            [e for e in events if e in LABELS] + later, 0.0, False, False, info)
        return obs, reward, terminated, truncated, info

    def _apply(self, events: list[EpisodeEvent], reward: float, terminated: bool, truncated: bool,
               info: dict[str, Any]) -> tuple[float, bool, bool, dict[str, Any]]:
        auto_success = bool(info.get("success", False))
        for event in events:
            if event is EpisodeEvent.SUCCESS:
                self.stats["success_labels"] += 1
                info["disagreement"] = not auto_success and info.get("reward_source") == "classifier"
                info.update(success=True, is_success=True, failure=False, reward_source="operator", label="success")
                return 1.0, True, False, self._count(info)
            if event is EpisodeEvent.FAILURE:
                self.stats["failure_labels"] += 1
                info["disagreement"] = auto_success and info.get("reward_source") == "classifier"
                info.update(success=False, is_success=False, failure=True, reward_source="operator", label="failure")
                return 0.0, True, False, self._count(info)
            if event in (EpisodeEvent.RESET, EpisodeEvent.QUIT):
                self.stats["reset_labels"] += int(event is EpisodeEvent.RESET)
                self.quit_requested |= event is EpisodeEvent.QUIT
                info.update(label=event.value, operator_reset=True)
                return reward, terminated, True, info
        return reward, terminated, truncated, info

    def _count(self, info: dict[str, Any]) -> dict[str, Any]:
        if info["disagreement"]:
            self.stats["disagreements"] += 1
            log.info("operator label %s overrides the classifier (p=%.2f)", info["label"],
                     float(info.get("success_probability", float("nan"))))
        return info


def build_episode_control(env: gym.Env, cfg: dict[str, Any], teleop: Any = None) -> tuple[gym.Env, Any]:
    """Wrap ``env`` with :class:`EpisodeControl` as the ``labels`` block of a verb config asks.

    ``labels.keyboard``: ``auto`` reads the terminal when stdin is a tty, ``true`` always (fails
    clearly without one), ``false`` never. The SpaceMouse's label buttons are read when
    ``teleop`` has them. ``labels.confirm_reset``: ``auto`` waits for a confirm on a real arm
    (not the in-process sim, not the ROS2 sim robot, which reset their own scenes).

    Returns:
        ``(env, keyboard or None)``; start/stop the keyboard around the run (``with keyboard:``).
    """
    import sys

    from teleop.keyboard import KeyBindings, TerminalKeyboard

    labels = dict(cfg.get("labels") or {})
    if not labels.get("enabled", True):
        return env, None
    use_kb = labels.get("keyboard", "auto")
    keyboard = None
    if use_kb is True or (use_kb == "auto" and sys.stdin.isatty()):
        if not sys.stdin.isatty():
            raise RuntimeError("labels.keyboard=true needs a terminal on stdin (run hilr actor in a terminal, "
                               "or set labels.keyboard=auto / false)")
        keyboard = TerminalKeyboard(KeyBindings(**dict(labels.get("keys") or {})))
    sources = [s for s in (keyboard, teleop) if s is not None and callable(getattr(s, "poll", None))]
    confirm = labels.get("confirm_reset", "auto")
    if confirm == "auto":  # a real arm: someone puts the scene back (a sim, or the ROS2 sim robot, resets itself)
        arm = getattr(env.unwrapped, "arm", None)
        confirm = (arm is not None and getattr(env.unwrapped, "world", None) is None
                   and not getattr(getattr(arm, "cfg", None), "task_state_topic", None))
    return EpisodeControl(env, sources, confirm_reset=bool(confirm)), keyboard
