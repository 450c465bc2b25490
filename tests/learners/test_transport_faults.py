"""Hostile input on both sockets: garbage, truncated, oversized, wrong-version, wrong-schema
and pickle frames sent with raw zmq sockets. Both ends log, count and keep working."""

from __future__ import annotations

import logging
import pickle
import struct
import time

import msgpack
import numpy as np
import pytest
import zmq

from learners.transport import TransitionReceiver, TransitionSender, WeightSubscriber, wire
from tests.learners.transport_helpers import collect, fast_cfg, make_transition, wait_for

pytestmark = pytest.mark.timeout(60)

MAX = 64 * 1024


class _Evil:  # a pickle payload that would run code if anyone unpickled it
    def __reduce__(self):
        return (print, ("pwned",))


def _valid_transition(seq=0) -> bytes:
    return wire.encode("transition", {"actor": "evil", "stream": 1, "seq": seq, "policy_version": 0},
                       {"x": np.arange(4, dtype=np.float32)})


def _bad_frames(good: bytes) -> dict[str, tuple[str, bytes]]:
    """Reason -> frame; ``good`` is a valid frame of the kind the socket accepts."""
    head = msgpack.packb({"schema": "ros.bag", "kind": "transition", "arrays": [], "payload_bytes": 0})
    wrong_schema = wire.PREFIX.pack(wire.MAGIC, 1, 0, len(head)) + head
    wrong_schema += bytes(wire._align(len(wrong_schema)) - len(wrong_schema))
    return {
        "garbage": ("bad_magic", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()),
        "empty": ("truncated", b""),
        "truncated": ("truncated", good[: len(good) - 7]),
        "oversized": ("too_large", wire.encode("transition", {"actor": "evil", "stream": 1, "seq": 1, "policy_version": 0},
                                               {"x": np.zeros(MAX, np.uint8)})),
        "wrong_version": ("wrong_version", good[:4] + struct.pack("<H", 99) + good[6:]),
        "wrong_schema": ("wrong_version", wrong_schema),
        "pickle": ("bad_magic", pickle.dumps({"obs": _Evil()})),
        "msgpack_only": ("bad_magic", msgpack.packb({"kind": "transition"})),
        "wrong_kind": ("unknown_kind", wire.encode("weights", {"version": 1, "learner": 1}, {})),
    }


def test_transition_receiver_survives_and_counts_every_bad_frame(caplog):
    caplog.set_level(logging.WARNING)
    cfg = fast_cfg(max_message_bytes=MAX)
    bad = _bad_frames(_valid_transition())
    with TransitionReceiver(cfg) as rx:
        ctx = zmq.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(f"tcp://127.0.0.1:{rx.port}")
        try:
            for _, data in bad.values():
                raw.send(data)
            raw.send_multipart([b"x"] * (wire.MAX_BATCH + 1))  # more frames than a batch may hold
            # A batch (several frames) is decoded frame by frame: each garbage one counted alone,
            # and a ping is not accepted inside a batch.
            raw.send_multipart([b"two", b"frames", wire.encode("ping", {"actor": "evil", "floors": []})])
            expected: dict[str, int] = {"multipart": 1, "truncated": 2, "unknown_kind": 1}
            for reason, _ in bad.values():
                expected[reason] = expected.get(reason, 0) + 1
            assert wait_for(lambda: rx.rejections.total == sum(expected.values()), 3.0), rx.stats()
            assert rx.stats()["rejected"] == expected
            assert rx.stats()["received"] == 0 and rx.poll() == []
            # The same raw peer can still talk properly: a valid ping gets a pong.
            raw.send(wire.encode("ping", {"actor": "evil", "floors": []}))
            assert raw.poll(2000), "receiver stopped answering after bad input"
            assert wire.decode(raw.recv(), expect={"pong"}).fields["learner"] == rx.instance_id
            # ... and a real actor is served as if nothing happened.
            with TransitionSender(cfg, "robot0", port=rx.port) as tx:
                for i in range(10):
                    tx.send(make_transition(i, image=False), policy_version=1)
                assert [t.seq for t in collect(rx, 10)] == list(range(10))
        finally:
            raw.close(0)
            ctx.term()
    text = caplog.text
    for reason in expected:
        assert f"({reason}, #1)" in text, f"no log line for {reason}"


def test_weight_subscriber_survives_and_counts_every_bad_frame(caplog):
    caplog.set_level(logging.WARNING)
    cfg = fast_cfg(max_message_bytes=MAX)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = WeightSubscriber(cfg, port=port).start()
    learner = 123

    def weights(version):
        return wire.encode("weights", {"version": version, "learner": learner}, {"w": np.full(3, version, np.float32)})

    try:
        got = None
        deadline = time.monotonic() + 3.0
        while got is None and time.monotonic() < deadline:  # slow joiner: repeat until it lands
            pub.send(weights(1))
            time.sleep(0.02)
            got = sub.poll_latest()
        assert got is not None and got[0] == 1
        bad = _bad_frames(weights(5))
        bad["wrong_kind"] = ("unknown_kind", _valid_transition())
        for name, (reason, data) in bad.items():
            before = sub.rejections.counts().get(reason, 0)
            pub.send(data)
            assert wait_for(lambda: sub.poll_latest() is None and sub.rejections.counts().get(reason, 0) > before, 2.0), name
        pub.send(weights(2))
        assert wait_for(lambda: (r := sub.poll_latest()) is not None and r[0] == 2 and r[1]["w"][0] == 2.0, 2.0)
        assert sub.version == 2 and sub.rejections.total == len(bad)
    finally:
        sub.close()
        pub.close(0)
        ctx.term()
    assert "weight subscriber rejected a message (bad_magic" in caplog.text


def test_wellformed_but_wrong_or_nan_transitions_are_consumed_never_delivered(caplog):
    cfg = fast_cfg()
    example = make_transition(0, image=False)
    spec = wire.array_spec(example)
    with TransitionReceiver(cfg, expected=spec) as rx, TransitionSender(cfg, "sloppy", port=rx.port) as tx:
        nan = make_transition(1, image=False)
        nan["action"][2] = np.nan
        wrong_shape = make_transition(2, image=False)
        wrong_shape["obs"]["state"] = np.zeros(17, np.float32)
        extra = dict(make_transition(3, image=False), debug=np.zeros(1))
        for i, tr in enumerate([make_transition(10, image=False), nan, wrong_shape, extra, make_transition(11, image=False)]):
            tx.send(tr, policy_version=i)
        got = collect(rx, 2)
        assert [int(t.data["index"]) for t in got] == [10, 11]
        assert tx.flush(3.0), "rejected transitions must be consumed, not re-sent forever"
        assert rx.stats()["rejected"] == {"non_finite": 1, "spec_mismatch": 2}
    assert "holds NaN or inf" in caplog.text
    with TransitionSender(cfg, "strict", expected=spec) as tx:  # the sender refuses at the source
        with pytest.raises(wire.NonFinite):
            tx.send(nan, policy_version=0)
        with pytest.raises(wire.SpecMismatch):
            tx.send(wrong_shape, policy_version=0)
        assert tx.send(example, policy_version=0) == 0


def test_weight_subscriber_rejects_nan_and_unexpected_weights():
    from learners.transport import WeightPublisher

    cfg = fast_cfg(weights_republish_s=0.05)
    good = {"w": np.ones(3, np.float32)}
    with WeightPublisher(cfg) as pub, WeightSubscriber(cfg, port=pub.port, expected=good) as sub:
        pub.publish(1, {"w": np.array([1, np.inf, 0], np.float32)})
        assert wait_for(lambda: sub.poll_latest() is None and sub.rejections.counts().get("non_finite", 0) > 0)
        pub.publish(2, {"w": np.ones(4, np.float32)})
        assert wait_for(lambda: sub.poll_latest() is None and sub.rejections.counts().get("spec_mismatch", 0) > 0)
        pub.publish(3, good)
        assert wait_for(lambda: sub.poll_latest() is not None) and sub.version == 3
