"""ZMQ transport between actors and the learner (msgpack + raw numpy buffers, no pickle).

Transitions, actor -> learner: :class:`TransitionSender` (DEALER, sequence numbers,
acknowledgements, a RAM-bounded outbox spilling to disk, heartbeats) into
:class:`TransitionReceiver` (ROUTER, validation, de-duplication by actor/stream/seq).
Weights, learner -> actors: :class:`WeightPublisher` -> :class:`WeightSubscriber`
(PUB/SUB, latest wins, versioned, validated before the actor sees it). Optional CURVE authentication:
:mod:`learners.transport.auth`. Wire format: :mod:`learners.transport.wire`.

Importing this package opens no sockets; ``start()`` does.
"""

from learners.transport.config import CurveConfig, TransportConfig
from learners.transport.outbox import OutboxFull
from learners.transport.receiver import ReceivedTransition, TransitionReceiver, copy_arrays
from learners.transport.sender import TransitionSender
from learners.transport.subscriber import WeightSubscriber
from learners.transport.weights import WeightPublisher, trainable_numpy
from learners.transport.wire import WireError

__all__ = [
    "CurveConfig",
    "OutboxFull",
    "ReceivedTransition",
    "TransitionReceiver",
    "TransitionSender",
    "TransportConfig",
    "WeightPublisher",
    "WeightSubscriber",
    "WireError",
    "copy_arrays",
    "trainable_numpy",
]
