"""Recorded datasets: one ``.npz`` per finished episode, written atomically, no pickle.

Layout (docs/CONTRACTS.md; readable with plain ``numpy.load(path, allow_pickle=False)``)::

    <root>/meta.json                      format, version, fps, task, spaces, created
    <root>/episodes/episode_000000.npz    one finished episode (kept episodes only)
    <root>/frames/frames_000000.npz       success/failure frames of one attempt (reward classifier)

Episode keys: ``obs/<key>`` (T+1, ...) for every observation key (``obs/state`` float32,
``obs/<camera>`` (T+1, H, W, 3) uint8), ``action`` (T, 7) float32 (executed), ``reward``,
``terminated``, ``truncated``, ``intervened``, ``success`` (T,), ``episode_success`` ()
bool, and when the steps' ``info`` carried them ``policy_action``, ``teleop_action``,
``base_action``, ``residual_action`` (T, 7) float32. ``np.savez_compressed`` zlib-compresses
every array. Frames keys: ``obs/<key>`` (N, ...), ``label`` (N,) bool (True = success
frame), ``step`` (N,) int64, ``attempt`` () int64.

Every file is written to a hidden temp file, fsynced and renamed, so a crash or SIGKILL
leaves either the whole episode or nothing; opening a dataset again deletes the temp
leftovers and continues numbering after the last finished episode.
"""

from __future__ import annotations

import json
import logging
import re
import time
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robot_env.app import UserError
from robot_env.atomic import atomic_write

log = logging.getLogger(__name__)

FORMAT = "hilr-episodes"
VERSION = 1
OPTIONAL_ACTIONS = ("policy_action", "teleop_action", "base_action", "residual_action")
_EPISODE_RE = re.compile(r"^episode_(\d{6})\.npz$")
_FRAMES_RE = re.compile(r"^frames_(\d{6})\.npz$")


class DatasetError(UserError):
    """A dataset or episode file is missing, corrupt, or does not match the recorder.

    A ``UserError``: a verb that hits it prints its message as one line and exits 1.
    """


def space_to_json(space: Any) -> Any:
    """A gymnasium ``Box``/``Dict`` space as plain JSON (shape, dtype, bounds)."""
    from gymnasium import spaces

    if space is None:
        return None
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        def bound(b: np.ndarray) -> Any:  # a scalar when uniform keeps meta.json readable
            flat = np.asarray(b).ravel()
            if flat.size and np.all(flat == flat[0]):
                return float(flat[0])
            return np.asarray(b).tolist()
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": bound(space.low), "high": bound(space.high)}
    raise DatasetError(f"cannot describe space {space!r} in meta.json")


def save_npz_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` compressed to ``path`` atomically (temp file, fsync, rename)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:
            raise DatasetError(f"array {key!r} has dtype object; refusing to pickle it")
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays), sync_dir=True)


def list_episodes(root: str | Path) -> list[Path]:
    """Finished episode files of the dataset at ``root``, in recording order."""
    ep_dir = Path(root) / "episodes"
    if not ep_dir.is_dir():
        return []
    return sorted(p for p in ep_dir.iterdir() if _EPISODE_RE.match(p.name))


def list_frames(root: str | Path) -> list[Path]:
    """Success/failure frame files of the dataset at ``root``, in recording order."""
    fr_dir = Path(root) / "frames"
    if not fr_dir.is_dir():
        return []
    return sorted(p for p in fr_dir.iterdir() if _FRAMES_RE.match(p.name))


def _load_npz(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as exc:
        raise DatasetError(f"cannot read {path}: {exc} (corrupt or truncated file?)") from exc


def load_episode(path: str | Path) -> dict[str, np.ndarray]:
    """Load one episode file and check its shapes.

    Args:
        path: an ``episode_XXXXXX.npz``.

    Returns:
        ``{key: array}`` with the keys listed in the module docstring.

    Raises:
        DatasetError: corrupt file, missing keys or inconsistent lengths.
    """
    data = _load_npz(path)
    missing = [k for k in ("obs/state", "action", "reward", "terminated", "truncated",
                           "intervened", "success") if k not in data]
    if missing:
        raise DatasetError(f"{path} lacks {missing}")
    steps = len(data["action"])
    for key, value in data.items():
        want = steps + 1 if key.startswith("obs/") else steps
        if key in ("episode_success",):
            continue
        if len(value) != want:
            raise DatasetError(f"{path}: {key} has {len(value)} rows, expected {want}")
    return data


def load_frames(root: str | Path) -> dict[str, np.ndarray]:
    """All success/failure frames of a dataset, concatenated (for the reward classifier).

    Returns:
        ``obs/<key>`` (N, ...), ``label`` (N,) bool, ``step`` (N,), ``attempt`` (N,) int64.
    """
    parts = [_load_npz(p) for p in list_frames(root)]
    if not parts:
        raise DatasetError(f"no frame files under {Path(root) / 'frames'}")
    out: dict[str, np.ndarray] = {}
    for key in parts[0]:
        if key == "attempt":
            out[key] = np.concatenate([np.full(len(p["label"]), p["attempt"]) for p in parts])
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out


def read_meta(root: str | Path) -> dict[str, Any]:
    """``meta.json`` of a dataset. Raises ``DatasetError`` if absent or not ours."""
    path = Path(root) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a {FORMAT} dataset (format={meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise DatasetError(f"{path} has version {meta.get('version')}, this hilr reads {VERSION}")
    return meta


class EpisodeWriter:
    """Records episodes step by step into a dataset directory; resumes an existing one.

    Usage::

        writer = EpisodeWriter(root, fps=10, task="pick_cube",
                               observation_space=env.observation_space,
                               action_space=env.action_space)
        writer.begin(obs)
        writer.add(action, next_obs, reward, terminated, truncated, info)  # per step
        path = writer.end()  # atomic; None when dropped by keep_only_successful

    Args:
        root: dataset directory (created if absent; resumed if it holds a dataset).
        fps: control rate of the recording, Hz.
        task: task name.
        observation_space: the env's observation space (stored in meta.json, checked on resume).
        action_space: the env's action space.
        keep_only_successful: drop failed episodes (their frames are still recorded).
        record_frames: also write success/failure frames for the reward classifier.
        failure_frame_stride: keep every n-th failure frame (success frames: all).
        crops: camera -> ``(x0, y0, x1, y1)`` crop the env applied before resizing (stored in
            meta.json so that a reward classifier trained on these frames refuses other crops).
    """

    def __init__(self, root: str | Path, *, fps: float, task: str,
                 observation_space: Any = None, action_space: Any = None,
                 keep_only_successful: bool = False, record_frames: bool = True,
                 failure_frame_stride: int = 1, crops: Mapping[str, Any] | None = None) -> None:
        if failure_frame_stride < 1:
            raise ValueError("failure_frame_stride must be >= 1")
        self.root = Path(root)
        self.keep_only_successful = keep_only_successful
        self.record_frames = record_frames
        self.failure_frame_stride = failure_frame_stride
        meta = {"format": FORMAT, "version": VERSION, "fps": float(fps), "task": task,
                "observation_space": space_to_json(observation_space),
                "action_space": space_to_json(action_space)}
        if crops:
            meta["crops"] = {str(k): [float(v) for v in c] for k, c in crops.items()}
        self.meta = self._open(meta)
        episodes = list_episodes(self.root)
        self.next_episode = int(_EPISODE_RE.match(episodes[-1].name).group(1)) + 1 if episodes else 0
        frames = list_frames(self.root)
        self.next_attempt = int(_FRAMES_RE.match(frames[-1].name).group(1)) + 1 if frames else 0
        self._steps: list[dict[str, Any]] | None = None
        self._obs: list[Mapping[str, np.ndarray]] = []

    def _open(self, meta: dict[str, Any]) -> dict[str, Any]:
        (self.root / "episodes").mkdir(parents=True, exist_ok=True)
        (self.root / "frames").mkdir(exist_ok=True)
        for sub in ("", "episodes", "frames"):
            for tmp in (self.root / sub).glob(".*.tmp"):
                log.warning("removing unfinished write %s (left by a crash)", tmp)
                tmp.unlink()
        meta_path = self.root / "meta.json"
        if meta_path.exists():
            old = read_meta(self.root)
            for key in ("task", "fps", "observation_space", "action_space"):
                if meta[key] is not None and old.get(key) != meta[key]:
                    raise DatasetError(
                        f"cannot resume {self.root}: its {key} is {old.get(key)!r}, the recorder's "
                        f"is {meta[key]!r}; record into a new directory")
            log.info("resuming dataset %s (%d episodes)", self.root, len(list_episodes(self.root)))
            return old
        meta["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        text = json.dumps(meta, indent=2).encode()
        atomic_write(meta_path, text, sync_dir=True)
        return meta

    @property
    def num_episodes(self) -> int:
        """Finished episodes in the dataset (including those from earlier sessions)."""
        return len(list_episodes(self.root))

    @property
    def recording(self) -> bool:
        """True between ``begin`` and ``end``/``discard``."""
        return self._steps is not None

    def begin(self, obs: Mapping[str, np.ndarray]) -> None:
        """Start an episode with its first observation (the one ``reset()`` returned)."""
        if self._steps is not None:
            raise DatasetError("begin() called twice; end() or discard() the running episode")
        self._steps = []
        self._obs = [self._copy_obs(obs)]

    @staticmethod
    def _copy_obs(obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: np.array(v, copy=True) for k, v in obs.items()}

    def add(self, action: np.ndarray, obs: Mapping[str, np.ndarray], reward: float,
            terminated: bool, truncated: bool, info: Mapping[str, Any]) -> None:
        """Append one step: the executed ``action`` and what ``env.step`` returned."""
        if self._steps is None:
            raise DatasetError("add() before begin()")
        action = np.asarray(action, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(action)):
            raise DatasetError(f"refusing to record non-finite action {action}")
        step = {"action": action.copy(), "reward": np.float32(reward),
                "terminated": bool(terminated), "truncated": bool(truncated),
                "intervened": bool(info.get("intervened", False)),
                "success": bool(info.get("success", False))}
        for key in OPTIONAL_ACTIONS:
            if key in info and info[key] is not None:
                step[key] = np.asarray(info[key], dtype=np.float32).copy()
        self._steps.append(step)
        self._obs.append(self._copy_obs(obs))

    def discard(self) -> None:
        """Drop the running episode without writing anything."""
        self._steps, self._obs = None, []

    def end(self, success: bool | None = None) -> Path | None:
        """Finish the episode: write its frames and (if kept) its episode file atomically.

        Args:
            success: the operator's label; None = success if any step's info said so.
                A True label also marks the last step ``success``.

        Returns:
            The episode file, or None when it was empty or dropped as unsuccessful.
        """
        if self._steps is None:
            raise DatasetError("end() before begin()")
        steps, obs = self._steps, self._obs
        self.discard()
        if not steps:
            return None
        ep = self._arrays(steps, obs)
        episode_success = bool(ep["success"].any()) if success is None else bool(success)
        if success:
            ep["success"][-1] = True
        ep["episode_success"] = np.asarray(episode_success)
        if self.record_frames:
            self._write_frames(ep)
        if self.keep_only_successful and not episode_success:
            log.info("dropping failed episode (keep_only_successful)")
            return None
        path = self.root / "episodes" / f"episode_{self.next_episode:06d}.npz"
        save_npz_atomic(path, ep)
        self.next_episode += 1
        return path

    def add_frames(self, obs: list[Mapping[str, np.ndarray]], labels: list[bool]) -> Path:
        """Write extra labelled frames as their own attempt (no episode file): e.g. frames held in
        the success state after a successful episode, as hil-serl's success recording collects
        them (``obs`` and ``labels`` of the same length)."""
        if not obs or len(obs) != len(labels):
            raise DatasetError(f"add_frames needs as many labels as frames, got {len(obs)} and {len(labels)}")
        frames = {f"obs/{k}": np.stack([np.asarray(o[k]) for o in obs]) for k in obs[0]}
        frames["label"] = np.asarray(labels, dtype=bool)
        frames["step"] = np.arange(len(obs), dtype=np.int64)
        frames["attempt"] = np.asarray(self.next_attempt, dtype=np.int64)
        path = self.root / "frames" / f"frames_{self.next_attempt:06d}.npz"
        save_npz_atomic(path, frames)
        self.next_attempt += 1
        return path

    @staticmethod
    def _arrays(steps: list[dict[str, Any]], obs: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        ep: dict[str, np.ndarray] = {f"obs/{k}": np.stack([o[k] for o in obs]) for k in obs[0]}
        ep["action"] = np.stack([s["action"] for s in steps]).astype(np.float32)
        ep["reward"] = np.array([s["reward"] for s in steps], dtype=np.float32)
        for key in ("terminated", "truncated", "intervened", "success"):
            ep[key] = np.array([s[key] for s in steps], dtype=bool)
        for key in OPTIONAL_ACTIONS:
            if all(key in s for s in steps):
                ep[key] = np.stack([s[key] for s in steps]).astype(np.float32)
        return ep

    def _write_frames(self, ep: dict[str, np.ndarray]) -> None:
        # The observation after step t is labelled with that step's success flag; the
        # first observation is a failure frame (nothing has happened yet).
        label = np.concatenate([[False], ep["success"]])
        idx = np.arange(len(label))
        keep = label | (idx % self.failure_frame_stride == 0)
        frames = {k: v[keep] for k, v in ep.items() if k.startswith("obs/")}
        frames["label"] = label[keep]
        frames["step"] = idx[keep].astype(np.int64)
        frames["attempt"] = np.asarray(self.next_attempt, dtype=np.int64)
        save_npz_atomic(self.root / "frames" / f"frames_{self.next_attempt:06d}.npz", frames)
        self.next_attempt += 1


def summarize(root: str | Path) -> dict[str, Any]:
    """Counts of a dataset: episodes, steps, successes, intervention rate, and the reward
    classifier's frames (``frames/``): labelled success, and the rest (``non_success_frames``:
    every frame before the success, and failed attempts: the classifier's negatives).

    Every episode file is loaded (and so checked); a corrupt one raises ``DatasetError``.
    """
    meta = read_meta(root)
    episodes = [load_episode(p) for p in list_episodes(root)]
    steps = sum(len(e["action"]) for e in episodes)
    labels = [np.load(p, allow_pickle=False)["label"] for p in list_frames(root)]
    return {
        "task": meta["task"], "fps": meta["fps"], "episodes": len(episodes), "steps": steps,
        "successful_episodes": int(sum(bool(e.get("episode_success", e["success"].any()))
                                       for e in episodes)),
        "intervention_rate": float(sum(e["intervened"].sum() for e in episodes) / steps) if steps else 0.0,
        "success_frames": int(sum(lab.sum() for lab in labels)),
        "non_success_frames": int(sum((~lab).sum() for lab in labels)),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m robot_env.dataset <root>``: print the dataset's summary as JSON."""
    import argparse

    parser = argparse.ArgumentParser(description="Summarise (and check) a recorded hilr dataset.")
    parser.add_argument("root", help="dataset directory (holds meta.json)")
    args = parser.parse_args(argv)
    print(json.dumps(summarize(args.root), indent=2))
    return 0


__all__ = ["DatasetError", "EpisodeWriter", "list_episodes", "list_frames", "load_episode",
           "load_frames", "read_meta", "save_npz_atomic", "space_to_json", "summarize"]

if __name__ == "__main__":
    raise SystemExit(main())
