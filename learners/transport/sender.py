"""Actor side of the transition stream: DEALER socket, outbox, acks, heartbeats.

:meth:`TransitionSender.send` encodes the transition (a copy: the caller may reuse its
arrays), gives it the next sequence number and hands it to a background I/O thread; it
never waits on the network. The I/O thread keeps every transition in the
:class:`~learners.transport.outbox.Outbox` until the learner acknowledges it, re-sends
after ``ack_timeout_s``, after the learner comes back (``liveness_timeout_s`` of
silence, then a reply) and after a learner restart (a new learner instance id), and pings
the learner every ``heartbeat_interval_s`` so :attr:`learner_alive` is always current.
Acks come in two strengths: ``final=False`` ("held": the learner has it queued; stop the
timeout re-sends but keep it) and ``final=True`` (delivered/committed: forget it). A
final ack with ``rejected`` means the learner refused the transition (another layout,
NaN): it is dropped, counted and its reason logged loudly the first time.

Under load (several transitions waiting) the I/O thread sends up to ``cfg.max_batch`` of
them as one multipart ZMQ message, one outbox frame per part, handed to libzmq without a
copy; the learner states in its pongs how many it accepts (none stated: one per message).
Each frame keeps its own ``(stream, seq)`` and is acknowledged, re-sent or refused alone.

The socket carries an unguessable routing id of this actor (kept in ``outbox_dir``), so
only this actor owns its streams at the learner. When nothing valid arrives from the
learner for ``reconnect_after_s`` (libzmq never reconnects after a protocol error such as
an oversized frame), the socket is closed and opened again, with a logged warning and
backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.auth import apply_client
from learners.transport.common import IOThreadOwner, ReconnectTimer, Rejections, routing_id
from learners.transport.config import TransportConfig
from learners.transport.outbox import Key, Outbox, OutboxFull
from learners.transport.spec import DIGEST, conform_floats, parse_stated_spec

log = logging.getLogger(__name__)


def features_hint(flat: Mapping[str, Any], learner_required: Mapping[str, Any]) -> str:
    """What to change when the camera entries differ only because one side makes backbone
    features on the actor (``learner.features_from``) and the other does not."""
    if DIGEST in learner_required and DIGEST not in flat:
        return ("; the learner stores camera features made on the actor: start the actor with the learner's "
                "learner.cache_features=true learner.features_from=actor")
    if DIGEST in flat and DIGEST not in learner_required:
        return ("; this actor sends backbone features, the learner expects camera images: start both with the same "
                "learner.features_from")
    return ""


class TransitionSender(IOThreadOwner):
    """Streams transitions from one actor to the learner, reliably and without blocking.

    Args:
        cfg: transport config (endpoint, limits, timing, CURVE).
        actor_id: stable name of this actor (e.g. ``"robot0"``); the learner de-duplicates
            by ``(actor_id, stream, seq)``.
        port: learner transitions port (default ``cfg.transitions_port``).
        outbox_dir: spill directory (default ``cfg.outbox_dir``); unacknowledged transitions
            found there from a previous run are re-sent.
        expected: optional spec (see :func:`wire.array_spec`) every transition must match;
            :meth:`send` raises ``wire.SpecMismatch``/``wire.NonFinite`` at the source.
        use_learner_spec: once the learner has stated its transition spec (in its pongs,
            :attr:`learner_spec`), :meth:`send` raises ``wire.SpecMismatch`` with a clear
            message for a transition of another layout instead of streaming it to be refused.

    Use as ``with TransitionSender(cfg, "robot0") as tx: tx.send(transition, version)``.
    """

    def __init__(self, cfg: TransportConfig, actor_id: str, port: int | None = None,
                 outbox_dir: str | Path | None = None, expected: Mapping[str, Any] | None = None,
                 use_learner_spec: bool = True) -> None:
        if not wire._is_str(actor_id):
            raise ValueError(f"actor_id must be a non-empty string of <= {wire.MAX_NAME_LEN} chars")
        self.cfg = cfg
        self.actor_id = actor_id
        self.expected = wire.array_spec(expected) if expected is not None else None
        self.port = cfg.transitions_port if port is None else port
        self.outbox_dir = outbox_dir if outbox_dir is not None else cfg.outbox_dir
        self.rejections = Rejections(f"transition sender {actor_id}", log)
        self.stream = 0
        self._seq = 0
        self._lock = threading.Lock()  # the queue to the I/O thread and the next seq
        self._send_lock = threading.Lock()  # one send() at a time
        self._incoming: deque[tuple[Key, bytes]] = deque()
        self._full_error: str | None = None
        self._io_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outbox: Outbox | None = None
        self._last_rx: float | None = None
        self._learner_id: int | None = None
        self._counts = {"sent": 0, "resent": 0, "acked": 0, "pings": 0, "reconnects": 0, "unreadable": 0,
                        "refused": 0, "socket_resets": 0, "dropped_at_close": 0, "messages": 0}
        self._learner_batch = 1  # frames per message the learner accepts (from its pongs)
        self._refused_reasons: set[str] = set()
        self.learner_spec: tuple[wire.Spec, wire.Spec] | None = None  # (required, optional), from the pong
        self.use_learner_spec = use_learner_spec
        self._incoming_bytes = 0

    # ------------------------------------------------------------------ life cycle
    def start(self) -> TransitionSender:
        """Reload the outbox, connect and start the I/O thread. Returns self."""
        if self._thread is not None:
            raise RuntimeError("sender already started")
        self._outbox = Outbox(self.outbox_dir, self.cfg.outbox_memory_messages,
                              self.cfg.outbox_max_disk_bytes, self.cfg.max_message_bytes,
                              memory_bytes=self.cfg.outbox_memory_bytes)
        # Streams are microseconds since the epoch: unique per incarnation, increasing.
        newest = max((k[0] for k in self._outbox.keys()), default=0)
        self.stream = max(time.time_ns() // 1000, newest + 1)
        self.routing_id = routing_id(self.outbox_dir, f"transition sender {self.actor_id}")
        self._ctx = zmq.Context()
        try:
            self._sock = self._open_socket()
        except Exception:
            self._ctx.term()
            raise
        self._write_ahead = self.cfg.outbox_memory_messages == 0 and self._outbox.directory is not None
        self._unsent: deque[Key] = deque(self._outbox.keys())
        self._in_flight: OrderedDict[Key, float] = OrderedDict()
        self._requeued: set[Key] = set()
        self._held: set[Key] = set()  # received by the learner, awaiting its final ack
        self._start_io_thread(f"hilr-tx-{self.actor_id}")
        return self

    def _open_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self.routing_id)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # never queue for a learner that is not connected
        sock.setsockopt(zmq.SNDHWM, 2 * self.cfg.max_in_flight + 16)
        sock.setsockopt(zmq.MAXMSGSIZE, 1024 * 1024)  # acks and pongs are tiny
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        try:
            apply_client(sock, self.cfg.curve)
            sock.connect(self.cfg.connect_endpoint(self.port))
        except Exception:
            sock.close(0)
            raise
        return sock

    def _reset_socket(self, poller: zmq.Poller, silent_s: float) -> None:
        """Close and reopen the socket (libzmq gives up on a connection after a protocol
        error, e.g. an oversized frame, and never reconnects by itself)."""
        self._counts["socket_resets"] += 1
        log.warning("transition sender %s: nothing valid from the learner for %.1f s; reconnecting "
                    "(#%d)", self.actor_id, silent_s, self._counts["socket_resets"])
        poller.unregister(self._sock)
        self._sock.close(0)
        self._sock = self._open_socket()
        poller.register(self._sock, zmq.POLLIN)
        self._requeue_in_flight("socket reopened")

    def close(self, flush_timeout_s: float = 0.0) -> None:
        """Optionally wait for acks, stop the I/O thread and persist the outbox to disk.

        Without an ``outbox_dir``, transitions still unacknowledged are lost: their number
        is logged as an error and kept in ``stats()["dropped_at_close"]``.

        Args:
            flush_timeout_s: wait up to this long for every transition to be acknowledged.
        """
        if self._thread is None:
            return
        if flush_timeout_s > 0:
            self.flush(flush_timeout_s)
        self._stop_io_thread()
        self._drain_incoming()
        written = self._outbox.close()
        left = len(self._outbox) + len(self._incoming)
        if left and self.outbox_dir:
            log.info("transition sender %s: %d unacknowledged transitions kept (%d written now) in %s",
                     self.actor_id, left, written, self.outbox_dir)
        elif left:
            self._counts["dropped_at_close"] = left
            log.error("transition sender %s: closing drops %d transitions accepted by send() but not "
                      "acknowledged by the learner (no outbox_dir; flush() first or set one)", self.actor_id, left)
        self._release()

    # ------------------------------------------------------------------ caller API
    def send(self, transition: Mapping[str, Any], policy_version: int) -> int:
        """Queue one transition; returns its sequence number. Never waits on the network.

        Args:
            transition: name -> numpy array (numbers/bool; nested dicts allowed, e.g.
                ``{"obs": {"state": (D,) float32, "front": (H, W, 3) uint8}, "action": (7,)}``).
            policy_version: version of the weights that produced the action.

        Raises:
            OutboxFull: the learner has been gone so long that RAM and disk limits are hit.
            TypeError, ValueError: an array that cannot travel, or a message too large.
            wire.SpecMismatch, wire.NonFinite: with ``expected``: wrong arrays, or NaN/inf.
        """
        if self._thread is None:
            raise RuntimeError("call start() before send()")
        if self._io_error is not None:
            raise RuntimeError(f"transition sender {self.actor_id}: {self._io_error}")
        if self._full_error is not None:
            raise OutboxFull(self._full_error)
        if self._incoming_bytes > self.cfg.outbox_memory_bytes:  # the I/O thread cannot keep up
            raise OutboxFull(f"{self._incoming_bytes} bytes of transitions wait for the outbox "
                             f"(> outbox_memory_bytes {self.cfg.outbox_memory_bytes})")
        if self.expected is not None or self.learner_spec is not None:
            flat = {k: np.asarray(v) for k, v in wire.flatten(transition).items()}
            flat = {k: v.astype(v.dtype.newbyteorder("<")) if v.dtype.byteorder == ">" else v for k, v in flat.items()}
            if self.expected is not None:
                wire.check_arrays(flat, self.expected)
            if self.learner_spec is not None:
                try:
                    wire.check_arrays(conform_floats(flat, *self.learner_spec), self.learner_spec[0], finite=False,
                                      optional=self.learner_spec[1])
                except wire.SpecMismatch as exc:
                    raise wire.SpecMismatch(
                        f"transition sender {self.actor_id}: this transition does not match the spec the learner "
                        f"stated ({exc}); the learner would refuse it. Give the actor and the learner the same "
                        f"observation and action config{features_hint(flat, self.learner_spec[0])}.") from None
        # Callers take turns (seq order = queue order), but the I/O thread's lock is held
        # only to queue the frame, never during the encode: the copy of two images would
        # otherwise stall the I/O thread for as long.
        with self._send_lock:
            seq = self._seq
            fields = {"actor": self.actor_id, "stream": self.stream, "seq": seq,
                      "policy_version": int(policy_version), "sent_unix": time.time()}
            data = wire.encode("transition", fields, transition)
            if len(data) > self.cfg.max_message_bytes:
                raise ValueError(f"transition of {len(data)} bytes > max_message_bytes {self.cfg.max_message_bytes}")
            if self._write_ahead:  # on disk (fsynced) before send() returns: a kill -9 loses nothing
                self._outbox.write_ahead((self.stream, seq), data)
            with self._lock:
                self._seq += 1
                # Wake the I/O thread only when the queue was empty: it takes everything
                # queued before it sees the queue empty again (a syscall saved per send()).
                wake = not self._incoming
                self._incoming.append(((self.stream, seq), data))
                self._incoming_bytes += len(data)
        if wake:
            self._waker.wake()
        return seq

    @property
    def learner_alive(self) -> bool:
        """True if the learner answered within ``liveness_timeout_s``."""
        last = self._last_rx
        return last is not None and time.monotonic() - last < self.cfg.liveness_timeout_s

    @property
    def pending(self) -> int:
        """Transitions not yet acknowledged (RAM + disk + just queued)."""
        return len(self._incoming) + (len(self._outbox) if self._outbox is not None else 0)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every transition is acknowledged; True if so within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while self.pending:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def stats(self) -> dict[str, Any]:
        """Counters: sent (first sends), resent (after a timeout or a learner restart), acked,
        pending, in_flight, spilled_bytes, reloaded, rejected, learner_alive, reconnects."""
        ob = self._outbox
        last = self._last_rx
        return {**self._counts, "pending": self.pending, "in_flight": len(getattr(self, "_in_flight", ())),
                "held": len(getattr(self, "_held", ())),
                "spilled_bytes": ob.disk_bytes if ob else 0, "reloaded": ob.reloaded if ob else 0,
                "rejected": self.rejections.counts(), "learner_alive": self.learner_alive,
                "since_learner_s": None if last is None else time.monotonic() - last,
                "outbox_full": self._full_error}

    # ------------------------------------------------------------------ I/O thread
    def _drain_incoming(self) -> None:
        while self._incoming:
            key, data = self._incoming[0]
            try:
                if self._write_ahead:
                    self._outbox.adopt(key, len(data))
                else:
                    self._outbox.put(key, data)
            except OutboxFull as exc:
                if self._full_error is None:
                    log.error("transition sender %s: %s", self.actor_id, exc)
                self._full_error = str(exc)
                return
            with self._lock:
                self._incoming.popleft()
                self._incoming_bytes -= len(data)
            self._unsent.append(key)
        self._full_error = None

    def _floors(self) -> list[list[int]]:
        """Per stream with unacknowledged transitions (and the current one): the lowest seq
        not yet finally acknowledged. Everything below it is settled and never re-sent, so
        the learner may forget it (this keeps its de-dup state small after any gap)."""
        floors: dict[int, int] = {}
        for stream, seq in self._outbox.keys():
            if seq < floors.get(stream, seq + 1):
                floors[stream] = seq
        with self._lock:  # no seq can be assigned and not yet queued while we look
            pending = [key[1] for key, _ in self._incoming if key[0] == self.stream]
            next_seq = self._seq
        floors[self.stream] = min([floors.get(self.stream, next_seq), next_seq, *pending])
        return [[s, f] for s, f in sorted(floors.items())[-1024:]]

    def _frame_of(self, key: Key) -> bytes | None:
        """The outbox frame, or None if its spill file became unreadable (then dropped, loudly)."""
        try:
            return self._outbox.get(key)
        except OSError as exc:
            log.error("transition sender %s: spilled transition %s unreadable (%s); dropping it",
                      self.actor_id, key, exc)
            self._outbox.remove(key)
            self._counts["unreadable"] += 1
            return None

    def _send_frame(self, data: bytes) -> bool:
        try:
            self._sock.send(data, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def _send_frames(self, frames: list[bytes]) -> bool:
        """One message of one or more transition frames; False if the socket would block."""
        try:
            self._sock.send_multipart(frames, zmq.NOBLOCK, copy=False)
            return True
        except zmq.Again:
            return False

    def _requeue_in_flight(self, why: str) -> None:
        if self._in_flight or self._held:
            log.info("transition sender %s: %s; re-sending %d unacknowledged", self.actor_id, why,
                     len(self._in_flight) + len(self._held))
            self._unsent.extendleft(reversed(list(self._in_flight)))
            self._requeued.update(self._in_flight)
            self._in_flight.clear()
        if self._held:  # the learner that held them is gone: they must go again
            held = sorted(self._held)
            self._unsent.extendleft(reversed(held))
            self._requeued.update(held)
            self._held.clear()

    def _on_reply(self, msg: wire.Message) -> None:
        now = time.monotonic()
        was_alive = self.learner_alive
        learner = msg.fields["learner"]
        self._last_rx = now
        if self._learner_id is not None and learner != self._learner_id:
            self._counts["reconnects"] += 1
            self._requeue_in_flight("learner restarted")
        elif not was_alive and self._learner_id is not None:
            self._counts["reconnects"] += 1
            self._requeue_in_flight("learner is back")
        self._learner_id = learner
        if msg.kind == "pong" and "spec" in msg.fields and self.use_learner_spec:
            self._on_learner_spec(msg.fields["spec"])
        if msg.kind == "pong":  # the learner states how many frames per message it accepts
            batch = msg.fields.get("batch")
            self._learner_batch = min(batch, wire.MAX_BATCH) if type(batch) is int and batch >= 1 else 1
        if msg.kind == "ack":
            stream = msg.fields["stream"]
            refused = msg.fields.get("rejected")
            if refused is not None:
                self._on_refused(stream, msg.fields["ranges"], str(refused)[:400])
                return
            for lo, hi in msg.fields["ranges"]:
                keys = ((stream, s) for s in range(lo, hi + 1)) if hi - lo < 4096 else \
                    (k for k in self._outbox.stream_keys(stream) if lo <= k[1] <= hi)
                final = msg.fields["final"]
                for key in list(keys):
                    self._in_flight.pop(key, None)
                    if final:
                        self._held.discard(key)
                        if self._outbox.remove(key):
                            self._counts["acked"] += 1
                    elif key in self._outbox:
                        self._held.add(key)  # the learner has it; keep it until the final ack

    def _on_learner_spec(self, entries: Any) -> None:
        """Keep the transition spec the learner states in its pongs (ignored if malformed)."""
        try:
            self.learner_spec = parse_stated_spec(entries)
        except ValueError as exc:
            self.rejections.reject("bad_spec", f"the learner's stated spec is malformed: {exc}")

    def _on_refused(self, stream: int, ranges: list[list[int]], why: str) -> None:
        """The learner refused these transitions (another layout, NaN): drop them."""
        n = 0
        for lo, hi in ranges[:16]:
            keys = [(stream, s) for s in range(lo, hi + 1)] if hi - lo < 4096 else \
                [k for k in self._outbox.stream_keys(stream) if lo <= k[1] <= hi]
            for key in keys:
                self._in_flight.pop(key, None)
                self._held.discard(key)
                n += int(self._outbox.remove(key))
        self._counts["refused"] += n
        reason = why.split(":", 1)[0]
        if reason not in self._refused_reasons:  # once per reason, loudly; counted always
            self._refused_reasons.add(reason)
            log.error("transition sender %s: the LEARNER REFUSED a transition (%s); this actor's transitions "
                      "do not match what the learner expects, check that both use the same observation "
                      "and action config. Refused transitions are dropped and counted (stats()['refused']).",
                      self.actor_id, why)

    def _receive(self) -> None:
        for _ in range(10_000):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            if len(frames) != 1:
                self.rejections.reject("multipart", f"{len(frames)} frames, expected 1")
                continue
            try:
                msg = wire.decode(frames[0].buffer, self.cfg.max_message_bytes, expect={"ack", "pong"})
            except wire.WireError as exc:
                self.rejections.from_error(exc)
                continue
            self._on_reply(msg)

    def _pump(self, now: float) -> None:
        if not self.learner_alive:
            return  # nothing goes out but pings until the learner answers
        while self._in_flight:  # oldest first: re-send what timed out
            key, sent_at = next(iter(self._in_flight.items()))
            if now - sent_at < self.cfg.ack_timeout_s:
                break
            frame = self._frame_of(key) if key in self._outbox else None
            if frame is None:
                self._in_flight.pop(key)
                continue
            if not self._send_frame(frame):
                return
            self._in_flight[key] = now
            self._in_flight.move_to_end(key)
            self._counts["resent"] += 1
        while self._unsent and len(self._in_flight) < self.cfg.max_in_flight:
            # Under load several transitions wait: send them as one multipart message
            # (one frame each, zero-copy from the outbox) so that the per-message costs on
            # both sides (syscalls, wake-ups, GIL hand-offs) are paid once per batch.
            room = min(self._batch_limit(), self.cfg.max_in_flight - len(self._in_flight))
            keys: list[Key] = []
            frames: list[bytes] = []
            size = 0
            while self._unsent and len(keys) < room:
                key = self._unsent[0]
                frame = None if key in self._in_flight or key in self._held or key not in self._outbox \
                    or key in keys else self._frame_of(key)
                if frame is None:
                    self._unsent.popleft()
                    self._requeued.discard(key)
                    continue
                if keys and size + len(frame) > self.cfg.max_message_bytes:
                    break  # a batch never holds more bytes than one largest frame
                self._unsent.popleft()
                keys.append(key)
                frames.append(frame)
                size += len(frame)
            if not keys:
                return
            if not self._send_frames(frames):
                self._unsent.extendleft(reversed(keys))  # not sent: they stay first in line
                return
            for key in keys:
                self._in_flight[key] = now
                if key in self._requeued:
                    self._requeued.discard(key)
                    self._counts["resent"] += 1
                else:
                    self._counts["sent"] += 1
            self._counts["messages"] += 1

    def _batch_limit(self) -> int:
        """Transitions per message: ``cfg.max_batch``, at most what the learner stated in its
        pongs (1 until it has: a learner that states nothing takes only single frames)."""
        return max(1, min(self.cfg.max_batch, self._learner_batch))

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._waker.fileno(), zmq.POLLIN)
        next_ping = 0.0
        failures = 0
        reconnect = ReconnectTimer(self.cfg.reconnect_after_s)
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if reconnect.due(self._last_rx, now):
                    self._reset_socket(poller, reconnect.silent_s(self._last_rx, now))
                    reconnect.reset(now)
                if now >= next_ping:
                    ping = wire.encode("ping", {"actor": self.actor_id, "floors": self._floors()})
                    if self._send_frame(ping):
                        self._counts["pings"] += 1
                    next_ping = now + self.cfg.heartbeat_interval_s
                # Sleep until the next ping, a wake-up, a reply, or 50 ms (ack timeouts).
                timeout_ms = max(0.0, min(next_ping - now, 0.05)) * 1000
                poller.poll(timeout_ms)
                self._waker.drain()
                self._receive()
                self._drain_incoming()
                self._pump(time.monotonic())
                failures = 0
            except zmq.ContextTerminated:
                return
            except Exception as exc:  # e.g. a full disk: the outbox still holds everything; retry
                failures += 1
                if failures <= 3 or failures % 100 == 0:
                    log.exception("transition sender %s: I/O error #%d; retrying", self.actor_id, failures)
                if failures >= 1000:  # ~100 s of constant failure: tell the actor loop
                    self._io_error = f"I/O thread gave up after {failures} errors: {exc!r}"
                    return
                time.sleep(0.1)
