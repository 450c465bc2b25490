"""robot_env.atomic: the one atomic writer behind checkpoints, replay, datasets, calibration, outbox."""

import os
import stat
import threading

import numpy as np
import pytest

from robot_env.atomic import atomic_write


def test_writes_bytes_str_and_callables(tmp_path):
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.txt", "héllo")
    atomic_write(tmp_path / "sub" / "c.npz", lambda f: np.savez(f, x=np.arange(3)), sync_dir=True)
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo"
    assert np.load(tmp_path / "sub" / "c.npz")["x"].tolist() == [0, 1, 2]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = atomic_write(tmp_path / "keep.txt", "old")

    def half(f):
        f.write(b"new but")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half)
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(".*.tmp"))


def test_permissions_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "shared.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # a lab's other users can read datasets and calibrations


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    target = tmp_path / "result.json"
    errors = []

    def writer(k):
        try:
            for _ in range(50):
                atomic_write(target, str(k) * 1000, sync=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    text = target.read_text()
    assert len(text) == 1000 and len(set(text)) == 1  # one writer's whole content, never a mix
    assert not list(tmp_path.glob(".*.tmp"))
