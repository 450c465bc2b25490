"""Configuration of the actor <-> learner transport (hydra group ``transport``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from learners.transport.wire import DEFAULT_MAX_MESSAGE_BYTES

ACK_POLICIES = ("deliver", "commit")


@dataclass
class CurveConfig:
    """ZMQ CURVE (Curve25519) encryption and client authentication.

    Key files are zmq's standard certificate files (``zmq.auth.create_certificates``):
    ``<name>.key`` holds the public key, ``<name>.key_secret`` both keys. Generate them with
    ``python -m learners.transport.auth <dir> learner actor0 ...``.

    Attributes:
        enabled: encrypt and authenticate both sockets (transitions and weights).
        server_secret_file: learner's ``.key_secret`` file (learner side only).
        server_public_file: learner's ``.key`` file (actors need it to connect).
        client_secret_file: this actor's ``.key_secret`` file (actor side only).
        authorized_clients_dir: learner side: directory of the ``.key`` files of the actors
            allowed in; any other key is refused by the ZAP authenticator.
    """

    enabled: bool = False
    server_secret_file: str | None = None
    server_public_file: str | None = None
    client_secret_file: str | None = None
    authorized_clients_dir: str | None = None


@dataclass
class TransportConfig:
    """Endpoints, limits and timing of the transport. Times in seconds (``time.monotonic``).

    Attributes:
        host: address the actors connect to (the learner's machine).
        bind_host: interface the learner binds (``127.0.0.1`` local, ``0.0.0.0`` all).
        transitions_port: learner ROUTER port for transitions (0 = pick a free port).
        weights_port: learner PUB port for weights (0 = pick a free port).
        max_message_bytes: largest accepted frame; larger ones are rejected and counted.
        heartbeat_interval_s: actor pings the learner this often when idle.
        liveness_timeout_s: learner declared gone after this long without a reply.
        ack_timeout_s: an unacknowledged transition is re-sent after this long.
        max_in_flight: transitions sent but not yet acknowledged, at most.
        max_batch: transitions sent in one ZMQ message at most, when several wait (the
            actor outruns the link or the learner); 1 = one per message. The learner
            states how many it accepts in its pongs (``batch``); the smaller bound wins.
        outbox_memory_messages: unacknowledged transitions kept in RAM; more spill to disk
            (0 = write every transition to disk first: survives an actor crash).
        outbox_memory_bytes: RAM bound of the outbox (and of transitions queued for it) in
            bytes, whatever their count; more spill to disk, or, with no ``outbox_dir``,
            ``send`` raises OutboxFull.
        outbox_max_disk_bytes: spill directory size limit; beyond it ``send`` raises OutboxFull.
        outbox_dir: spill directory (null = RAM only; the actor app sets one per actor id).
        ack_policy: ``deliver``: ack when the learner takes a transition from the receiver;
            ``commit``: ack only at ``receiver.commit()`` (after the learner checkpointed).
        receive_queue: transitions buffered in the receiver before it stops reading
            (back-pressure: they wait in the actor's outbox, nothing is dropped).
        receive_queue_bytes: the same bound in bytes.
        max_streams: de-duplication entries (actor incarnations) the receiver holds; a new
            stream beyond it waits (un-acked) until settled streams are forgotten.
        weights_max_abs: weights with any ``|w|`` above this are refused by the actor (a
            finite 3e38 would still make NaN actions).
        reconnect_after_s: an actor socket that hears nothing valid from the learner for
            this long is closed and reconnected (then backing off, doubling up to 30 s).
        weights_republish_s: the publisher re-sends the latest weights this often so late
            or restarted actors get them.
        curve: CURVE settings (:class:`CurveConfig`).
    """

    host: str = "127.0.0.1"
    bind_host: str = "127.0.0.1"
    transitions_port: int = 5555
    weights_port: int = 5556
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    heartbeat_interval_s: float = 0.25
    liveness_timeout_s: float = 1.5
    ack_timeout_s: float = 2.0
    max_in_flight: int = 256
    max_batch: int = 32
    outbox_memory_messages: int = 4096
    outbox_memory_bytes: int = 512 * 1024**2
    outbox_max_disk_bytes: int = 4 * 1024**3
    outbox_dir: str | None = None
    ack_policy: str = "deliver"
    receive_queue: int = 4096
    receive_queue_bytes: int = 1024**3
    max_streams: int = 4096
    weights_max_abs: float = 1e4
    reconnect_after_s: float = 5.0
    weights_republish_s: float = 1.0
    curve: CurveConfig = field(default_factory=CurveConfig)

    def __post_init__(self) -> None:
        if isinstance(self.curve, Mapping):
            self.curve = CurveConfig(**dict(self.curve))
        for name in ("transitions_port", "weights_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"transport.{name}={getattr(self, name)} is not a TCP port")
        if self.ack_policy not in ACK_POLICIES:
            raise ValueError(f"transport.ack_policy={self.ack_policy!r}; choose one of {ACK_POLICIES}")
        positive = ("max_message_bytes", "heartbeat_interval_s", "liveness_timeout_s",
                    "ack_timeout_s", "max_in_flight", "max_batch", "receive_queue", "weights_republish_s",
                    "receive_queue_bytes", "max_streams", "weights_max_abs", "reconnect_after_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"transport.{name} must be > 0, got {getattr(self, name)}")
        if self.liveness_timeout_s <= self.heartbeat_interval_s:
            raise ValueError("transport.liveness_timeout_s must exceed heartbeat_interval_s")
        if self.outbox_memory_messages < 0 or self.outbox_max_disk_bytes < 0 or self.outbox_memory_bytes < 0:
            raise ValueError("transport outbox limits must be >= 0")
        if self.outbox_memory_messages == 0 and not self.outbox_dir:
            raise ValueError("transport.outbox_memory_messages=0 needs an outbox_dir")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TransportConfig:
        """Build from a plain mapping (e.g. the hydra ``transport`` node); unknown keys raise."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown transport config key(s) {unknown}; valid: {sorted(names)}")
        return cls(**values)

    def replace(self, **changes: Any) -> TransportConfig:
        """A copy with some fields changed (e.g. ``cfg.replace(transitions_port=port)``)."""
        return dataclasses.replace(self, **changes)

    def connect_endpoint(self, port: int) -> str:
        """``tcp://host:port`` for an actor-side socket."""
        return f"tcp://{self.host}:{port}"

    def bind_endpoint(self, port: int) -> str:
        """``tcp://bind_host:port`` for a learner-side socket (port 0 -> ``*``: a free port)."""
        return f"tcp://{self.bind_host}:{port if port else '*'}"
