"""Weights learner -> actors: latest wins, versions only go up, late joiners catch up."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learners.transport import WeightPublisher, WeightSubscriber
from tests.learners.transport_helpers import fast_cfg, wait_for

pytestmark = pytest.mark.timeout(60)


def _weights(v: int) -> dict:
    return {"residual.fc1.weight": np.full((64, 32), v, np.float32), "residual.fc1.bias": np.arange(64, dtype=np.float32) + v,
            "log_std": np.float32(-v)}


def _poll_until(sub, timeout_s=3.0):
    got = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = sub.poll_latest()
        if r is not None:
            got.append(r)
            return got
        time.sleep(0.01)
    return got


def test_latest_wins_versions_monotonic_and_poll_never_blocks():
    cfg = fast_cfg(weights_republish_s=10.0)
    with WeightPublisher(cfg) as pub, WeightSubscriber(cfg, port=pub.port) as sub:
        t0 = time.monotonic()
        assert sub.poll_latest() is None and time.monotonic() - t0 < 0.01
        v = 0
        while True:  # slow joiner: publish until the first one lands
            v += 1
            pub.publish(v, _weights(v))
            if wait_for(lambda: sub.poll_latest() is not None, 0.1):
                break
        assert sub.version == v
        for k in range(v + 1, v + 200):  # a burst the actor does not read
            pub.publish(k, _weights(k))
        time.sleep(0.3)
        got = _poll_until(sub)
        assert len(got) == 1
        version, weights = got[0]
        assert version == v + 199  # only the newest, no backlog
        np.testing.assert_array_equal(weights["residual.fc1.weight"], np.full((64, 32), version, np.float32))
        np.testing.assert_array_equal(weights["residual.fc1.bias"], np.arange(64, dtype=np.float32) + version)
        assert weights["log_std"].shape == () and weights["log_std"] == -version
        assert sub.poll_latest() is None
        with pytest.raises(ValueError):
            pub.publish(version, _weights(0))  # versions only go up
        seen = [sub.version]
        for k in range(version + 1, version + 30):
            pub.publish(k, _weights(k))
            time.sleep(0.003)
            r = sub.poll_latest()
            if r is not None:
                seen.append(r[0])
        assert seen == sorted(set(seen)) and len(seen) > 1


def test_late_subscriber_gets_latest_from_republish_and_stale_versions_are_skipped():
    cfg = fast_cfg(weights_republish_s=0.1)
    with WeightPublisher(cfg) as pub:
        pub.publish(7, _weights(7))
        with WeightSubscriber(cfg, port=pub.port) as sub:
            got = _poll_until(sub, 2.0)
            assert got and got[0][0] == 7
            time.sleep(0.35)  # several republishes of version 7
            assert sub.poll_latest() is None and sub.stale >= 1


def test_restarted_learner_may_restart_lower_versions():
    cfg = fast_cfg(weights_republish_s=0.1)
    pub = WeightPublisher(cfg).start()
    port = pub.port
    sub = WeightSubscriber(cfg, port=port).start()
    try:
        pub.publish(50, _weights(50))
        assert _poll_until(sub)[0][0] == 50
        pub.close()
        pub = WeightPublisher(cfg, port=port).start()  # resumed from an older checkpoint
        pub.publish(40, _weights(40))
        got = _poll_until(sub, 3.0)
        assert got and got[0][0] == 40
    finally:
        pub.close()
        sub.close()


def test_only_trainable_weights_travel_and_load_back_exactly():
    import torch

    from learners.transport import trainable_numpy

    torch.set_num_threads(1)
    torch.manual_seed(0)
    encoder, residual = torch.nn.Linear(8, 4), torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    encoder.requires_grad_(False)
    model = torch.nn.ModuleDict({"encoder": encoder, "residual": residual})
    weights = trainable_numpy(model)
    assert sorted(weights) == ["residual.0.bias", "residual.0.weight"]
    cfg = fast_cfg(weights_republish_s=0.05)
    with WeightPublisher(cfg) as pub, WeightSubscriber(cfg, port=pub.port) as sub:
        pub.publish(1, weights)
        got = _poll_until(sub)
    assert got and got[0][0] == 1
    clone = torch.nn.ModuleDict({"encoder": torch.nn.Linear(8, 4),
                                 "residual": torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())})
    missing, unexpected = clone.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in got[0][1].items()}, strict=False)
    assert not unexpected and sorted(missing) == ["encoder.bias", "encoder.weight"]
    for (n, p), (_, q) in zip(model["residual"].named_parameters(), clone["residual"].named_parameters()):
        assert torch.equal(p, q), n


def test_weights_stating_another_model_skip_only_the_layout_check():
    mine = {"format": "hilr-model", "version": 1, "actor_hidden": [64, 32]}
    other = {**mine, "actor_hidden": [128, 32]}
    wide = {"residual.fc1.weight": np.ones((128, 32), np.float32)}
    cfg = fast_cfg(weights_republish_s=0.05)
    with WeightPublisher(cfg) as pub, WeightSubscriber(cfg, port=pub.port) as sub:
        sub.expect(_weights(0), model=mine)
        pub.publish(1, wide)  # no model stated: the layout check refuses it
        assert wait_for(lambda: sub.rejections.counts().get("spec_mismatch", 0) > 0)
        pub.publish(2, wide, model=mine)  # claims the actor's own model: still checked
        assert wait_for(lambda: sub.rejections.counts().get("spec_mismatch", 0) > 1)
        assert sub.poll_latest() is None
        pub.publish(3, wide, model=other)  # another model: the actor decides
        got = _poll_until(sub)
        assert got and got[0][0] == 3 and got[0][1]["residual.fc1.weight"].shape == (128, 32)
        assert sub.model == other
        pub.publish(4, {"residual.fc1.weight": np.full((128, 32), np.nan, np.float32)}, model=other)
        assert wait_for(lambda: sub.rejections.counts().get("non_finite", 0) > 0)  # still finite-checked
        pub.publish(5, {"residual.fc1.weight": np.full((128, 32), 1e6, np.float32)}, model=other)
        time.sleep(0.2)
        assert sub.poll_latest() is None  # and magnitude-checked
        with pytest.raises(ValueError, match="model document"):
            pub.publish(6, wide, model={"pad": "x" * 20000})
