"""The actor's outbox: unacknowledged transitions, bounded in RAM, spilling to disk.

Each entry is an encoded wire frame keyed by ``(stream, seq)``. Up to
``memory_messages`` entries and ``memory_bytes`` bytes stay in RAM; the rest are written to the spill directory,
one file per frame (``<stream:016x>-<seq:012d>.msg``, the raw frame, written to a temp
file, fsynced and renamed: atomic, no pickle). :meth:`Outbox.close` writes the RAM part
too, so a restarted actor reloads every unacknowledged transition and re-sends it. Files
that do not decode as a transition frame are moved to ``corrupt/`` with a logged reason.

Not thread-safe: the sender's I/O thread owns it.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path

from learners.transport import wire
from robot_env.atomic import atomic_write

log = logging.getLogger(__name__)

Key = tuple[int, int]  # (stream, seq)


class OutboxFull(RuntimeError):
    """The outbox reached its RAM + disk limit; the learner has been gone too long."""


class Outbox:
    """FIFO of unacknowledged frames, RAM-bounded, spilling to ``directory``.

    Args:
        directory: spill directory (created; existing spilled frames are reloaded), or
            None for RAM only.
        memory_messages: frames kept in RAM before spilling (0: every frame goes to disk).
        max_disk_bytes: spill limit; :meth:`put` raises :class:`OutboxFull` beyond it.
        max_message_bytes: frames on disk larger than this are treated as corrupt.
        memory_bytes: RAM bound in bytes (with ``memory_messages``, whichever comes first).
    """

    def __init__(self, directory: str | Path | None, memory_messages: int, max_disk_bytes: int,
                 max_message_bytes: int = wire.DEFAULT_MAX_MESSAGE_BYTES,
                 memory_bytes: int = 512 * 1024**2) -> None:
        self.directory = Path(directory) if directory else None
        self.memory_messages = memory_messages
        self.max_disk_bytes = max_disk_bytes
        self.max_message_bytes = max_message_bytes
        self._entries: OrderedDict[Key, bytes | None] = OrderedDict()  # None = on disk
        self._disk_sizes: dict[Key, int] = {}
        self.memory_bytes = memory_bytes
        self.memory_count = 0
        self.memory_used = 0  # bytes of the frames held in RAM
        self.disk_bytes = 0
        self.reloaded = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._reload()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Key) -> bool:
        return key in self._entries

    def keys(self) -> list[Key]:
        """Keys in FIFO order."""
        return list(self._entries)

    def _path(self, key: Key) -> Path:
        assert self.directory is not None
        return self.directory / f"{key[0]:016x}-{key[1]:012d}.msg"

    def _reload(self) -> None:
        assert self.directory is not None
        found: list[tuple[Key, int]] = []
        for tmp in self.directory.glob("*.tmp"):  # a crash mid-write: the rename never happened
            tmp.unlink(missing_ok=True)
        for path in sorted(self.directory.glob("*.msg")):
            try:
                data = path.read_bytes()
                msg = wire.decode(data, self.max_message_bytes, expect={"transition"})
                key = (msg.fields["stream"], msg.fields["seq"])
                if path != self._path(key):
                    raise wire.SchemaError(f"file name does not match its header key {key}")
            except (OSError, wire.WireError) as exc:
                corrupt = self.directory / "corrupt"
                corrupt.mkdir(exist_ok=True)
                os.replace(path, corrupt / path.name)
                log.error("outbox: %s is not a valid transition frame (%s); moved to %s", path.name, exc, corrupt)
                continue
            found.append((key, len(data)))
        for key, size in sorted(found):
            self._entries[key] = None
            self._disk_sizes[key] = size
            self.disk_bytes += size
        self.reloaded = len(found)
        if found:
            log.info("outbox: reloaded %d unacknowledged transitions (%d bytes) from %s",
                     len(found), self.disk_bytes, self.directory)

    def _spill(self, key: Key, data: bytes) -> None:
        if self.directory is None:
            raise OutboxFull(f"outbox holds {self.memory_count} transitions ({self.memory_used} bytes) in RAM "
                             "and has no spill directory")
        if self.disk_bytes + len(data) > self.max_disk_bytes:
            raise OutboxFull(f"outbox spill directory {self.directory} reached its {self.max_disk_bytes}-byte limit")
        atomic_write(self._path(key), data)
        self._entries[key] = None
        self._disk_sizes[key] = len(data)
        self.disk_bytes += len(data)

    def put(self, key: Key, data: bytes) -> None:
        """Append a frame (RAM if there is room, else disk).

        Raises:
            OutboxFull: RAM full and no spill directory, or the disk limit reached.
        """
        if key in self._entries:
            raise KeyError(f"duplicate outbox key {key}")
        if self.memory_count < self.memory_messages and self.memory_used + len(data) <= self.memory_bytes:
            self._entries[key] = data
            self.memory_count += 1
            self.memory_used += len(data)
        else:
            self._spill(key, data)

    def write_ahead(self, key: Key, data: bytes) -> None:
        """Write ``key``'s frame to its spill file now (fsynced), before :meth:`adopt`
        registers it. Touches only that file, so the sender may call it from the actor's
        thread while the I/O thread owns the rest of the outbox.

        Raises:
            OutboxFull: no spill directory, or the disk limit would be passed.
        """
        if self.directory is None:
            raise OutboxFull("write-ahead needs a spill directory")
        if self.disk_bytes + len(data) > self.max_disk_bytes:  # read without a lock: an estimate
            raise OutboxFull(f"outbox spill directory {self.directory} reached its {self.max_disk_bytes}-byte limit")
        atomic_write(self._path(key), data, sync_dir=True)  # durable before send() returns, its name too

    def adopt(self, key: Key, size: int) -> None:
        """Register a frame already written by :meth:`write_ahead`."""
        if key in self._entries:
            raise KeyError(f"duplicate outbox key {key}")
        self._entries[key] = None
        self._disk_sizes[key] = size
        self.disk_bytes += size

    def get(self, key: Key) -> bytes:
        """The frame of ``key`` (read from disk if spilled)."""
        data = self._entries[key]
        return data if data is not None else self._path(key).read_bytes()

    def remove(self, key: Key) -> bool:
        """Forget an acknowledged frame (deleting its file). Returns whether it was there."""
        if key not in self._entries:
            return False
        data = self._entries.pop(key)
        if data is None:
            self.disk_bytes -= self._disk_sizes.pop(key)
            self._path(key).unlink(missing_ok=True)
        else:
            self.memory_count -= 1
            self.memory_used -= len(data)
        return True

    def stream_keys(self, stream: int) -> list[Key]:
        """Keys of one stream."""
        return [k for k in self._entries if k[0] == stream]

    def close(self) -> int:
        """Write the RAM part to disk (if there is a spill directory). Returns frames written."""
        if self.directory is None:
            return 0
        written = 0
        for key, data in list(self._entries.items()):
            if data is not None:
                atomic_write(self._path(key), data)
                self._entries[key] = None
                self._disk_sizes[key] = len(data)
                self.disk_bytes += len(data)
                self.memory_count -= 1
                self.memory_used -= len(data)
                written += 1
        return written
