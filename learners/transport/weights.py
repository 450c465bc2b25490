"""Weights, learner -> actors: latest-wins PUB/SUB, tagged with a version.

Only what the caller passes travels: the learner passes the trainable residual weights
(``{name: np.ndarray}``), never the frozen encoder. The publisher keeps at most one message
queued per actor (``ZMQ_CONFLATE``) and the subscriber's reader thread keeps only the
newest valid one (:mod:`learners.transport.subscriber`), so a slow actor always gets the
newest weights and never a backlog. The publisher re-sends the latest weights every ``weights_republish_s`` so an
actor that starts (or reconnects) late gets them without waiting for the next update.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import zmq

from learners.transport import wire
from learners.transport.auth import ServerAuth
from learners.transport.common import LearnerSocketOwner, Rejections, random_id
from learners.transport.config import TransportConfig
from learners.transport.subscriber import VersionJump, WeightSubscriber  # the actor side, re-exported

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
        self._start_io_thread("hilr-weights-pub")
        return self

    def publish(self, version: int, weights: Mapping[str, Any], model: Mapping[str, Any] | None = None) -> int:
        """Publish ``weights`` as ``version`` (copied now; returns the frame size in bytes).

        Args:
            version: strictly greater than the previous published version.
            weights: parameter name -> array (e.g. the residual actor's trainable
                ``state_dict`` as numpy).
            model: optional JSON-ready settings that shape ``weights`` (the learner's
                :func:`learners.agent_model.model_doc`), sent as the header's ``model`` text
                so an actor with another config can build the same networks.

        Raises:
            ValueError: a non-increasing version, a model document over
                ``wire.MAX_MODEL_BYTES`` or a frame over ``max_message_bytes``.
        """
        if self._thread is None:
            raise RuntimeError("call start() before publish()")
        version = int(version)
        if self.version is not None and version <= self.version:
            raise ValueError(f"weights version {version} is not above the last published {self.version}")
        fields: dict[str, Any] = {"version": version, "learner": self.instance_id}
        if model is not None:
            fields["model"] = json.dumps(model, sort_keys=True, separators=(",", ":"))
            if len(fields["model"]) > wire.MAX_MODEL_BYTES:
                raise ValueError(f"model document of {len(fields['model'])} bytes > {wire.MAX_MODEL_BYTES}")
        data = wire.encode("weights", fields, weights)
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


__all__ = ["VersionJump", "WeightPublisher", "WeightSubscriber", "trainable_numpy"]
