"""The latest-frame slot shared by every threaded camera backend.

A reader thread calls :meth:`LatestFrame.put` for every frame it receives (or
:meth:`LatestFrame.fail` when the device stops answering); ``Camera.read()`` calls
:meth:`LatestFrame.get`, which never blocks on I/O: it returns the newest frame if it is
fresh enough and raises otherwise. Only one frame is ever kept, so a slow consumer never
builds a queue of old images.
"""

from __future__ import annotations

import threading
import time

from robot_env.hardware import DeviceError, Frame, StaleDataError


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
