"""Every transport endpoint shares one start/close life cycle (common.IOThreadOwner):
close() before start() and twice is a no-op, start() twice is refused, and a closed
endpoint starts again and works."""

from __future__ import annotations

import pytest

from learners.transport import TransitionReceiver, TransitionSender, WeightPublisher, WeightSubscriber
from tests.learners.transport_helpers import collect, fast_cfg, make_transition, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("make", [
    lambda cfg: TransitionReceiver(cfg), lambda cfg: WeightPublisher(cfg),
    lambda cfg: TransitionSender(cfg, "robot0", port=1), lambda cfg: WeightSubscriber(cfg, port=1),
], ids=["receiver", "publisher", "sender", "subscriber"])
def test_close_before_start_twice_and_start_twice(make):
    endpoint = make(fast_cfg())
    endpoint.close()  # never started: nothing to release
    endpoint.start()
    with pytest.raises(RuntimeError, match="already started"):
        endpoint.start()
    endpoint.close()
    endpoint.close()
    assert endpoint._thread is None


def test_closed_endpoints_start_again_and_carry_transitions_and_weights():
    import numpy as np

    cfg = fast_cfg()
    rx, tx = TransitionReceiver(cfg), None
    pub = WeightPublisher(cfg)
    for _ in range(2):
        with rx, pub:
            tx = TransitionSender(cfg, "robot0", port=rx.port)
            sub = WeightSubscriber(cfg, port=pub.port)
            with tx, sub:
                tx.send(make_transition(0), policy_version=1)
                assert len(collect(rx, 1)) == 1 and tx.flush(3.0)
                pub.publish((pub.version or 0) + 1, {"w": np.ones(2, np.float32)})
                assert wait_for(lambda: sub.poll_latest() is not None, 3.0)
        cfg = cfg.replace(transitions_port=rx.port, weights_port=pub.port)  # the same ports again
