"""Learner checkpoint folders on disk: content hashes, atomic switch, fallback, cleanup.

Layout of ``<checkpoint_dir>``::

    step_<updates>_<env steps>[_r<n>]/   one checkpoint; ``_r<n>`` when an idle learner
                                         checkpoints again with the same counters
        agent.safetensors, online.npz, demo.npz, learner.json
        MANIFEST.json                    {"files": {name: {"sha256", "bytes"}}}
    LATEST                               name of the newest verified checkpoint
    .tmp-<name>/                         a checkpoint being written (removed at start)

A new checkpoint is written into ``.tmp-<name>``, hashed (read back from disk), renamed
to a name no other folder has, and only then named in ``LATEST`` (written to a temp file,
fsynced and renamed). The previous checkpoint is never touched before that, so a kill at
any instant leaves ``LATEST`` naming a complete folder. On load every file's hash is
checked; :func:`candidates` lists the folders to try, newest first, so a corrupt newest
checkpoint falls back to the previous one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path

from robot_env.atomic import atomic_write

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST.json"
FORMAT = "hilr-learner-checkpoint"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint folder whose files are missing, truncated or changed."""


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_manifest(folder: Path) -> dict:
    """Hash every file of ``folder`` (as read back from disk) into ``MANIFEST.json`` (fsynced)."""
    files = {p.name: {"sha256": _sha256(p), "bytes": p.stat().st_size}
             for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": FORMAT, "version": 1, "files": files}
    atomic_write(folder / MANIFEST, json.dumps(manifest), sync_dir=True)
    return manifest


def verify(folder: Path, hashes: bool = True) -> None:
    """Check ``folder`` against its manifest (sizes, and sha256 when ``hashes``).

    Raises:
        CorruptCheckpoint: no/unreadable manifest, a missing file, another size or hash.
    """
    try:
        manifest = json.loads((folder / MANIFEST).read_bytes())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, dict) or not files:
            raise ValueError("not a hilr learner checkpoint manifest")
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSON and Unicode errors are ValueErrors
        raise CorruptCheckpoint(f"{folder.name}: manifest unreadable ({type(exc).__name__}: {exc})") from None
    for name, want in files.items():
        path = folder / name
        if not path.is_file():
            raise CorruptCheckpoint(f"{folder.name}: {name} is missing")
        if path.stat().st_size != want["bytes"]:
            raise CorruptCheckpoint(f"{folder.name}: {name} has {path.stat().st_size} bytes, manifest says {want['bytes']}")
        if hashes and _sha256(path) != want["sha256"]:
            raise CorruptCheckpoint(f"{folder.name}: {name} content hash differs from the manifest")


def unique_name(checkpoint_dir: Path, name: str) -> str:
    """``name``, or ``name_r<n>`` if a folder of that name exists (never overwrite one)."""
    if not (checkpoint_dir / name).exists():
        return name
    n = 1
    while (checkpoint_dir / f"{name}_r{n:03d}").exists():
        n += 1
    return f"{name}_r{n:03d}"


def switch_latest(checkpoint_dir: Path, name: str) -> None:
    """Point ``LATEST`` at ``name`` atomically and durably."""
    atomic_write(checkpoint_dir / "LATEST", name, sync_dir=True)


def checkpoint_folders(checkpoint_dir: Path) -> list[Path]:
    """Complete-looking checkpoint folders, oldest first."""
    return sorted(p for p in checkpoint_dir.glob("step_*") if p.is_dir())


def candidates(checkpoint_dir: Path) -> list[Path]:
    """Folders to resume from, best first: the one ``LATEST`` names, then every other
    ``step_*`` folder newest first (the fallbacks)."""
    folders = checkpoint_folders(checkpoint_dir)[::-1]
    pointer = checkpoint_dir / "LATEST"
    try:
        named = checkpoint_dir / pointer.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return folders
    if named.parent == checkpoint_dir and named.name.startswith("step_") and named in folders:
        folders.remove(named)
        folders.insert(0, named)
    return folders


def clean_stale(checkpoint_dir: Path) -> int:
    """Remove ``.tmp-*`` folders and ``.LATEST.*.tmp`` files left by a killed learner; returns how many."""
    n = 0
    for p in list(checkpoint_dir.glob(".tmp-*")) + list(checkpoint_dir.glob(".LATEST.*tmp")):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    if n:
        log.info("removed %d stale temporary checkpoint item(s) from %s", n, checkpoint_dir)
    return n
