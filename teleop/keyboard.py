"""Keyboard labels and episode control: success, failure, reset, pause, quit.

Two feeds, one queue:

* :class:`TerminalKeyboard` reads single key presses from a terminal (the controlling
  tty, so it works over SSH, with no X server or Wayland: lerobot's pynput keyboard fails
  there). The tty goes to cbreak mode (no line buffering, no echo, Ctrl-C still works)
  and is restored on ``stop()``.
* The operator console window forwards ``cv2.waitKey`` codes with :meth:`KeyboardControl.feed_cv_key`.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import queue
import select
import sys
import threading


class EpisodeEvent(str, enum.Enum):
    """What a key press means for the recorder/actor."""

    SUCCESS = "success"   # label the episode successful and end it
    FAILURE = "failure"   # label the episode failed and end it
    RESET = "reset"       # discard the running episode and reset
    PAUSE = "pause"       # toggle pause (the robot holds still)
    QUIT = "quit"         # finish the running episode as failure and stop
    CONFIRM = "confirm"   # the scene is reset: start the next episode (actor on a real arm)


@dataclasses.dataclass
class KeyBindings:
    """Keys for each event; each entry is a string of characters that trigger it.

    ``"\\x1b"`` is Escape and ``" "`` the space bar.
    """

    success: str = "s"
    failure: str = "f"
    reset: str = "r"
    pause: str = "p "
    quit: str = "q\x1b"
    confirm: str = "c\r\n"

    def __post_init__(self) -> None:
        seen: dict[str, str] = {}
        for event in EpisodeEvent:
            for ch in getattr(self, event.value):
                if ch in seen:
                    raise ValueError(f"key {ch!r} bound to both {seen[ch]} and {event.value}")
                seen[ch] = event.value

    def lookup(self, ch: str) -> EpisodeEvent | None:
        """The event bound to character ``ch`` (case-insensitive), or None."""
        for event in EpisodeEvent:
            if ch in getattr(self, event.value) or ch.lower() in getattr(self, event.value):
                return event
        return None

    def help_lines(self) -> list[str]:
        """Human-readable bindings, one per event (for the console and the terminal)."""
        names = {"\x1b": "Esc", " ": "Space", "\r": "Enter", "\n": "Enter"}
        return [
            f"{'/'.join(dict.fromkeys(names.get(c, c) for c in getattr(self, e.value)))}: {e.value}"
            for e in EpisodeEvent
        ]


class KeyboardControl:
    """Thread-safe queue of :class:`EpisodeEvent` fed by key presses from any source.

    Args:
        bindings: the key map.
    """

    def __init__(self, bindings: KeyBindings | None = None) -> None:
        self.bindings = bindings or KeyBindings()
        self._events: queue.Queue[EpisodeEvent] = queue.Queue()

    def feed_char(self, ch: str) -> EpisodeEvent | None:
        """Handle one typed character; returns the event it queued, if any."""
        event = self.bindings.lookup(ch)
        if event is not None:
            self._events.put(event)
        return event

    def feed_cv_key(self, code: int) -> EpisodeEvent | None:
        """Handle a ``cv2.waitKey`` result (-1 = no key)."""
        if code is None or code < 0:
            return None
        return self.feed_char(chr(code & 0xFF))

    def poll(self) -> list[EpisodeEvent]:
        """All events queued since the last poll, oldest first (never blocks)."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def start(self) -> None:
        """Start reading (no-op for the plain queue)."""

    def stop(self) -> None:
        """Stop reading (no-op for the plain queue)."""

    def __enter__(self) -> KeyboardControl:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class TerminalKeyboard(KeyboardControl):
    """Reads key presses from a terminal file descriptor in a background thread.

    Args:
        bindings: the key map.
        fd: file descriptor to read; None = ``sys.stdin``. If it is a tty it is put in
            cbreak mode while reading; a pipe is read as it is.
    """

    def __init__(self, bindings: KeyBindings | None = None, fd: int | None = None) -> None:
        super().__init__(bindings)
        self.fd = fd
        self._saved_attrs = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Switch the tty to cbreak mode and start the reader thread. Idempotent."""
        if self._thread is not None:
            return
        if self.fd is None:
            self.fd = sys.stdin.fileno()
        if os.isatty(self.fd):
            import termios
            import tty

            self._saved_attrs = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd, termios.TCSANOW)
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name="keyboard-reader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reader and restore the terminal settings. Safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._thread = None
        if self._saved_attrs is not None:
            import termios

            try:
                termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved_attrs)
            except termios.error:  # the terminal went away (SSH closed)
                pass
            self._saved_attrs = None

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.fd, 64)
            except (OSError, ValueError):
                return  # terminal closed
            if not data:
                return  # EOF on a pipe
            self._feed_bytes(data)

    def _feed_bytes(self, data: bytes) -> None:
        text = data.decode("utf-8", errors="ignore")
        i = 0
        while i < len(text):
            # An escape sequence (arrow keys: ESC [ A) is not a bare Escape press.
            if text[i] == "\x1b" and i + 1 < len(text) and text[i + 1] in "[O":
                i += 2
                while i < len(text) and not text[i].isalpha() and text[i] != "~":
                    i += 1
                i += 1
                continue
            self.feed_char(text[i])
            i += 1
