"""Weights, learner -> actors: latest-wins PUB/SUB with CONFLATE, tagged with a version.

Only what the caller passes travels: the learner passes the trainable residual weights
(``{name: np.ndarray}``), never the frozen encoder. Both sockets keep at most one message
queued (``ZMQ_CONFLATE``), so a slow actor always gets the newest weights and never a
backlog. The publisher re-sends the latest weights every ``weights_republish_s`` so an
actor that starts (or reconnects) late gets them without waiting for the next update.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.auth import ServerAuth, apply_client
from learners.transport.common import LearnerSocketOwner, Rejections, Waker, random_id
from learners.transport.config import TransportConfig

log = logging.getLogger(__name__)


def trainable_numpy(module: Any) -> dict[str, np.ndarray]:
    """``{name: float array}`` of a ``torch.nn.Module``'s trainable parameters only.

    Parameters with ``requires_grad=False`` (a frozen encoder, the frozen BC base policy)
    are left out, so they never travel. Arrays are CPU copies, safe to publish.
    """
    return {name: p.detach().cpu().numpy().copy() for name, p in module.named_parameters() if p.requires_grad}


class WeightPublisher(LearnerSocketOwner):
    """Learner side: publishes versioned weights to every subscribed actor.

    Args:
        cfg: transport config.
        port: port to bind (default ``cfg.weights_port``; 0 = a free port, see :attr:`port`).
    """

    def __init__(self, cfg: TransportConfig, port: int | None = None) -> None:
        self.cfg = cfg
        self.requested_port = cfg.weights_port if port is None else port
        self.port: int | None = None
        self.version: int | None = None
        self.published = 0
        self.instance_id = random_id()
        self.rejections = Rejections("weight publisher", log)  # refused CURVE clients
        self._latest: bytes | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WeightPublisher:
        """Bind and start the sending thread. Returns self."""
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._ctx = zmq.Context()
        self._auth = ServerAuth(self._ctx, self.cfg.curve, self.rejections)
        sock = self._ctx.socket(zmq.PUB)
        try:
            self._auth.start()
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.CONFLATE, 1)
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
        self._waker = Waker()
        self._thread = threading.Thread(target=self._run, name="hilr-weights-pub", daemon=True)
        self._thread.start()
        return self

    def publish(self, version: int, weights: Mapping[str, Any]) -> int:
        """Publish ``weights`` as ``version`` (copied now; returns the frame size in bytes).

        Args:
            version: strictly greater than the previous published version.
            weights: parameter name -> array (e.g. the residual actor's trainable
                ``state_dict`` as numpy).

        Raises:
            ValueError: a non-increasing version or a frame over ``max_message_bytes``.
        """
        if self._thread is None:
            raise RuntimeError("call start() before publish()")
        version = int(version)
        if self.version is not None and version <= self.version:
            raise ValueError(f"weights version {version} is not above the last published {self.version}")
        data = wire.encode("weights", {"version": version, "learner": self.instance_id}, weights)
        if len(data) > self.cfg.max_message_bytes:
            raise ValueError(f"weights frame of {len(data)} bytes > max_message_bytes {self.cfg.max_message_bytes}")
        with self._lock:
            self._latest = data
            self.version = version
        self._waker.wake()
        return len(data)

    def _run(self) -> None:
        sent: bytes | None = None
        next_send = 0.0
        while not self._stop.is_set():
            with self._lock:
                latest = self._latest
            now = time.monotonic()
            if latest is not None and (latest is not sent or now >= next_send):
                try:
                    self._sock.send(latest, zmq.NOBLOCK, copy=False)
                    self.published += 1
                except zmq.ZMQError as exc:
                    log.warning("weight publisher: send failed (%s)", exc)
                sent, next_send = latest, now + self.cfg.weights_republish_s
            timeout = max(0.0, next_send - time.monotonic()) if latest is not None else 1.0
            zmq.select([self._waker.fileno()], [], [], timeout)
            self._waker.drain()


class WeightSubscriber:
    """Actor side: returns the newest valid weights without ever blocking.

    Use from one thread (the actor loop calls :meth:`poll_latest` between steps). Every
    message is validated before it is returned: one frame (multipart is refused), the wire
    format, the expected names/dtypes/shapes (see :meth:`expect`), finite values, every
    ``|w| <= cfg.weights_max_abs``, and a version above the last one accepted from the same
    learner instance and at most :attr:`MAX_VERSION_JUMP` above it. A refused message is
    counted in :attr:`rejections` (and logged) and the actor keeps its weights. When
    nothing valid arrives for ``cfg.reconnect_after_s`` the socket is closed and reopened
    (libzmq never reconnects after a protocol error such as an oversized frame), with a
    logged warning, doubling the wait up to 30 s; :attr:`reconnects` counts it.

    Args:
        cfg: transport config.
        port: learner weights port (default ``cfg.weights_port``).
        expected: optional spec (``wire.array_spec(residual_weights)``): weights with other
            names, dtypes or shapes are rejected. Weights holding NaN/inf are always rejected.
    """

    MAX_VERSION_JUMP = 1_000_000  # a learner publishes versions 1, 2, 3, ...: a jump this big is forged
    MAX_VERSION = 2**53  # one version per publish: a learner never gets near this
    MAX_LEARNERS = 16  # learner instances whose last version is remembered

    def __init__(self, cfg: TransportConfig, port: int | None = None,
                 expected: Mapping[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.expected = wire.array_spec(expected) if expected is not None else None
        self.port = cfg.weights_port if port is None else port
        self.version: int | None = None
        self.received = 0
        self.stale = 0
        self.reconnects = 0
        self.learner_id: int | None = None
        self.last_rx: float | None = None
        self.rejections = Rejections("weight subscriber", log)
        self._sock: zmq.Socket | None = None
        self._versions: OrderedDict[int, int] = OrderedDict()  # learner instance -> last accepted version

    def expect(self, weights: Mapping[str, Any]) -> None:
        """Refuse weights whose names, dtypes or shapes differ from ``weights`` (e.g. the
        actor's own ``agent.trainable_state()``) from now on."""
        self.expected = wire.array_spec(weights)

    def start(self) -> WeightSubscriber:
        """Connect (returns at once; the connection completes in the background)."""
        self._ctx = zmq.Context()
        try:
            self._sock = self._open_socket()
        except Exception:
            self._ctx.term()
            raise
        self._last_reset = time.monotonic()
        self._reset_wait = self.cfg.reconnect_after_s
        return self

    def _open_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            # No CONFLATE here: libzmq aborts the process on a multipart message into a
            # conflating socket. A short queue, drained to the newest, bounds memory instead.
            sock.setsockopt(zmq.RCVHWM, 4)
            sock.setsockopt(zmq.MAXMSGSIZE, 2 * self.cfg.max_message_bytes + 65536)
            sock.setsockopt(zmq.RECONNECT_IVL, 100)
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            apply_client(sock, self.cfg.curve)
            sock.connect(self.cfg.connect_endpoint(self.port))
        except Exception:
            sock.close(0)
            raise
        return sock

    def _maybe_reconnect(self) -> None:
        now = time.monotonic()
        heard = max(self.last_rx or 0.0, self._last_reset)
        if self.last_rx is not None and self.last_rx > self._last_reset:
            self._reset_wait = self.cfg.reconnect_after_s  # heard since the last reset
        if now - heard < self._reset_wait:
            return
        self.reconnects += 1
        log.warning("weight subscriber: nothing valid from the learner for %.1f s; reconnecting (#%d)",
                    now - heard, self.reconnects)
        self._sock.close(0)
        self._sock = self._open_socket()
        self._last_reset = now
        self._reset_wait = min(2 * self._reset_wait, max(30.0, self.cfg.reconnect_after_s))

    def _check(self, frames: list) -> wire.Message:
        if len(frames) != 1:
            raise wire.SchemaError(f"{len(frames)} frames, expected 1")
        msg = wire.decode(frames[0].buffer, self.cfg.max_message_bytes, expect={"weights"})
        wire.check_arrays(msg.arrays, self.expected, max_abs=self.cfg.weights_max_abs)
        last = self._versions.get(msg.fields["learner"])
        if msg.fields["version"] >= self.MAX_VERSION:
            raise VersionJump(f"version {msg.fields['version']} >= {self.MAX_VERSION}: no learner gets there")
        if last is not None and msg.fields["version"] > last + self.MAX_VERSION_JUMP:
            raise VersionJump(f"version {msg.fields['version']} jumps from {last} (> {self.MAX_VERSION_JUMP})")
        return msg

    def poll_latest(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest weights not yet returned, or None. Never blocks.

        Returns:
            ``(version, {name: array})`` (arrays read-only) when a version newer than the
            last one accepted from that learner instance arrived; None otherwise. Invalid
            frames are counted (``rejections``) and skipped, republished or older versions
            counted in ``stale``; a restarted learner (new instance id) starts its own
            version sequence.
        """
        if self._sock is None:
            raise RuntimeError("call start() before poll_latest()")
        newest = None
        for _ in range(64):  # a short queue: keep only the newest
            try:
                frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            try:
                msg = self._check(frames)
            except wire.WireError as exc:
                self.rejections.from_error(exc)
                continue
            self.last_rx = time.monotonic()
            version, learner = msg.fields["version"], msg.fields["learner"]
            last = self._versions.get(learner)
            if last is not None and version <= last:
                self.stale += 1  # a republish of the current version, or an old one
                continue
            if learner != self.learner_id and self.learner_id is not None:
                log.warning("weight subscriber: weights from another learner instance (restarted?): "
                            "version %d after %s", version, self.version)
            self._versions[learner] = version
            self._versions.move_to_end(learner)
            while len(self._versions) > self.MAX_LEARNERS:
                self._versions.popitem(last=False)
            newest = (version, msg.arrays)
            self.learner_id = learner
        if newest is not None:
            self.version = newest[0]
            self.received += 1
        else:
            self._maybe_reconnect()
        return newest

    def stats(self) -> dict[str, Any]:
        """Counters: version, received, stale, reconnects, rejected by reason,
        ``since_rx_s`` (seconds since the last valid message, None before the first)."""
        return {"version": self.version, "received": self.received, "stale": self.stale,
                "reconnects": self.reconnects, "rejected": self.rejections.counts(),
                "since_rx_s": None if self.last_rx is None else time.monotonic() - self.last_rx}

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close(0)
            self._ctx.term()
            self._sock = None

    def __enter__(self) -> WeightSubscriber:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class VersionJump(wire.WireError):
    """A weights version absurdly far above the last one from the same learner (forged)."""

    reason = "version_jump"
