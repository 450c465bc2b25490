"""Atomic file writes: a crash or a kill leaves the old file or the new one, never half of one.

The files that hilr must never leave half-written (checkpoints, replay buffers, datasets,
calibration, the outbox's spill, study results) go through :func:`atomic_write`: the bytes go
to a hidden temporary file next to the target (``.<name>.<unique>.tmp``), are fsynced, and
the temporary file is renamed over the target. The owner of a folder (the outbox, a dataset,
the learner's checkpoints) deletes ``.*.tmp`` files left there by a crash when it opens it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename or a file creation inside the folder ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[BinaryIO], object], *,
                 sync: bool = True, sync_dir: bool = False) -> Path:
    """Write ``path`` atomically; returns it as a ``Path``. Its folder is created.

    Args:
        path: the target file; replaced whole or not at all.
        data: the content (``str`` is written as UTF-8), or a function that writes it to the
            open binary file (e.g. ``lambda f: np.savez(f, **arrays)``).
        sync: fsync the file before the rename (survives a power cut, not only a kill).
        sync_dir: also fsync the folder after the rename, so the rename itself is durable.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a random name per call (threads of one process, and containers that share pids on one file
    # system, never share a temporary file), created exclusively, with the usual permissions
    # (umask), unlike tempfile.mkstemp's 0600
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(8).hex()}.tmp")
    f = open(tmp, "xb")  # before the try: a name that exists is someone else's file, never removed here
    try:
        with f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return path
