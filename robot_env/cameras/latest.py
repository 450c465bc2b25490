"""The latest-frame slot shared by every threaded camera backend.

A reader thread calls :meth:`LatestFrame.put` for every frame it receives (or
:meth:`LatestFrame.fail` when the device stops answering); ``Camera.read()`` calls
:meth:`LatestFrame.get`, which never blocks on I/O: it returns the newest frame if it is
fresh enough and raises otherwise. Only one frame is ever kept, so a slow consumer never
builds a queue of old images.
"""

from __future__ import annotations

import abc
import threading
import time
from typing import Any

from robot_env.hardware import Camera, DeviceError, Frame, StaleDataError


class LatestFrame:
    """Thread-safe holder of the newest :class:`Frame` and the reader's last error.

    Args:
        name: camera name used in error messages.
        max_age_s: a frame older than this (seconds, ``time.monotonic()``) is stale.
    """

    def __init__(self, name: str, max_age_s: float) -> None:
        self.name = name
        self.max_age_s = float(max_age_s)
        self._lock = threading.Lock()
        self._frame: Frame | None = None
        self._error: str | None = None
        self._count = 0

    def put(self, frame: Frame) -> None:
        """Store ``frame`` as the newest one and clear any earlier reader error."""
        with self._lock:
            self._frame = frame
            self._error = None
            self._count += 1

    def fail(self, message: str) -> None:
        """Record why the reader has no new frames (unplugged, frozen, end of stream)."""
        with self._lock:
            self._error = message

    def clear(self) -> None:
        """Forget the stored frame and error (on connect/disconnect)."""
        with self._lock:
            self._frame, self._error, self._count = None, None, 0

    @property
    def count(self) -> int:
        """Frames received since the last :meth:`clear`."""
        with self._lock:
            return self._count

    @property
    def error(self) -> str | None:
        """The reader's last error, or None while frames flow."""
        with self._lock:
            return self._error

    def get(self, now: float | None = None) -> Frame:
        """The newest frame if it is at most ``max_age_s`` old.

        Raises:
            DeviceError: the reader reported an error and no fresh frame exists.
            StaleDataError: no frame yet, or the newest one is too old.
        """
        now = time.monotonic() if now is None else now
        with self._lock:
            frame, error = self._frame, self._error
        age = None if frame is None else now - frame.stamp
        if age is not None and age <= self.max_age_s:
            return frame
        if error is not None:
            raise DeviceError(f"camera {self.name!r}: {error}")
        if frame is None:
            raise StaleDataError(f"camera {self.name!r}: no frame received yet")
        raise StaleDataError(
            f"camera {self.name!r}: newest frame is {age * 1e3:.0f} ms old "
            f"(max_age_s={self.max_age_s}); the stream stalled"
        )

    def wait_first(self, timeout_s: float) -> Frame:
        """Block until a first frame arrives (used by ``connect()``), at most ``timeout_s``.

        Raises:
            DeviceError: nothing arrived in time (with the reader's error if it has one).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._frame is not None:
                    return self._frame
            time.sleep(0.005)
        err = self.error
        raise DeviceError(
            f"camera {self.name!r}: no frame within {timeout_s:.1f} s"
            + (f" ({err})" if err else "")
        )


class ThreadedCamera(Camera):
    """A camera whose background reader thread fills a :class:`LatestFrame`.

    The life cycle lives here once: ``connect`` opens the source, starts the reader and
    waits for the first frame; ``disconnect`` stops and joins the reader, then closes the
    source; ``read`` returns the newest fresh frame without blocking on I/O. Subclasses
    implement :meth:`_open_source`, :meth:`_close_source` and :meth:`_reader`.

    Args:
        cfg: the backend's config; it needs ``name``, ``height``, ``width``,
            ``max_age_s`` and ``connect_timeout_s``.
    """

    #: prefix of the reader thread's name (``<prefix>-<camera name>``).
    thread_prefix = "camera"

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.shape = (cfg.height, cfg.width)
        self._latest = LatestFrame(cfg.name, cfg.max_age_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False

    @abc.abstractmethod
    def _open_source(self) -> None:
        """Open the device or stream (raises ``DeviceError`` with what to check)."""

    @abc.abstractmethod
    def _close_source(self) -> None:
        """Release the device or stream; safe to call when it is not open."""

    @abc.abstractmethod
    def _reader(self) -> None:
        """Thread body: ``self._latest.put`` every frame until ``self._stop`` is set."""

    def connect(self) -> None:
        """Open the source, start the reader and wait for the first frame (``connect_timeout_s``)."""
        if self._connected:
            return
        self._latest.clear()
        self._stop.clear()
        self._open_source()
        self._thread = threading.Thread(target=self._reader, name=f"{self.thread_prefix}-{self.name}", daemon=True)
        self._thread.start()
        try:
            self._latest.wait_first(self.cfg.connect_timeout_s)
        except DeviceError:
            self.disconnect()
            raise
        self._connected = True

    def disconnect(self) -> None:
        """Stop the reader and release the source (safe to call twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        self._close_source()
        self._connected = False

    def read(self) -> Frame:
        """Newest frame; ``StaleDataError`` if too old, ``DeviceError`` if the source failed."""
        self._require_connected()
        return self._latest.get()
