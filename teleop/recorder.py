"""The demonstration-recording loop behind ``hilr record``.

Runs teleoperated episodes on an env wrapped in :class:`~teleop.intervention.InterventionWrapper`
and writes each finished one atomically with :class:`robot_env.dataset.EpisodeWriter`.
Episode control comes from the keyboard (terminal or console window): ``s`` success,
``f`` failure, ``r`` reset (discard), ``p``/space pause, ``q``/Esc quit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import Any, Callable

import numpy as np

from robot_env.dataset import EpisodeWriter
from teleop.console import ConsoleStatus, OperatorConsole
from teleop.intervention import InterventionWrapper
from teleop.keyboard import EpisodeEvent, KeyboardControl

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RecordStats:
    """What a recording session produced.

    Attributes:
        kept: episode files written this session.
        attempts: episodes finished (kept or dropped) this session.
        successes: successful episodes this session.
        discarded: episodes thrown away with the reset key.
        steps: env steps this session.
        intervention_steps: steps under operator control.
        paths: the episode files written, in order.
        quit: the operator pressed quit.
        interrupted: Ctrl-C ended the session (the running episode was discarded).
        held_success_frames: extra success frames recorded while the operator held the success
            state (``success_hold_steps``).
    """

    kept: int = 0
    attempts: int = 0
    successes: int = 0
    discarded: int = 0
    steps: int = 0
    intervention_steps: int = 0
    paths: list = dataclasses.field(default_factory=list)
    quit: bool = False
    interrupted: bool = False
    held_success_frames: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly summary."""
        d = dataclasses.asdict(self)
        d["paths"] = [str(p) for p in self.paths]
        d["success_rate"] = self.successes / self.attempts if self.attempts else 0.0
        d["intervention_rate"] = self.intervention_steps / self.steps if self.steps else 0.0
        return d


class HoldPolicy:
    """The 'policy' while recording demos: hold still, keep the last gripper command."""

    def __init__(self) -> None:
        self.gripper = -1.0

    def reset(self) -> None:
        """Start open."""
        self.gripper = -1.0

    def act(self, obs: Any) -> np.ndarray:
        """Zero twist, last gripper command."""
        return np.array([0, 0, 0, 0, 0, 0, self.gripper], dtype=np.float32)


def record_episodes(env: InterventionWrapper, writer: EpisodeWriter, n_episodes: int, *,
                    keyboard: KeyboardControl | None = None,
                    console: OperatorConsole | None = None,
                    policy: Any = None, max_attempts: int | None = None,
                    progress: bool = True, seed: int | None = None,
                    on_step: Callable[[dict[str, Any]], None] | None = None,
                    success_hold_steps: int = 0) -> RecordStats:
    """Record until ``n_episodes`` episodes are kept, the operator quits, or attempts run out.

    Args:
        env: the env with the intervention wrapper outermost.
        writer: the dataset writer (resumes an existing dataset).
        n_episodes: episode files to write this session.
        keyboard: episode events; None = episodes end only on terminated/truncated.
        console: status display; None = none.
        policy: object with ``reset()`` and ``act(obs) -> (7,)`` run when the operator is
            idle; None = hold still (pure demonstrations).
        max_attempts: stop after this many finished episodes (default ``4 * n_episodes``),
            so a keep-only-successful session with a failing operator ends.
        progress: show a tqdm bar of kept episodes.
        seed: seed of the first reset (the env's RNG continues from there).
        on_step: called with the step's info (tests use it to crash mid-episode).
        success_hold_steps: after a successful episode, keep the loop running this many more
            steps while the operator holds the scene in its success state (the object lifted,
            the peg inserted): their frames are written as extra positives for the reward
            classifier (``EpisodeWriter.add_frames``), as hil-serl records many success frames
            per attempt. ``f`` or ``r`` during the hold drops them; the episode file is unchanged.

    Returns:
        :class:`RecordStats`.
    """
    from tqdm import tqdm

    policy = policy or HoldPolicy()
    keyboard = keyboard or KeyboardControl()
    max_attempts = max_attempts or 4 * n_episodes
    stats = RecordStats()
    status = ConsoleStatus(episodes_target=n_episodes)
    from tqdm.contrib.logging import logging_redirect_tqdm

    bar = tqdm(total=n_episodes, desc="episodes", unit="ep", disable=not progress, leave=True)
    # log lines go through tqdm.write above the bar instead of through the middle of it
    redirect = logging_redirect_tqdm() if progress else contextlib.nullcontext()
    redirect.__enter__()
    if console is not None:
        console.attach_progress_bar(bar)
    first = True
    try:
        while stats.kept < n_episodes and stats.attempts < max_attempts and not stats.quit:
            obs, info = env.reset(seed=seed if first else None)
            first = False
            policy.reset()
            writer.begin(obs)
            status.episode, status.step = stats.attempts + stats.discarded, 0
            label, env_success, obs = _run_episode(env, writer, policy, keyboard, console, status,
                                                   stats, obs, on_step)
            if label == "discard":
                writer.discard()
                stats.discarded += 1
                status.message = "episode discarded (reset)"
                continue
            with defer_sigint():  # Ctrl-C between the file's rename and the count would miscount
                path = writer.end(label)
                success = bool(label) if label is not None else env_success
                stats.attempts += 1
                stats.successes += int(success)
                if path is not None:
                    stats.kept += 1
                    stats.paths.append(path)
            status.attempts, status.successes = stats.attempts, stats.successes
            if path is not None:
                bar.update(1)
                status.message = f"saved {path.name} ({'success' if success else 'failure'})"
            else:
                status.message = "failed episode dropped (keep_only_successful)"
            bar.set_postfix_str(status.line())
            log.info(status.message)
            if success and success_hold_steps > 0 and writer.record_frames and not stats.quit:
                _hold_success(env, writer, policy, keyboard, console, status, stats, obs, success_hold_steps)
    except KeyboardInterrupt:
        stats.interrupted = True
        log.warning("interrupted: running episode discarded, %d episodes saved this session",
                    stats.kept)
    finally:
        bar.close()
        redirect.__exit__(None, None, None)
        if writer.recording:
            writer.discard()  # an unfinished episode is never written
    return stats


@contextlib.contextmanager
def defer_sigint():
    """Hold a Ctrl-C (SIGINT) that arrives inside the block and raise it once the block is done,
    so an episode file and the counters that report it are written together or not at all."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        yield  # not the main thread, or Ctrl-C is ignored in this process (started in the background)
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _hold_success(env, writer, policy, keyboard, console, status, stats, obs, steps: int) -> int:
    """``steps`` more steps in the success state; their frames go to the writer as positives.

    Returns the frames written (0 when the operator dropped the hold with ``f``/``r``, or quit)."""
    held = []
    status.message = f"hold the success state: {steps} frames"
    for _ in range(steps):
        for event in keyboard.poll():
            if event in (EpisodeEvent.FAILURE, EpisodeEvent.RESET, EpisodeEvent.QUIT):
                stats.quit = stats.quit or event is EpisodeEvent.QUIT
                status.message = "success hold dropped"
                log.info(status.message)
                return 0
        obs, _, _, _, info = env.step(policy.act(obs))
        if isinstance(policy, HoldPolicy):
            policy.gripper = float(info["action"][6])
        held.append(obs)
        if console:
            console.update(obs, status)
    path = writer.add_frames(held, [True] * len(held))
    stats.held_success_frames += len(held)
    log.info("%d success frames held (%s)", len(held), path.name)
    return len(held)


def _run_episode(env, writer, policy, keyboard, console, status, stats, obs, on_step):
    """Step one episode.

    Returns:
        ``(label, env_success, obs)``: label True/False (operator key), None (the env ended the
        episode) or ``"discard"``; env_success: any step's info said success; obs: the last
        observation.
    """
    start = time.monotonic()
    paused = False
    env_success = False
    while True:
        for event in keyboard.poll():
            if event is EpisodeEvent.PAUSE:
                paused = not paused
            elif event is EpisodeEvent.RESET:
                return "discard", env_success, obs
            elif event is EpisodeEvent.SUCCESS:
                return True, env_success, obs
            elif event is EpisodeEvent.FAILURE:
                return False, env_success, obs
            elif event is EpisodeEvent.QUIT:
                stats.quit = True
                return False, env_success, obs
        status.elapsed_s = time.monotonic() - start
        if paused:
            status.controller = "paused"
            if console:
                console.update(obs, status)
            time.sleep(0.05)
            continue
        action = policy.act(obs)
        obs, reward, terminated, truncated, info = env.step(action)
        writer.add(info["action"], obs, reward, terminated, truncated, info)
        if isinstance(policy, HoldPolicy):
            policy.gripper = float(info["action"][6])
        stats.steps += 1
        stats.intervention_steps += int(info["intervened"])
        status.steps, status.intervention_steps = stats.steps, stats.intervention_steps
        status.step += 1
        status.controller = "human" if info["intervened"] else "policy"
        env_success = env_success or bool(info.get("success", False))
        status.message = "success" if info.get("success") else ""
        if console:
            console.update(obs, status)
        if on_step:
            on_step(info)
        if terminated or truncated:
            return None, env_success, obs
