"""Learner side of the transition stream: ROUTER socket, validation, de-duplication, acks.

A background I/O thread reads the socket, validates every frame (anything invalid is
counted in :attr:`TransitionReceiver.rejections` with a logged reason, and the loop goes
on), answers pings, de-duplicates by ``(actor, stream, seq)`` and queues new transitions.
A message may carry a batch of up to :data:`wire.MAX_BATCH` transition frames (the limit
stated in every pong), each handled as if it came alone. The learner is woken once per
read pass, and acks go out once per pass, as seq ranges per stream.
The learner takes them with :meth:`TransitionReceiver.poll`. No exception raised by one
message ever leaves the receive loop: it is counted (reason ``internal``) and the loop
moves on.

Every stream belongs to the connection (ZMQ routing id) that first sent on it. The
sender sets its own unguessable routing id (kept in its outbox directory, so a restarted
actor still owns the streams it re-sends), so a peer that is not that connection, even
one with an authorised CURVE key, cannot add transitions to the stream, move its floors
(``not_owner``) or receive its acks. A transition that fails validation (``expected``)
is answered with a final ack carrying ``rejected`` (the sender logs it once, loudly and
drops it) and leaves no state behind. Acknowledgements go out when
the learner takes a transition (``ack_policy="deliver"``) or only at
:meth:`TransitionReceiver.commit` (``ack_policy="commit"``: call it after a checkpoint,
with :meth:`state_dict` saved in that checkpoint, so a learner killed at any moment loses
nothing and counts nothing twice after resuming). When its queue is full the receiver
leaves new transitions unacknowledged (the actor re-sends them later) but keeps answering
pings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.auth import ServerAuth
from learners.transport.common import LearnerSocketOwner, Rejections, SeqSet, random_id, to_ranges
from learners.transport.config import TransportConfig
from learners.transport.spec import conform_floats, stated_spec

log = logging.getLogger(__name__)

StreamKey = tuple[str, int]  # (actor id, stream)


class CheckFailed(wire.WireError):
    """A transition that matches the spec but fails the receiver's ``check`` (e.g. features made
    by another backbone)."""

    reason = "check"


@dataclass
class ReceivedTransition:
    """One transition as the learner receives it.

    Attributes:
        actor_id: the sending actor's name.
        stream: the actor incarnation's stream id (microseconds since the epoch at start).
        seq: sequence number within the stream (0, 1, 2, ...).
        policy_version: version of the weights that produced the action.
        data: the arrays, nested as the actor sent them (read-only views; copy to modify).
        sent_unix: the actor's wall clock at send time (s), or None.
        nbytes: size of the frame on the wire.
    """

    actor_id: str
    stream: int
    seq: int
    policy_version: int
    data: dict[str, Any]
    sent_unix: float | None
    nbytes: int


@dataclass
class _StreamState:
    seen: SeqSet  # accepted by the I/O thread (queued or delivered)
    delivered: SeqSet  # handed to the learner by poll()
    committed: SeqSet  # acknowledged (deliver policy: == delivered)


class TransitionReceiver(LearnerSocketOwner):
    """Receives transitions from any number of actors on one ROUTER socket.

    Args:
        cfg: transport config.
        port: port to bind (default ``cfg.transitions_port``; 0 = a free port, see :attr:`port`).
        expected: optional spec every transition must match exactly (names, dtypes, shapes;
            see :func:`wire.array_spec`, e.g. ``array_spec(example_transition)``, or
            :func:`learners.transport.spec.transition_spec`; float arrays of another width
            are converted to the spec's dtype). A transition that does not
            match, or holds NaN/inf in a float array, is rejected, counted, logged and
            acknowledged as consumed with the reason (so the actor does not re-send it
            forever and says why); it never reaches :meth:`poll`.
        optional: names that may also appear (checked like ``expected`` when present).
        check: optional last check of a transition's flat arrays (after the spec's), run on the
            I/O thread: a ``ValueError`` it raises refuses the transition like a spec mismatch
            (reason ``check``, its message sent to the actor), e.g. features made by another
            backbone (:meth:`learners.feature_cache.FeatureCache.check_digest`).
    """

    def __init__(self, cfg: TransportConfig, port: int | None = None,
                 expected: Mapping[str, Any] | None = None, optional: Mapping[str, Any] | None = None,
                 check: Callable[[Mapping[str, np.ndarray]], None] | None = None) -> None:
        self.cfg = cfg
        self.check = check
        self.expected = wire.array_spec(expected) if expected is not None else None
        self.optional = wire.array_spec(optional) if optional is not None else None
        self.requested_port = cfg.transitions_port if port is None else port
        self.port: int | None = None
        self.instance_id = random_id()
        self.rejections = Rejections("transition receiver", log)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # notified when transitions are queued
        self._queued_new = False  # set under the lock by the I/O thread, notified once per pass
        self._streams: dict[StreamKey, _StreamState] = {}
        self._routes: dict[StreamKey, bytes] = {}  # the owner (routing id) of each stream
        self._owned: dict[bytes, set[StreamKey]] = {}  # routing id -> its streams
        self._queue: deque[ReceivedTransition] = deque()
        self._queued_bytes = 0
        self._to_ack: list[tuple[StreamKey, int]] = []  # final acks
        self._to_hold: list[tuple[StreamKey, int]] = []  # "held" acks (queued, not yet final)
        self._uncommitted: list[tuple[StreamKey, int]] = []
        self._counts = {"received": 0, "duplicates": 0, "deferred": 0, "delivered": 0,
                        "acked": 0, "pings": 0, "bytes": 0}
        self._per_actor: dict[str, int] = {}
        self._last_seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle
    def start(self) -> TransitionReceiver:
        """Bind and start the I/O thread. Returns self."""
        if self._thread is not None:
            raise RuntimeError("receiver already started")
        self._ctx = zmq.Context()
        self._auth = ServerAuth(self._ctx, self.cfg.curve, self.rejections)
        sock = self._ctx.socket(zmq.ROUTER)
        try:
            self._auth.start()
            sock.setsockopt(zmq.LINGER, 0)
            # libzmq cuts off (and disconnects) only absurd frames; everything above
            # max_message_bytes up to that is read, rejected and counted here.
            sock.setsockopt(zmq.MAXMSGSIZE, 2 * self.cfg.max_message_bytes + 65536)
            sock.setsockopt(zmq.RCVHWM, 4 * self.cfg.max_in_flight)
            # an actor that reconnects with its own routing id takes over its old connection
            sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
            self._auth.apply(sock)
            sock.bind(self.cfg.bind_endpoint(self.requested_port))
        except Exception:
            sock.close(0)
            self._auth.stop()
            self._ctx.term()
            raise
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.port = int(self.endpoint.rsplit(":", 1)[1])
        self._sock = sock
        self._start_io_thread("hilr-rx")
        log.info("transition receiver listening on %s (curve %s)", self.endpoint,
                 "on" if self.cfg.curve.enabled else "off")
        return self

    # ------------------------------------------------------------------ learner API
    def poll(self, max_items: int | None = None, timeout_s: float = 0.0) -> list[ReceivedTransition]:
        """Take queued transitions (oldest first), waiting up to ``timeout_s`` for the first.

        Args:
            max_items: at most this many (None: all queued).
            timeout_s: 0 returns at once.

        Returns:
            New (de-duplicated) transitions; each is acknowledged now (``deliver``) or at
            the next :meth:`commit` (``commit``).
        """
        out: list[ReceivedTransition] = []
        with self._ready:
            if not self._queue and timeout_s > 0:
                self._ready.wait_for(lambda: bool(self._queue), timeout_s)
            while self._queue and (max_items is None or len(out) < max_items):
                tr = self._queue.popleft()
                self._queued_bytes -= tr.nbytes
                key = (tr.actor_id, tr.stream)
                self._streams[key].delivered.add(tr.seq)
                if self.cfg.ack_policy == "deliver":
                    self._streams[key].committed.add(tr.seq)
                    self._to_ack.append((key, tr.seq))
                else:
                    self._uncommitted.append((key, tr.seq))
                out.append(tr)
            self._counts["delivered"] += len(out)
        if out and self.cfg.ack_policy == "deliver":
            self._waker.wake()
        return out

    def commit(self) -> int:
        """Acknowledge everything delivered so far (``ack_policy="commit"``). Returns how many."""
        with self._lock:
            pending, self._uncommitted = self._uncommitted, []
            for key, seq in pending:
                self._streams[key].committed.add(seq)
            self._to_ack.extend(pending)
        if pending:
            self._waker.wake()
        return len(pending)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able de-duplication state of what :meth:`poll` has delivered (for checkpoints)."""
        with self._lock:
            streams = [{"actor": a, "stream": s, "delivered": st.delivered.to_dict(),
                        **({"owner": self._routes[(a, s)].hex()} if (a, s) in self._routes else {})}
                       for (a, s), st in self._streams.items()]
        return {"format": "hilr-transport-dedup", "version": 1, "streams": streams}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`start`): those transitions count as
        delivered and committed, so re-sent copies are acknowledged and dropped."""
        if state.get("format") != "hilr-transport-dedup" or state.get("version") != 1:
            raise ValueError(f"not a hilr-transport-dedup v1 state: {state.get('format')!r} v{state.get('version')!r}")
        with self._lock:
            for item in state["streams"]:
                key = (str(item["actor"]), int(item["stream"]))
                d = item["delivered"]
                self._streams[key] = _StreamState(SeqSet.from_dict(d), SeqSet.from_dict(d), SeqSet.from_dict(d))
                if item.get("owner"):  # the actor reconnects with the same routing id
                    self._own(key, bytes.fromhex(item["owner"]))

    def stats(self) -> dict[str, Any]:
        """Counters: received (new), duplicates, deferred (queue full), delivered, acked (final),
        pings, bytes, queued, streams (de-dup entries held), per-actor transition counts,
        seconds since each actor's last transition (``actor_last_seen_s``), rejections by reason."""
        now = time.monotonic()
        with self._lock:
            return {**self._counts, "queued": len(self._queue), "streams": len(self._streams),
                    "per_actor": dict(self._per_actor),
                    "actor_last_seen_s": {a: now - t for a, t in self._last_seen.items()},
                    "rejected": self.rejections.counts()}

    # ------------------------------------------------------------------ I/O thread
    def _send(self, identity: bytes, data: bytes) -> None:
        try:
            self._sock.send_multipart([identity, data], zmq.NOBLOCK)
        except zmq.ZMQError:  # peer gone or its queue full: it will ask again
            pass

    def _refuse(self, identity: bytes, key: StreamKey, seq: int, exc: wire.WireError) -> None:
        """Count a transition that fails validation and answer it with a final ack that
        says why (the actor drops it and logs the reason once). It leaves no de-dup state:
        a re-sent copy is refused the same way, and the actor's floor moves past it."""
        self.rejections.from_error(exc)
        ack = wire.encode("ack", {"actor": key[0], "stream": key[1], "ranges": [[seq, seq]],
                                  "learner": self.instance_id, "final": True,
                                  "rejected": f"{exc.reason}: {str(exc)[:300]}"})
        self._send(identity, ack)

    def _on_transition(self, identity: bytes, msg: wire.Message) -> None:
        f = msg.fields
        key: StreamKey = (f["actor"], f["stream"])
        seq = f["seq"]
        with self._lock:
            owner = self._routes.get(key)
            n_streams = len(self._streams)
        if owner is not None and owner != identity:
            self.rejections.reject("not_owner", f"transition for {key} from a connection that does not own it")
            return
        try:
            arrays = conform_floats(msg.arrays, self.expected, self.optional)
            wire.check_arrays(arrays, self.expected, optional=self.optional)
            if self.check is not None:
                try:
                    self.check(arrays)
                except ValueError as exc:
                    if isinstance(exc, wire.WireError):
                        raise
                    raise CheckFailed(str(exc)) from None
            data = wire.unflatten(arrays)
        except wire.WireError as exc:
            self._refuse(identity, key, seq, exc)
            return
        if owner is None and key not in self._streams and n_streams >= self.cfg.max_streams:
            self.rejections.reject("too_many_streams", f"{n_streams} streams held; {key} must wait")
            return  # not acked: the actor re-sends it once old streams are settled and forgotten
        sent = f.get("sent_unix")
        with self._lock:
            if owner is None:
                self._own(key, identity)
            self._last_seen[f["actor"]] = time.monotonic()
            st = self._streams.get(key)
            if st is None:
                st = self._streams[key] = _StreamState(SeqSet(), SeqSet(), SeqSet())
            if seq in st.seen:
                self._counts["duplicates"] += 1
                if seq in st.committed:  # its final ack was lost: acknowledge again
                    self._to_ack.append((key, seq))
                else:  # queued or awaiting commit: tell the actor we hold it
                    self._to_hold.append((key, seq))
                return
            if len(self._queue) >= self.cfg.receive_queue or self._queued_bytes >= self.cfg.receive_queue_bytes:
                self._counts["deferred"] += 1  # not acked: the actor re-sends it later
                return
            st.seen.add(seq)
            self._to_hold.append((key, seq))
            self._queue.append(ReceivedTransition(
                actor_id=f["actor"], stream=f["stream"], seq=seq, policy_version=f["policy_version"],
                data=data, sent_unix=float(sent) if isinstance(sent, (int, float)) else None, nbytes=msg.nbytes))
            self._counts["received"] += 1
            self._counts["bytes"] += msg.nbytes
            self._queued_bytes += msg.nbytes
            self._per_actor[f["actor"]] = self._per_actor.get(f["actor"], 0) + 1
            self._queued_new = True

    def _receive(self) -> None:
        try:
            self._receive_some()
        finally:
            if self._queued_new:  # one wake-up per pass, not per transition (GIL hand-offs)
                with self._ready:
                    self._queued_new = False
                    self._ready.notify_all()

    def _receive_some(self) -> None:
        pong = None
        for _ in range(2000):
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            # [routing id, payload]; or, from a sender that read our pong's ``batch``,
            # [routing id, transition, transition, ...]: each frame a complete message.
            if not 2 <= len(frames) <= wire.MAX_BATCH + 1:
                self.rejections.reject("multipart", f"{len(frames) - 1} payload frames, expected 1 to {wire.MAX_BATCH}")
                continue
            identity = frames[0].bytes
            expect = self._EXPECT_ONE if len(frames) == 2 else self._EXPECT_BATCH
            for frame in frames[1:]:
                try:
                    # read-only views of the frame (zmq's buffer is writable): copy to change
                    msg = wire.decode(frame.buffer.toreadonly(), self.cfg.max_message_bytes, expect=expect)
                except wire.WireError as exc:
                    self.rejections.from_error(exc)
                    continue
                try:
                    if msg.kind == "ping":
                        self._counts["pings"] += 1
                        self._advance(identity, msg.fields["actor"], msg.fields["floors"])
                        pong = pong or wire.encode("pong", {"learner": self.instance_id, "batch": wire.MAX_BATCH,
                                                            **self._spec_field()})
                        self._send(identity, pong)
                    else:
                        self._on_transition(identity, msg)
                except Exception as exc:  # noqa: BLE001 - one message never stops the receiver
                    self.rejections.internal(exc)

    _EXPECT_ONE = frozenset(("transition", "ping"))
    _EXPECT_BATCH = frozenset(("transition",))  # a batch holds transitions only

    def _own(self, key: StreamKey, identity: bytes) -> None:
        """Record ``identity`` as the owner of stream ``key`` (call with the lock held)."""
        self._routes[key] = identity
        self._owned.setdefault(identity, set()).add(key)

    def _spec_field(self) -> dict[str, Any]:
        """The learner states its transition spec in every pong (the handshake): an actor
        with another layout learns it before it streams, see ``TransitionSender.learner_spec``."""
        return {"spec": stated_spec(self.expected, self.optional)} if self.expected is not None else {}

    def _advance(self, identity: bytes, actor: str, floors: list[list[int]]) -> None:
        """Forget seqs the actor says are settled (below its floors): de-dup state stays O(1).

        Only the connection that owns a stream may move its floor. When the ping lists all
        of the actor's streams (fewer than the sender's 1024 cap), a stream of this
        connection that is no longer listed and has nothing queued or uncommitted is
        forgotten altogether: the actor will never send it again."""
        spoofed = 0
        with self._lock:
            listed = set()
            for stream, floor in floors:
                key = (actor, stream)
                listed.add(key)
                st = self._streams.get(key)
                if st is None:
                    continue
                if self._routes.get(key, identity) != identity:
                    spoofed += 1
                    continue
                for seqset in (st.seen, st.delivered, st.committed):
                    seqset.advance(floor)
            if len(floors) < 1024:
                owned = self._owned.get(identity, set())
                for key in [k for k in owned if k[0] == actor and k not in listed]:
                    st = self._streams.get(key)
                    if st is not None and len(st.seen) == len(st.committed):
                        del self._streams[key]
                        del self._routes[key]
                        owned.discard(key)
                if not owned:
                    self._owned.pop(identity, None)
        if spoofed:
            self.rejections.reject("not_owner", f"ping from a connection that does not own {spoofed} of "
                                                f"{actor!r:.40}'s streams")

    def _flush_acks(self) -> None:
        with self._lock:
            to_ack, self._to_ack = self._to_ack, []
            to_hold, self._to_hold = self._to_hold, []
            routes = dict(self._routes)
        if to_hold and to_ack:  # a final ack in this pass makes the held ack for it moot
            finals = set(to_ack)
            to_hold = [item for item in to_hold if item not in finals]
        for final, items in ((False, to_hold), (True, to_ack)):
            by_stream: dict[StreamKey, list[int]] = {}
            for key, seq in items:
                by_stream.setdefault(key, []).append(seq)
            for key, seqs in by_stream.items():
                if key not in routes:
                    continue
                ack = wire.encode("ack", {"actor": key[0], "stream": key[1], "ranges": to_ranges(seqs),
                                          "learner": self.instance_id, "final": final})
                self._send(routes[key], ack)
                if final:
                    self._counts["acked"] += len(seqs)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._sock, zmq.POLLIN)
        poller.register(self._waker.fileno(), zmq.POLLIN)
        while not self._stop.is_set():
            try:
                poller.poll(100)
                self._waker.drain()
                self._receive()
                self._flush_acks()
            except Exception as exc:  # noqa: BLE001 - never let anything take the receiver down
                self.rejections.internal(exc)


def copy_arrays(tree: Any) -> Any:
    """Deep-copy the read-only received arrays of a (nested) transition into writable ones."""
    if isinstance(tree, dict):
        return {k: copy_arrays(v) for k, v in tree.items()}
    return np.array(tree, copy=True)
