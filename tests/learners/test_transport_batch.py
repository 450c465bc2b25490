"""Batching under load (several transition frames in one ZMQ message), zero-copy arrays on
receipt, and peers of another version: no loss, no duplicate, clear refusals."""

from __future__ import annotations

import time

import numpy as np
import pytest
import zmq

from learners.transport import TransitionReceiver, TransitionSender, wire
from tests.learners.transport_helpers import assert_same, collect, fast_cfg, make_transition, wait_for

pytestmark = pytest.mark.timeout(60)


def test_a_burst_is_batched_and_arrives_exactly_once_in_order_as_zero_copy_views():
    cfg = fast_cfg(max_batch=16)
    n = 300
    with TransitionReceiver(cfg) as rx, TransitionSender(cfg, "robot0", port=rx.port) as tx:
        assert wait_for(lambda: tx.learner_alive, 3.0)  # the pong stated the learner's batch limit
        for i in range(n):  # faster than the link: transitions queue up and travel in batches
            tx.send(make_transition(i), policy_version=1)
        got = collect(rx, n, timeout_s=20.0)
        assert tx.flush(5.0), tx.stats()
        st = tx.stats()
    assert [t.seq for t in got] == list(range(n))
    for t in got:
        assert_same(make_transition(t.seq), t.data)
    assert st["sent"] == n and st["acked"] == n and st["resent"] == 0
    assert st["messages"] < n, f"no batching under load: {st['messages']} messages for {n} transitions"
    front = got[-1].data["obs"]["front"]
    # Zero-copy on receipt: a read-only view of the received ZMQ frame, not a copy.
    assert not front.flags.writeable and not front.flags.owndata and front.base is not None


def test_batches_lose_nothing_when_the_learner_is_killed_mid_stream_and_restarted():
    """Bursts in flight while the receiver dies, and while it is down; a new receiver
    resumed from the last checkpoint (ack_policy=commit) gets each transition exactly once."""
    cfg = fast_cfg(ack_policy="commit", max_batch=32)
    n = 400
    rx1 = TransitionReceiver(cfg).start()
    port = rx1.port
    with TransitionSender(cfg, "robot0", port=port) as tx:
        assert wait_for(lambda: tx.learner_alive, 3.0)
        for i in range(200):
            tx.send(make_transition(i), policy_version=1)
        kept = collect(rx1, 100, timeout_s=10.0)
        checkpoint = rx1.state_dict()
        rx1.commit()
        collect(rx1, 50, timeout_s=5.0)  # taken after the checkpoint: lost with the learner
        rx1.close()  # killed with batches in flight and queued
        for i in range(200, 300):  # the actor keeps streaming into its outbox
            tx.send(make_transition(i), policy_version=1)
        rx2 = TransitionReceiver(cfg, port=port)
        rx2.load_state_dict(checkpoint)
        rx2.start()
        try:
            for i in range(300, n):
                tx.send(make_transition(i), policy_version=1)
            rest = collect(rx2, n - len(kept), timeout_s=20.0)
            rx2.commit()
            assert tx.flush(10.0), tx.stats()
            rest += rx2.poll()
            st = tx.stats()
        finally:
            rx2.close()
    seqs = [t.seq for t in kept] + [t.seq for t in rest]
    assert sorted(seqs) == list(range(n)), f"lost {set(range(n)) - set(seqs)}, dup {len(seqs) - len(set(seqs))}"
    for t in kept + rest:
        assert_same(make_transition(t.seq), t.data)
    assert st["resent"] > 0 and st["messages"] < st["sent"] + st["resent"]


def test_one_bad_frame_in_a_batch_is_refused_alone():
    cfg = fast_cfg()
    spec = wire.array_spec(make_transition(0, image=False))

    def frame(seq, tr):
        return wire.encode("transition", {"actor": "raw", "stream": 1, "seq": seq, "policy_version": 0}, tr)

    bad = make_transition(1, image=False)
    bad["obs"]["state"] = np.zeros(17, np.float32)
    with TransitionReceiver(cfg, expected=spec) as rx:
        ctx = zmq.Context()
        raw = ctx.socket(zmq.DEALER)
        raw.setsockopt(zmq.LINGER, 0)
        raw.connect(f"tcp://127.0.0.1:{rx.port}")
        try:
            raw.send_multipart([frame(0, make_transition(0, image=False)), frame(1, bad),
                                frame(2, make_transition(2, image=False))])
            got = collect(rx, 2)
            assert [t.seq for t in got] == [0, 2]
            assert rx.stats()["rejected"] == {"spec_mismatch": 1}
            refused = []  # the bad one is answered with a final ack that says why
            while raw.poll(1000) and not refused:
                msg = wire.decode(raw.recv(), expect={"ack"})
                if msg.fields.get("rejected"):
                    refused.append(msg.fields)
            assert refused and refused[0]["ranges"] == [[1, 1]] and refused[0]["final"]
        finally:
            raw.close(0)
            ctx.term()


def _fake_learner(sock: zmq.Socket, pong: bytes, seconds: float) -> list[int]:
    """A learner that states nothing about batching (an older one): answers pings with
    ``pong``, acks every transition finally; returns the payload frames per message."""
    sizes: list[int] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not sock.poll(50):
            continue
        identity, *frames = sock.recv_multipart()
        sizes.append(len(frames))
        for data in frames:
            try:
                msg = wire.decode(data)
            except wire.WireError:
                continue
            if msg.kind == "ping":
                sock.send_multipart([identity, pong])
            elif msg.kind == "transition":
                f = msg.fields
                sock.send_multipart([identity, wire.encode("ack", {
                    "actor": f["actor"], "stream": f["stream"], "ranges": [[f["seq"], f["seq"]]],
                    "learner": 7, "final": True})])
    return sizes


def test_a_learner_that_states_no_batch_limit_gets_one_transition_per_message():
    cfg = fast_cfg(max_batch=32)
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        with TransitionSender(cfg, "robot0", port=port) as tx:
            for i in range(60):
                tx.send(make_transition(i), policy_version=1)
            sizes = _fake_learner(router, wire.encode("pong", {"learner": 7}), 2.0)
            assert tx.pending == 0 and tx.stats()["acked"] == 60, tx.stats()
        assert sizes and max(sizes) == 1
    finally:
        router.close(0)
        ctx.term()


def test_a_learner_of_another_wire_version_is_refused_with_a_clear_error(caplog):
    cfg = fast_cfg()
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    pong = bytearray(wire.encode("pong", {"learner": 7, "batch": 64}))
    pong[4:6] = (wire.WIRE_VERSION + 1).to_bytes(2, "little")  # a newer (or older) learner
    try:
        with TransitionSender(cfg, "robot0", port=port) as tx:
            tx.send(make_transition(0), policy_version=1)
            sizes = _fake_learner(router, bytes(pong), 1.0)
            assert not tx.learner_alive and tx.pending == 1  # nothing streamed to it, nothing lost
            assert tx.rejections.counts().get("wrong_version", 0) >= 1
        assert sizes and all(s == 1 for s in sizes)  # pings only
    finally:
        router.close(0)
        ctx.term()
    assert f"wire version {wire.WIRE_VERSION + 1}, this side speaks {wire.WIRE_VERSION}" in caplog.text
