"""Shared helpers of the transport tests (fast timings, transitions, collecting)."""

from __future__ import annotations

import time

import numpy as np

from learners.transport import TransitionReceiver, TransportConfig


def fast_cfg(**changes) -> TransportConfig:
    """Loopback, free ports, short timeouts so each test takes a couple of seconds."""
    base = dict(transitions_port=0, weights_port=0, heartbeat_interval_s=0.05, liveness_timeout_s=0.4,
                ack_timeout_s=0.5, weights_republish_s=0.2)
    base.update(changes)
    return TransportConfig(**base)


def make_transition(i: int, image: bool = True) -> dict:
    """A transition whose every array is a deterministic function of ``i``."""
    rng = np.random.default_rng(i)
    obs = {"state": rng.standard_normal(18).astype(np.float32)}
    nxt = {"state": rng.standard_normal(18).astype(np.float32)}
    if image:
        obs["front"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        nxt["front"] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    return {"obs": obs, "next_obs": nxt, "action": rng.uniform(-1, 1, 7).astype(np.float32),
            "reward": np.float32(i), "terminated": np.bool_(i % 7 == 0), "index": np.int64(i)}


def assert_same(sent: dict, got: dict) -> None:
    """Exact equality of nested array dicts (values, dtypes, shapes)."""
    assert sent.keys() == got.keys()
    for k in sent:
        if isinstance(sent[k], dict):
            assert_same(sent[k], got[k])
        else:
            a, b = np.asarray(sent[k]), got[k]
            assert a.dtype == b.dtype and a.shape == b.shape, k
            np.testing.assert_array_equal(a, b)


def collect(rx: TransitionReceiver, n: int, timeout_s: float = 5.0) -> list:
    """Poll ``rx`` until ``n`` transitions arrived or the timeout passed."""
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += rx.poll(max_items=n - len(out), timeout_s=0.05)
    return out


def wait_for(pred, timeout_s: float = 3.0) -> bool:
    """Wait until ``pred()`` is true; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return bool(pred())


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
