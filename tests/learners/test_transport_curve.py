"""CURVE: the right key gets in; a wrong key or no key gets nothing in and nothing out."""

from __future__ import annotations

import time

import numpy as np
import pytest

from learners.transport import CurveConfig, TransitionReceiver, TransitionSender, WeightPublisher, WeightSubscriber
from learners.transport.auth import CurveSetupError, authorize, generate_keys, main
from tests.learners.transport_helpers import collect, fast_cfg, make_transition, wait_for

pytestmark = pytest.mark.timeout(60)


@pytest.fixture()
def keys(tmp_path):
    assert main([str(tmp_path), "learner", "actor_ok", "--authorized", str(tmp_path / "authorized")]) == 0
    generate_keys(tmp_path / "intruder", "actor_ok")  # same name, different key
    assert sorted(p.name for p in (tmp_path / "authorized").iterdir()) == ["actor_ok.key"]
    assert (tmp_path / "learner.key_secret").stat().st_mode & 0o077 == 0
    return tmp_path


def _server(keys) -> CurveConfig:
    return CurveConfig(enabled=True, server_secret_file=str(keys / "learner.key_secret"),
                       authorized_clients_dir=str(keys / "authorized"))


def _client(keys, secret) -> CurveConfig:
    return CurveConfig(enabled=True, server_public_file=str(keys / "learner.key"), client_secret_file=str(secret))


def test_transitions_right_key_works_wrong_or_no_key_gets_nothing(keys):
    server = fast_cfg(curve=_server(keys))
    with TransitionReceiver(server) as rx:
        good = TransitionSender(fast_cfg(curve=_client(keys, keys / "actor_ok.key_secret")), "ok", port=rx.port).start()
        bad = TransitionSender(fast_cfg(curve=_client(keys, keys / "intruder" / "actor_ok.key_secret")), "bad", port=rx.port).start()
        plain = TransitionSender(fast_cfg(), "plain", port=rx.port).start()
        try:
            for i in range(5):
                for tx in (good, bad, plain):
                    tx.send(make_transition(i, image=False), policy_version=0)
            got = collect(rx, 5)
            assert good.flush(3.0)
            time.sleep(1.0)
            got += rx.poll()
            assert {t.actor_id for t in got} == {"ok"} and len(got) == 5
            assert good.learner_alive and not bad.learner_alive and not plain.learner_alive
            assert bad.stats()["acked"] == plain.stats()["acked"] == 0 and bad.pending == plain.pending == 5
            assert rx.stats()["pings"] > 0 and set(rx.stats()["per_actor"]) == {"ok"}
            assert rx.stats()["rejected"].get("auth_denied", 0) >= 1  # the wrong key, logged
        finally:
            for tx in (good, bad, plain):
                tx.close()


def test_weights_right_key_receives_wrong_or_no_key_receives_nothing(keys):
    server = fast_cfg(curve=_server(keys), weights_republish_s=0.05)
    with WeightPublisher(server) as pub:
        good = WeightSubscriber(fast_cfg(curve=_client(keys, keys / "actor_ok.key_secret")), port=pub.port).start()
        bad = WeightSubscriber(fast_cfg(curve=_client(keys, keys / "intruder" / "actor_ok.key_secret")), port=pub.port).start()
        plain = WeightSubscriber(fast_cfg(), port=pub.port).start()
        try:
            pub.publish(1, {"w": np.ones(4, np.float32)})
            assert wait_for(lambda: good.poll_latest() is not None, 3.0)
            time.sleep(0.5)  # ~10 republishes
            assert bad.poll_latest() is None and plain.poll_latest() is None
            assert bad.last_rx is None and plain.last_rx is None
            assert pub.rejections.counts().get("auth_denied", 0) >= 1
        finally:
            for s in (good, bad, plain):
                s.close()


def test_missing_key_files_fail_loudly(keys):
    with pytest.raises(CurveSetupError):
        TransitionReceiver(fast_cfg(curve=CurveConfig(enabled=True, authorized_clients_dir=str(keys)))).start()
    with pytest.raises(CurveSetupError):
        TransitionSender(fast_cfg(curve=CurveConfig(enabled=True, server_public_file=str(keys / "nope.key"),
                                                     client_secret_file=str(keys / "actor_ok.key_secret"))), "a").start()
    with pytest.raises(CurveSetupError):  # a public file where a secret one is needed
        WeightSubscriber(fast_cfg(curve=_client(keys, keys / "actor_ok.key")), port=1).start()
    assert authorize(keys / "learner.key", keys / "other").name == "learner.key"


def test_group_or_world_readable_secret_keys_and_an_empty_authorized_dir_are_refused(keys, tmp_path):
    """Issue 15 (9): a 0666 secret key is no secret; an empty authorised-keys folder lets no actor in."""
    loose = tmp_path / "loose"
    _, secret = generate_keys(loose, "learner")
    secret.chmod(0o666)
    server = CurveConfig(enabled=True, server_secret_file=str(secret), authorized_clients_dir=str(keys / "authorized"))
    with pytest.raises(CurveSetupError, match="chmod 600"):
        TransitionReceiver(fast_cfg(curve=server)).start()
    client_secret = keys / "actor_ok.key_secret"
    client_secret.chmod(0o644)
    with pytest.raises(CurveSetupError, match="group or others"):
        TransitionSender(fast_cfg(curve=_client(keys, client_secret)), "ok").start()
    client_secret.chmod(0o600)
    (tmp_path / "empty").mkdir()
    empty = CurveConfig(enabled=True, server_secret_file=str(keys / "learner.key_secret"),
                        authorized_clients_dir=str(tmp_path / "empty"))
    with pytest.raises(CurveSetupError, match="holds no .key file"):
        WeightPublisher(fast_cfg(curve=empty)).start()
