"""Actor side of the weights: a SUB socket read by a background thread that keeps only
the newest valid weights, and reopens the socket when the learner goes silent.

Every message is validated before it can reach the actor: one frame (multipart is
refused), the wire format, the expected names/dtypes/shapes (:meth:`WeightSubscriber.expect`),
finite values, every ``|w| <= cfg.weights_max_abs``, and a version above the last one
accepted from the same learner instance (and not absurdly above it). A message whose
``model`` document (the learner's network settings) differs from the one the actor expects
skips only the names/dtypes/shapes check: the actor decides whether to build that model
(:mod:`learners.agent_model`), then loads the weights with every shape checked.

The socket does not use ``ZMQ_CONFLATE``: libzmq can abort the process on a multipart message into a
conflating socket, so the reader thread conflates instead (it drains the socket and keeps
the newest), which also keeps memory to one message whatever the actor does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.auth import apply_client
from learners.transport.common import IOThreadOwner, ReconnectTimer, Rejections
from learners.transport.config import TransportConfig

log = logging.getLogger(__name__)


class VersionJump(wire.WireError):
    """A weights version absurdly far above the last one from the same learner (forged)."""

    reason = "version_jump"


class WeightSubscriber(IOThreadOwner):
    """Actor side: returns the newest valid weights without ever blocking.

    The actor loop calls :meth:`poll_latest` between steps. A refused message is counted
    in :attr:`rejections` (and logged) and the actor keeps its weights. When nothing valid
    arrives for ``cfg.reconnect_after_s`` the socket is closed and reopened (libzmq never
    reconnects after a protocol error such as an oversized frame), with a logged warning
    and backoff; :attr:`reconnects` counts it.

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
        self.expected_model: dict[str, Any] | None = None
        self.model: dict[str, Any] | None = None  # the model document of the weights poll_latest returned last
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
        # version, learner, arrays, spec, model
        self._newest: tuple[int, int, dict[str, np.ndarray], Any, Any] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def expect(self, weights: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> None:
        """Refuse weights whose names, dtypes or shapes differ from ``weights`` (e.g. the
        actor's own ``agent.trainable_state()``) from now on.

        Args:
            weights: the layout to expect.
            model: the actor's own model document (:func:`learners.agent_model.model_doc`):
                weights stating another model pass through without the layout check, for
                the actor to adopt or refuse. None: every message gets the layout check.
        """
        self.expected = wire.array_spec(weights)
        self.expected_model = None if model is None else json.loads(json.dumps(model))

    # ------------------------------------------------------------------ life cycle
    def start(self) -> WeightSubscriber:
        """Connect and start the reader thread (returns at once)."""
        if self._thread is not None:
            raise RuntimeError("subscriber already started")
        self._ctx = zmq.Context()
        try:
            self._sock = self._open_socket()
        except Exception:
            self._ctx.term()
            raise
        self._start_io_thread("hilr-weights-sub")
        return self

    def close(self) -> None:
        """Stop the reader thread and close the socket."""
        if self._stop_io_thread():
            self._release()
            self._sock = None

    # ------------------------------------------------------------------ actor API
    def poll_latest(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The newest valid weights not yet returned, or None. Never blocks.

        Returns:
            ``(version, {name: array})`` (arrays read-only) when a version newer than the
            last one accepted from that learner instance arrived; None otherwise. A
            restarted learner (new instance id) starts its own version sequence. Its model
            document (None when the learner sent none) is then :attr:`model`.
        """
        if self._thread is None:
            raise RuntimeError("call start() before poll_latest()")
        with self._lock:
            newest, self._newest = self._newest, None
        if newest is None:
            return None
        version, learner, arrays, spec, model = newest
        if self.expected is not None and spec is not self.expected and self._layout_checked(model):
            # expect() came after it was read
            try:
                wire.check_arrays(arrays, self.expected, finite=False)
            except wire.WireError as exc:
                self.rejections.from_error(exc)
                return None
        if learner != self.learner_id and self.learner_id is not None:
            log.warning("weight subscriber: weights from another learner instance (restarted?): version %d after %s",
                        version, self.version)
        self.version, self.learner_id, self.model = version, learner, model
        self.received += 1
        return version, arrays

    def stats(self) -> dict[str, Any]:
        """Counters: version, received, stale, reconnects, rejected by reason,
        ``since_rx_s`` (seconds since the last valid message, None before the first)."""
        return {"version": self.version, "received": self.received, "stale": self.stale,
                "reconnects": self.reconnects, "rejected": self.rejections.counts(),
                "since_rx_s": None if self.last_rx is None else time.monotonic() - self.last_rx}

    # ------------------------------------------------------------------ reader thread
    def _open_socket(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RCVHWM, 2)  # the thread keeps the newest; nothing to queue
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

    def _layout_checked(self, model: dict[str, Any] | None) -> bool:
        """Whether weights stating ``model`` get the names/dtypes/shapes check: not when they
        state another model than the actor's (it adopts or refuses them itself)."""
        return model is None or self.expected_model is None or model == self.expected_model

    @staticmethod
    def _model(fields: Mapping[str, Any]) -> dict[str, Any] | None:
        text = fields.get("model")
        if text is None:
            return None
        if not isinstance(text, str) or len(text) > wire.MAX_MODEL_BYTES:
            raise wire.SchemaError(f"weights field 'model' must be JSON text of <= {wire.MAX_MODEL_BYTES} bytes")
        try:
            model = json.loads(text)
        except ValueError as exc:
            raise wire.SchemaError(f"weights field 'model' is not JSON: {exc}") from None
        if not isinstance(model, dict):
            raise wire.SchemaError("weights field 'model' is not a JSON object")
        return model

    def _check(self, frames: list) -> tuple[wire.Message, dict[str, Any] | None]:
        if len(frames) != 1:
            raise wire.SchemaError(f"{len(frames)} frames, expected 1")
        msg = wire.decode(frames[0].buffer, self.cfg.max_message_bytes, expect={"weights"})
        model = self._model(msg.fields)
        spec = self.expected if self._layout_checked(model) else None
        wire.check_arrays(msg.arrays, spec, max_abs=self.cfg.weights_max_abs)
        version, last = msg.fields["version"], self._versions.get(msg.fields["learner"])
        if version >= self.MAX_VERSION:
            raise VersionJump(f"version {version} >= {self.MAX_VERSION}: no learner gets there")
        if last is not None and version > last + self.MAX_VERSION_JUMP:
            raise VersionJump(f"version {version} jumps from {last} (> {self.MAX_VERSION_JUMP})")
        return msg, model

    def _take(self, frames: list) -> None:
        spec = self.expected
        try:
            msg, model = self._check(frames)
        except wire.WireError as exc:
            self.rejections.from_error(exc)
            return
        self.last_rx = time.monotonic()
        version, learner = msg.fields["version"], msg.fields["learner"]
        last = self._versions.get(learner)
        if last is not None and version <= last:
            self.stale += 1  # a republish of the current version, or an old one
            return
        self._versions[learner] = version
        self._versions.move_to_end(learner)
        while len(self._versions) > self.MAX_LEARNERS:
            self._versions.popitem(last=False)
        with self._lock:
            self._newest = (version, learner, msg.arrays, spec, model)

    def _run(self) -> None:
        reconnect = ReconnectTimer(self.cfg.reconnect_after_s)
        while not self._stop.is_set():
            try:
                zmq.select([self._sock, self._waker.fileno()], [], [], 0.1)
                self._waker.drain()
                for _ in range(1000):
                    try:
                        frames = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    self._take(frames)
                now = time.monotonic()
                if reconnect.due(self.last_rx, now):
                    self.reconnects += 1
                    log.warning("weight subscriber: nothing valid from the learner for %.1f s; reconnecting (#%d)",
                                reconnect.silent_s(self.last_rx, now), self.reconnects)
                    self._sock.close(0)
                    self._sock = self._open_socket()
                    reconnect.reset(now)
            except Exception as exc:  # noqa: BLE001 - the reader must outlive any one message
                self.rejections.internal(exc)
                time.sleep(0.05)
