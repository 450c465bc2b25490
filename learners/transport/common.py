"""Small pieces shared by the transport endpoints: rejection counters, wake-ups, ids."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from learners.transport import wire


class Rejections:
    """Thread-safe counters of rejected messages by reason, with rate-limited logging.

    Each reason is logged the first 10 times, then at every power of two, so a flood of
    garbage cannot flood the log (the counters stay exact).

    Args:
        where: name of the socket, used in log lines (e.g. ``"transition receiver"``).
        logger: where to log.
    """

    def __init__(self, where: str, logger: logging.Logger) -> None:
        self.where = where
        self.log = logger
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def reject(self, reason: str, detail: str) -> None:
        """Count one rejection and maybe log it."""
        with self._lock:
            self._counts[reason] += 1
            n = self._counts[reason]
        if n <= 10 or (n & (n - 1)) == 0:
            self.log.warning("%s rejected a message (%s, #%d): %s", self.where, reason, n, detail)

    def internal(self, exc: BaseException) -> None:
        """Count an unexpected error (reason ``internal``); the first one is logged with
        its traceback (a bug to report), later ones like any other rejection."""
        self.reject("internal", f"{type(exc).__name__}: {exc}")
        if self.counts().get("internal") == 1:
            self.log.error("%s: first unexpected error, with traceback (the loop goes on)", self.where,
                           exc_info=exc)

    def from_error(self, exc: wire.WireError) -> None:
        """Count a :class:`wire.WireError`."""
        self.reject(exc.reason, str(exc))

    def counts(self) -> dict[str, int]:
        """Reason -> count (a copy)."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        """All rejections so far."""
        with self._lock:
            return sum(self._counts.values())


class Waker:
    """A socketpair that wakes an I/O thread blocked in ``zmq.Poller.poll``.

    ``wake()`` never blocks (a full pipe already means "wake up").
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        """The read end, to register with a poller."""
        return self._r.fileno()

    def wake(self) -> None:
        """Make the read end readable."""
        try:
            self._w.send(b"\0")
        except (BlockingIOError, OSError):
            pass

    def drain(self) -> None:
        """Consume pending wake-ups."""
        try:
            while self._r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        """Close both ends."""
        self._r.close()
        self._w.close()


class ReconnectTimer:
    """When to reopen an actor-side socket that hears nothing valid from the learner.

    libzmq never reconnects a connection it dropped for a protocol error (an oversized
    frame, for one), so the actor reopens the socket itself: after ``after_s`` of
    silence, then after twice as long each time the silence goes on (at most 30 s, or
    ``after_s`` if longer), back to ``after_s`` once the learner is heard again.
    """

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.wait = after_s
        self.last_reset = time.monotonic()
        self.count = 0

    def silent_s(self, last_rx: float | None, now: float) -> float:
        """Seconds since the learner was last heard (or since the last reset)."""
        return now - max(last_rx or 0.0, self.last_reset)

    def due(self, last_rx: float | None, now: float) -> bool:
        """True when the socket should be reopened now; call :meth:`reset` after reopening."""
        if last_rx is not None and last_rx > self.last_reset:
            self.wait = self.after_s  # heard since the last reset
        return self.silent_s(last_rx, now) >= self.wait

    def reset(self, now: float) -> None:
        """Record a reopen at ``now`` and back off."""
        self.count += 1
        self.last_reset = now
        self.wait = min(2 * self.wait, max(30.0, self.after_s))


def random_id() -> int:
    """A random 63-bit id (learner instance ids)."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def routing_id(directory: str | os.PathLike | None, who: str = "transport") -> bytes:
    """16 random bytes naming one actor's connection (first byte non-zero, as libzmq requires).

    Kept in ``<directory>/routing_id`` (mode 0600) when a directory is given, so that a
    restarted actor still owns, at the learner, the streams it re-sends from its outbox.
    """
    path = Path(directory) / "routing_id" if directory else None
    if path is not None and path.exists():
        try:
            rid = bytes.fromhex(path.read_text().strip())
            if len(rid) == 16 and rid[0]:
                return rid
        except (OSError, ValueError):
            pass
        logging.getLogger(__name__).warning("%s: %s unreadable; using a new routing id", who, path)
    rid = bytes([os.urandom(1)[0] | 0x80]) + os.urandom(15)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(rid.hex())
    return rid


def to_ranges(seqs: list[int]) -> list[list[int]]:
    """Sorted inclusive ranges covering ``seqs``: [1, 2, 3, 7] -> [[1, 3], [7, 7]]."""
    ranges: list[list[int]] = []
    for s in sorted(set(seqs)):
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1][1] = s
        else:
            ranges.append([s, s])
    return ranges


class SeqSet:
    """A set of non-negative ints stored as "all below ``low``" plus a sparse set above it.

    Memory stays small because a sender re-sends in order, so gaps close.
    """

    def __init__(self, low: int = 0, above: list[int] | None = None) -> None:
        self.low = low
        self.above: set[int] = set(above or ())
        self._compact()

    def _compact(self) -> None:
        while self.low in self.above:
            self.above.discard(self.low)
            self.low += 1

    def __contains__(self, seq: int) -> bool:
        return seq < self.low or seq in self.above

    def add(self, seq: int) -> bool:
        """Add ``seq``; returns False if it was already there."""
        if seq in self:
            return False
        self.above.add(seq)
        self._compact()
        return True

    def __len__(self) -> int:
        return self.low + len(self.above)

    def advance(self, floor: int) -> None:
        """Declare every seq below ``floor`` present (the sender will never send them again)."""
        if floor > self.low:
            self.low = floor
            self.above = {s for s in self.above if s >= floor}
            self._compact()

    def to_dict(self) -> dict:
        """JSON-able state."""
        return {"low": self.low, "above": sorted(self.above)}

    @classmethod
    def from_dict(cls, d: dict) -> SeqSet:
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["low"]), [int(x) for x in d.get("above", [])])


class StartCloseContext:
    """``with obj:`` = ``obj.start()`` ... ``obj.close()``, for every socket owner of the transport."""

    def __enter__(self) -> Any:
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: Any) -> None:
        self.close()  # type: ignore[attr-defined]


class IOThreadOwner(StartCloseContext):
    """An endpoint whose one socket is served by one background I/O thread (``self._run``,
    looping until ``self._stop`` is set) and woken through a :class:`Waker`.

    Starting and stopping that thread, and releasing socket, waker and zmq context, live
    here once for every endpoint (sender, receiver, publisher, subscriber). Subclasses
    create ``self._stop`` (a ``threading.Event``), ``self._ctx`` and ``self._sock``.
    """

    _thread: threading.Thread | None = None

    def _start_io_thread(self, name: str) -> None:
        """Make the waker and start ``self._run`` in a daemon thread (the end of ``start()``)."""
        self._waker = Waker()
        self._stop.clear()  # a closed endpoint may be started again
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)  # type: ignore[attr-defined]
        self._thread.start()

    def _stop_io_thread(self) -> bool:
        """Stop and join the I/O thread. Returns False if it was not running (``close()``
        before ``start()``, or twice): then there is nothing to release either."""
        if self._thread is None:
            return False
        self._stop.set()
        self._waker.wake()
        self._thread.join()
        self._thread = None
        return True

    def _release(self) -> None:
        """Close socket and waker, then the context (call once the I/O thread has stopped)."""
        self._sock.close(0)
        self._waker.close()
        self._term_context()

    def _term_context(self) -> None:
        self._ctx.term()


class LearnerSocketOwner(IOThreadOwner):
    """Teardown shared by the learner-side endpoints (transition receiver, weight publisher).

    Each owns one bound socket served by one I/O thread, a :class:`Waker`, a CURVE
    authenticator and a zmq context, set by its ``start()``.
    """

    def close(self) -> None:
        """Stop the I/O thread, then close socket, waker, authenticator and context at once
        (un-acknowledged transitions are re-sent by the actors). Safe before ``start()``."""
        if self._stop_io_thread():
            self._release()

    def _term_context(self) -> None:
        self._auth.stop()  # its ZAP socket lives in the context: stop it before term()
        self._ctx.term()
