"""Transitions actor -> learner over real ZMQ sockets on loopback: exact, acknowledged,
de-duplicated, surviving learner restarts and actor restarts, never blocking the actor."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learners.transport import OutboxFull, TransitionReceiver, TransitionSender
from tests.learners.transport_helpers import assert_same, collect, fast_cfg, free_port, make_transition, wait_for

pytestmark = pytest.mark.timeout(60)


def test_round_trip_exact_arrays_seq_and_policy_version():
    cfg = fast_cfg()
    with TransitionReceiver(cfg) as rx, TransitionSender(cfg, "robot0", port=rx.port) as tx:
        seqs = [tx.send(make_transition(i), policy_version=10 + i // 5) for i in range(40)]
        got = collect(rx, 40)
        assert tx.flush(3.0), tx.stats()
        assert seqs == list(range(40))
        assert [t.seq for t in got] == seqs
        for i, t in enumerate(got):
            assert t.actor_id == "robot0" and t.stream == tx.stream and t.policy_version == 10 + i // 5
            assert_same(make_transition(i), t.data)
            assert t.sent_unix is not None and abs(t.sent_unix - time.time()) < 60
        st = rx.stats()
        assert st["received"] == st["delivered"] == st["acked"] == 40 and st["duplicates"] == 0
        assert tx.stats()["acked"] == 40 and tx.pending == 0


def _send_spread(tx, start, stop, durations):
    for i in range(start, stop):
        t0 = time.monotonic()
        tx.send(make_transition(i), policy_version=1)
        durations.append(time.monotonic() - t0)
        time.sleep(0.002)


@pytest.mark.parametrize("ack_policy", ["deliver", "commit"])
def test_learner_killed_mid_stream_and_restarted_every_transition_exactly_once(ack_policy):
    """Stop the receiver while transitions flow, keep sending while it is down, restart it
    on the same port from its last checkpointed de-dup state: each arrives exactly once."""
    cfg = fast_cfg(ack_policy=ack_policy)
    n = 240
    durations: list[float] = []
    rx1 = TransitionReceiver(cfg).start()
    port = rx1.port
    with TransitionSender(cfg, "robot0", port=port) as tx:
        _send_spread(tx, 0, 80, durations)
        kept = collect(rx1, 60)  # the learner took 60 ...
        checkpoint = rx1.state_dict()  # ... checkpointed them ...
        if ack_policy == "commit":
            rx1.commit()  # ... and committed; what it takes next dies with it
            kept_after = collect(rx1, 10)
            assert kept_after, "receiver should have had more queued"
        rx1.close()  # killed: queued and uncommitted transitions are gone with it
        _send_spread(tx, 80, 160, durations)  # the actor keeps running
        assert wait_for(lambda: not tx.learner_alive, 2.0)
        rx2 = TransitionReceiver(cfg, port=port)
        rx2.load_state_dict(checkpoint)
        rx2.start()
        try:
            _send_spread(tx, 160, n, durations)
            rest = collect(rx2, n - len(kept), timeout_s=10.0)
            rx2.commit()  # the next checkpoint (a no-op with ack_policy=deliver)
            assert tx.flush(5.0), tx.stats()
            rest += rx2.poll()
            assert tx.stats()["reconnects"] >= 1 and tx.stats()["resent"] > 0 and tx.stats()["sent"] == n
        finally:
            rx2.close()
    seqs = [t.seq for t in kept] + [t.seq for t in rest]
    assert sorted(seqs) == list(range(n)), f"lost {set(range(n)) - set(seqs)}, dup {len(seqs) - len(set(seqs))}"
    for t in kept + rest:
        assert_same(make_transition(t.seq), t.data)
    assert max(durations) < 0.05, f"send() blocked for {max(durations):.3f} s"


def test_outbox_spills_to_disk_and_is_resent_after_actor_restart(tmp_path, caplog):
    cfg = fast_cfg(outbox_memory_messages=8, outbox_dir=str(tmp_path / "outbox"))
    port = free_port()  # no learner yet
    tx = TransitionSender(cfg, "robot1", port=port).start()
    for i in range(30):
        tx.send(make_transition(i), policy_version=4)
    assert wait_for(lambda: tx.stats()["spilled_bytes"] > 0)
    first_stream = tx.stream
    tx.close()  # the actor stops: RAM part written too
    files = sorted((tmp_path / "outbox").glob("*.msg"))
    assert len(files) == 30
    (tmp_path / "outbox" / "ffffffffffffffff-000000000000.msg").write_bytes(b"\x80\x04garbage")  # a corrupt file

    tx2 = TransitionSender(cfg, "robot1", port=port).start()
    assert tx2.stats()["reloaded"] == 30 and tx2.stream > first_stream
    assert (tmp_path / "outbox" / "corrupt" / "ffffffffffffffff-000000000000.msg").exists()
    assert "not a valid transition frame" in caplog.text
    for i in range(30, 40):
        tx2.send(make_transition(i), policy_version=5)
    with TransitionReceiver(cfg, port=port) as rx:
        got = collect(rx, 40)
        assert tx2.flush(3.0)
    tx2.close()
    assert sorted(int(t.data["index"]) for t in got) == list(range(40))
    for t in got:
        i = int(t.data["index"])
        assert_same(make_transition(i), t.data)
        assert (t.stream, t.policy_version) == ((first_stream, 4) if i < 30 else (tx2.stream, 5))
    assert not list((tmp_path / "outbox").glob("*.msg"))  # acked files deleted


def test_write_ahead_outbox_survives_a_crash_without_close(tmp_path):
    """outbox_memory_messages=0: every transition is on disk before it is sent."""
    cfg = fast_cfg(outbox_memory_messages=0, outbox_dir=str(tmp_path))
    tx = TransitionSender(cfg, "robot2", port=free_port()).start()
    for i in range(5):
        tx.send(make_transition(i), policy_version=0)
    assert wait_for(lambda: len(list(tmp_path.glob("*.msg"))) == 5)
    tx._stop.set()  # simulate a crash: the I/O thread stops and close() never runs
    tx2 = TransitionSender(cfg, "robot2", port=free_port()).start()
    assert tx2.stats()["reloaded"] == 5
    tx2.close()


def test_bounded_ram_outbox_raises_outbox_full_instead_of_blocking():
    cfg = fast_cfg(outbox_memory_messages=5)
    with TransitionSender(cfg, "robot3", port=free_port()) as tx:
        t0 = time.monotonic()
        with pytest.raises(OutboxFull):
            for i in range(10_000):
                tx.send(make_transition(i, image=False), policy_version=0)
                time.sleep(0.001)
        assert time.monotonic() - t0 < 5.0
        assert tx.pending >= 5


def test_many_actors_feed_one_receiver():
    cfg = fast_cfg()
    with TransitionReceiver(cfg) as rx:
        senders = [TransitionSender(cfg, f"robot{k}", port=rx.port).start() for k in range(4)]
        try:
            for i in range(50):
                for k, tx in enumerate(senders):
                    tx.send({"k": np.int64(k), "i": np.int64(i)}, policy_version=k)
            got = collect(rx, 200)
            assert all(tx.flush(3.0) for tx in senders)
        finally:
            for tx in senders:
                tx.close()
    assert rx.stats()["per_actor"] == {f"robot{k}": 50 for k in range(4)}
    for k in range(4):
        mine = [t for t in got if t.actor_id == f"robot{k}"]
        assert [t.seq for t in mine] == list(range(50))  # in order per actor
        assert all(int(t.data["k"]) == k == t.policy_version for t in mine)


def test_heartbeat_detects_dead_learner_in_bounded_time_and_send_never_blocks():
    cfg = fast_cfg()
    rx = TransitionReceiver(cfg).start()
    port = rx.port
    with TransitionSender(cfg, "robot4", port=port) as tx:
        assert wait_for(lambda: tx.learner_alive, 2.0)
        rx.close()
        t_dead = time.monotonic()
        worst = 0.0
        while tx.learner_alive:
            t0 = time.monotonic()
            tx.send(make_transition(0), policy_version=0)
            worst = max(worst, time.monotonic() - t0)
            assert time.monotonic() - t_dead < cfg.liveness_timeout_s + 1.0, "dead learner not detected"
            time.sleep(0.01)
        detected = time.monotonic() - t_dead
        assert detected <= cfg.liveness_timeout_s + 0.3
        assert worst < 0.05
        with TransitionReceiver(cfg, port=port) as rx2:  # the learner comes back
            assert wait_for(lambda: tx.learner_alive, 3.0)
            got = collect(rx2, tx.pending)
            assert tx.flush(3.0)
            assert len(got) == rx2.stats()["received"] == tx.stats()["acked"] > 0


def test_full_receiver_defers_without_losing_and_keeps_answering_pings():
    cfg = fast_cfg(receive_queue=10)
    with TransitionReceiver(cfg) as rx, TransitionSender(cfg, "robot5", port=rx.port) as tx:
        for i in range(40):
            tx.send(make_transition(i, image=False), policy_version=0)
        assert wait_for(lambda: rx.stats()["deferred"] > 0)
        time.sleep(cfg.liveness_timeout_s)
        assert tx.learner_alive  # pings answered although the queue is full
        got = collect(rx, 40, timeout_s=10.0)
        assert sorted(t.seq for t in got) == list(range(40))


def test_spill_file_lost_under_the_actor_is_reported_and_the_rest_still_flows(tmp_path, caplog):
    cfg = fast_cfg(outbox_memory_messages=0, outbox_dir=str(tmp_path))
    port = free_port()
    with TransitionSender(cfg, "robot6", port=port) as tx:
        for i in range(6):
            tx.send(make_transition(i, image=False), policy_version=0)
        assert wait_for(lambda: len(list(tmp_path.glob("*.msg"))) == 6)
        sorted(tmp_path.glob("*.msg"))[2].unlink()  # e.g. an operator cleaning the disk
        with TransitionReceiver(cfg, port=port) as rx:
            got = collect(rx, 5)
            assert tx.flush(3.0)
        assert sorted(int(t.data["index"]) for t in got) == [0, 1, 3, 4, 5]
        assert tx.stats()["unreadable"] == 1
    assert "unreadable" in caplog.text


def test_dedup_state_stays_small_after_a_learner_restart_without_state():
    """A fresh learner sees seqs 50.. only; the actor's floors let it forget the gap below."""
    cfg = fast_cfg()
    rx1 = TransitionReceiver(cfg).start()
    port = rx1.port
    with TransitionSender(cfg, "robot7", port=port) as tx:
        for i in range(50):
            tx.send(make_transition(i, image=False), policy_version=0)
        assert len(collect(rx1, 50)) == 50 and tx.flush(3.0)
        rx1.close()
        with TransitionReceiver(cfg, port=port) as rx2:
            for i in range(50, 100):
                tx.send(make_transition(i, image=False), policy_version=0)
            assert [t.seq for t in collect(rx2, 50)] == list(range(50, 100)) and tx.flush(3.0)

            def compact():
                (stream,) = rx2.state_dict()["streams"]
                return stream["delivered"] == {"low": 100, "above": []}

            assert wait_for(compact, 2.0), rx2.state_dict()
