"""The operator console: camera views with crop boxes, who is in control, progress, keys.

``mode="window"`` draws an OpenCV window (keys typed into it go to the same
:class:`~teleop.keyboard.KeyboardControl` as the terminal); ``mode="headless"`` prints
the same status as one line to the terminal (rate-limited), for SSH sessions without X;
``mode="off"`` does nothing. :meth:`OperatorConsole.render` returns the window image, so
it can be saved or tested without a display.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import numpy as np

from teleop.keyboard import KeyboardControl

MODES = ("window", "headless", "off")


@dataclasses.dataclass
class ConsoleConfig:
    """Console settings (comments: launch/config/record.yaml, key ``console``).

    Attributes:
        mode: ``window`` (OpenCV), ``headless`` (terminal line) or ``off``.
        view_height: height each camera view is scaled to in the window, pixels.
        crops: camera name -> ``[x0, y0, x1, y1]`` crop box as fractions of the image.
        print_hz: headless status-line rate, Hz.
        window_name: title of the OpenCV window.
    """

    mode: str = "headless"
    view_height: int = 320
    crops: Mapping[str, Sequence[float]] = dataclasses.field(default_factory=dict)
    print_hz: float = 2.0
    window_name: str = "hilr operator console"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"console.mode must be one of {MODES}; got {self.mode!r}")
        self.crops = {k: tuple(float(x) for x in v) for k, v in dict(self.crops).items()}
        for name, box in self.crops.items():
            if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
                raise ValueError(f"crop of {name!r} must be [x0, y0, x1, y1] fractions; got {box}")


@dataclasses.dataclass
class ConsoleStatus:
    """What the console shows; the recorder/actor fills it every step.

    Attributes:
        controller: ``"human"``, ``"policy"`` or ``"paused"``.
        episode: index of the running episode this session (0-based).
        episodes_target: episodes to record (0 = open-ended).
        step: step within the episode.
        elapsed_s: seconds since the episode started.
        attempts: finished episodes this session.
        successes: successful episodes this session.
        intervention_steps: steps under operator control this session.
        steps: steps this session.
        message: last event (``"saved episode 3"``, ``"SpaceMouse unplugged"``).
    """

    controller: str = "policy"
    episode: int = 0
    episodes_target: int = 0
    step: int = 0
    elapsed_s: float = 0.0
    attempts: int = 0
    successes: int = 0
    intervention_steps: int = 0
    steps: int = 0
    message: str = ""

    @property
    def success_rate(self) -> float:
        """Successful fraction of the finished episodes (0 before the first)."""
        return self.successes / self.attempts if self.attempts else 0.0

    @property
    def intervention_rate(self) -> float:
        """Fraction of steps under operator control (0 before the first step)."""
        return self.intervention_steps / self.steps if self.steps else 0.0

    def line(self) -> str:
        """One-line summary (the headless console prints this)."""
        target = f"/{self.episodes_target}" if self.episodes_target else ""
        text = (f"[{self.controller.upper():6s}] episode {self.episode + 1}{target} "
                f"step {self.step:4d} {self.elapsed_s:6.1f}s | success {self.successes}/"
                f"{self.attempts} ({100 * self.success_rate:.0f}%) | intervention "
                f"{100 * self.intervention_rate:.0f}%")
        return f"{text} | {self.message}" if self.message else text


_COLORS = {"human": (0, 140, 255), "policy": (60, 200, 60), "paused": (180, 180, 180)}  # BGR


def _point_qt_at_system_fonts() -> None:
    """opencv-python points Qt at a font folder it does not ship (and Qt warns); use the
    system's fonts instead. Read by Qt when the first window opens."""
    import os

    import cv2  # noqa: F401  (cv2's import sets QT_QPA_FONTDIR; override it after)

    if os.path.isdir(os.environ.get("QT_QPA_FONTDIR", "")):
        return
    for path in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts"):
        if os.path.isdir(path):
            os.environ["QT_QPA_FONTDIR"] = path
            return


class OperatorConsole:
    """Window or terminal status display for the operator.

    Args:
        cfg: the config.
        keyboard: where keys typed into the window go (episode events).
        stream: where the headless line goes (default stderr, so stdout stays clean).
    """

    def __init__(self, cfg: ConsoleConfig, keyboard: KeyboardControl | None = None,
                 stream: TextIO | None = None) -> None:
        self.cfg = cfg
        self.keyboard = keyboard
        self.stream = stream or sys.stderr
        self._last_print = -np.inf
        self._window_open = False
        self._bar: Any = None

    def attach_progress_bar(self, bar: Any) -> None:
        """Headless mode: show the status in this tqdm bar's postfix instead of a second
        line (two ``\r`` lines on one terminal overwrite each other)."""
        self._bar = bar

    def render(self, obs: Mapping[str, np.ndarray], status: ConsoleStatus) -> np.ndarray:
        """The console image: camera views on top, status and key bindings below.

        Args:
            obs: observation dict; every ``(H, W, 3) uint8`` entry is shown (RGB).
            status: what to print.

        Returns:
            (H, W, 3) uint8 BGR image.
        """
        import cv2

        h = self.cfg.view_height
        views = []
        for name, img in obs.items():
            img = np.asarray(img)
            if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
                continue
            scale = h / img.shape[0]
            view = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                              (max(1, int(round(img.shape[1] * scale))), h),
                              interpolation=cv2.INTER_NEAREST)
            if name in self.cfg.crops:
                x0, y0, x1, y1 = self.cfg.crops[name]
                w = view.shape[1]
                cv2.rectangle(view, (int(x0 * w), int(y0 * h)), (int(x1 * w) - 1, int(y1 * h) - 1),
                              (0, 255, 255), 2)
            cv2.putText(view, name, (6, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
            views.append(view)
        top = np.hstack(views) if views else np.zeros((h, 480, 3), np.uint8)
        width = max(top.shape[1], 640)
        if top.shape[1] < width:
            top = np.hstack([top, np.zeros((h, width - top.shape[1], 3), np.uint8)])
        panel = self._panel(width, status)
        return np.vstack([top, panel])

    def _panel(self, width: int, status: ConsoleStatus) -> np.ndarray:
        import cv2

        keys = self.keyboard.bindings.help_lines() if self.keyboard else []
        panel = np.full((150, width, 3), 30, np.uint8)
        color = _COLORS.get(status.controller, (255, 255, 255))
        cv2.rectangle(panel, (8, 8), (200, 48), color, -1)
        cv2.putText(panel, status.controller.upper(), (18, 38), cv2.FONT_HERSHEY_SIMPLEX, 0.9,
                    (0, 0, 0), 2)
        target = f"/{status.episodes_target}" if status.episodes_target else ""
        lines = [
            f"episode {status.episode + 1}{target}   step {status.step}   {status.elapsed_s:.1f} s",
            f"success {status.successes}/{status.attempts} ({100 * status.success_rate:.0f}%)"
            f"   intervention {100 * status.intervention_rate:.0f}%",
            status.message,
        ]
        for i, text in enumerate(lines):
            cv2.putText(panel, text, (215, 26 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (235, 235, 235), 1)
        cv2.putText(panel, "keys: " + "   ".join(keys), (10, 130), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (200, 200, 120), 1)
        return panel

    def update(self, obs: Mapping[str, np.ndarray], status: ConsoleStatus) -> None:
        """Show the newest observation and status (window) or print the line (headless)."""
        if self.cfg.mode == "off":
            return
        if self.cfg.mode == "headless":
            now = time.monotonic()
            if now - self._last_print >= 1.0 / self.cfg.print_hz:
                self._last_print = now
                if self._bar is not None and not getattr(self._bar, "disable", True):
                    self._bar.set_postfix_str(status.line(), refresh=True)
                else:
                    self.stream.write("\r\x1b[K" + status.line())
                    self.stream.flush()
            return
        if not self._window_open:
            _point_qt_at_system_fonts()
        import cv2

        cv2.imshow(self.cfg.window_name, self.render(obs, status))
        self._window_open = True
        code = cv2.waitKey(1)
        if self.keyboard is not None:
            self.keyboard.feed_cv_key(code)

    def print_bindings(self) -> None:
        """Print the key bindings once (headless mode)."""
        if self.cfg.mode != "off" and self.keyboard is not None:
            self.stream.write("keys: " + "   ".join(self.keyboard.bindings.help_lines()) + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Close the window / end the status line."""
        if self._window_open:
            import cv2

            cv2.destroyWindow(self.cfg.window_name)
            cv2.waitKey(1)
            self._window_open = False
        elif self.cfg.mode == "headless" and self._bar is None:
            self.stream.write("\n")
            self.stream.flush()
