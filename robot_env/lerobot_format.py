"""Export hilr datasets in the LeRobotDataset v2.1 layout, and import that layout back.

LeRobot v2.1 keeps a dataset as ``meta/`` JSON files, one parquet data file per episode
(written here with ``pyarrow`` in the arrow types LeRobot's ``datasets`` writes, see
``robot_env.lerobot_parquet``) and one mp4 per episode and camera::

    <out>/meta/info.json              codebase_version v2.1, fps, features, path templates
    <out>/meta/episodes.jsonl         {"episode_index", "tasks", "length", "hilr_success"} per line
    <out>/meta/tasks.jsonl            {"task_index", "task"}
    <out>/meta/episodes_stats.jsonl   per-episode min/max/mean/std/count of every feature
    <out>/data/chunk-000/episode_000000.parquet   one row per step (columns below)
    <out>/videos/chunk-000/observation.images.front/episode_000000.mp4   (video=true)
    <out>/meta/hilr_final_observation/episode_000000.npz   the observation after the last step

Columns (LeRobot's names; one row per step t, T rows per episode): ``observation.state``
(T, S) float32 and ``observation.images.<camera>`` (T, H, W, 3) uint8 (only with
``video=false``, as PNG cells; else in the mp4, one frame per row) are the observation
*before* action t;
``action`` (T, A) float32; ``next.reward`` (T,) float32; ``next.done`` (T,) bool
(terminated or truncated); ``timestamp`` (T,) float32 seconds; ``frame_index``,
``episode_index``, ``index``, ``task_index`` (T,) int64. hilr's extra columns:
``next.terminated``, ``next.truncated``, ``next.success``,
``complementary_info.is_intervention`` (T,) bool and, when recorded,
``complementary_info.<policy|teleop|base|residual>_action`` (T, A) float32.

LeRobot rows end at the last action, so the observation after it has no row: it goes to
``meta/hilr_final_observation``. Importing a dataset without it (one written by LeRobot)
repeats the last observation as the final one. Import also reads the ``.npz`` data files
that hilr exported before it wrote parquet.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from robot_env.dataset import (OPTIONAL_ACTIONS, DatasetError, EpisodeWriter, list_episodes, load_episode,
                               read_meta, save_npz_atomic)
from robot_env.lerobot_parquet import read_episode_parquet, write_episode_parquet

log = logging.getLogger(__name__)

CODEBASE_VERSION = "v2.1"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
FINAL_OBS_PATH = "meta/hilr_final_observation/episode_{episode_index:06d}.npz"
ACTION_NAMES_7D = ["delta_x_ee", "delta_y_ee", "delta_z_ee", "delta_roll_ee", "delta_pitch_ee", "delta_yaw_ee",
                   "gripper"]
_FLAGS = {"next.terminated": "terminated", "next.truncated": "truncated", "next.success": "success",
          "complementary_info.is_intervention": "intervened"}


def _is_image(array: np.ndarray) -> bool:
    return array.dtype == np.uint8 and array.ndim == 4 and array.shape[-1] == 3


def obs_feature(key: str, array: np.ndarray) -> str:
    """LeRobot's name of hilr observation ``key``: ``observation.state`` / ``observation.images.<cam>``."""
    return f"observation.images.{key}" if _is_image(array) else f"observation.{key}"


def _columns(ep: dict[str, np.ndarray], episode_index: int, start_index: int, fps: float) -> dict[str, np.ndarray]:
    steps = len(ep["action"])
    cols = {obs_feature(k[4:], v): v[:steps] for k, v in ep.items() if k.startswith("obs/")}
    cols["action"] = ep["action"]
    cols["next.reward"] = ep["reward"].astype(np.float32)
    cols["next.done"] = ep["terminated"] | ep["truncated"]
    for column, key in _FLAGS.items():
        cols[column] = ep[key].astype(bool)
    for key in OPTIONAL_ACTIONS:
        if key in ep:
            cols[f"complementary_info.{key}"] = ep[key]
    cols["timestamp"] = (np.arange(steps) / fps).astype(np.float32)
    cols["frame_index"] = np.arange(steps, dtype=np.int64)
    cols["episode_index"] = np.full(steps, episode_index, np.int64)
    cols["index"] = np.arange(start_index, start_index + steps, dtype=np.int64)
    cols["task_index"] = np.zeros(steps, np.int64)
    return cols


def _feature(name: str, array: np.ndarray, video: bool, fps: float) -> dict[str, Any]:
    if _is_image(array):
        h, w = array.shape[1:3]
        out: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [h, w, 3],
                               "names": ["height", "width", "channels"]}
        if video:
            out["info"] = {"video.fps": fps, "video.height": h, "video.width": w, "video.channels": 3,
                           "video.codec": "mp4v", "video.pix_fmt": "yuv420p", "video.is_depth_map": False,
                           "has_audio": False}
        return out
    shape = [1] if array.ndim == 1 else list(array.shape[1:])
    names = ACTION_NAMES_7D if name == "action" and shape == [7] else None
    return {"dtype": "bool" if array.dtype == bool else str(array.dtype), "shape": shape, "names": names}


def _stats(array: np.ndarray) -> dict[str, list]:
    if _is_image(array):  # LeRobot: per channel, scaled to [0, 1], shape (3, 1, 1)
        x = array.reshape(-1, 3).astype(np.float64) / 255.0
        fmt = lambda v: v.reshape(3, 1, 1).tolist()  # noqa: E731
    else:
        x = array.reshape(len(array), -1).astype(np.float64)
        fmt = lambda v: v.tolist()  # noqa: E731
    return {"min": fmt(x.min(0)), "max": fmt(x.max(0)), "mean": fmt(x.mean(0)), "std": fmt(x.std(0)),
            "count": [len(array)]}


def _write_video(frames: np.ndarray, path: Path, fps: float) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise DatasetError(f"OpenCV cannot write {path}; export with video=false")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _read_video(path: Path) -> np.ndarray:
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise DatasetError(f"cannot decode {path} with OpenCV")
    return np.stack(frames)


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def export_lerobot(src: str | Path, dst: str | Path, video: bool = True, robot_type: str | None = None) -> dict:
    """Write hilr dataset ``src`` to ``dst`` in the LeRobot v2.1 layout (module docstring).

    Args:
        src: a hilr dataset directory (``meta.json`` + ``episodes/``).
        dst: output directory; must not hold files yet.
        video: cameras as one mp4 per episode and camera (lossy, as LeRobot does); False =
            raw uint8 images inside the data files (lossless).
        robot_type: written to ``info.json`` (LeRobot's ``robot_type``).

    Returns:
        ``{"dst", "episodes", "frames", "videos"}``.
    """
    meta, dst = read_meta(src), Path(dst)
    if dst.exists() and any(dst.iterdir()):
        raise DatasetError(f"{dst} is not empty; export into a new directory")
    fps = float(meta["fps"])
    episodes, stats_rows, features = [], [], None
    index = videos = 0
    for episode_index, path in enumerate(list_episodes(src)):
        ep = load_episode(path)
        cols = _columns(ep, episode_index, index, fps)
        chunk = episode_index // CHUNKS_SIZE
        if features is None:
            features = {name: _feature(name, a, video, fps) for name, a in cols.items()}
        for name, array in cols.items():
            if features[name]["dtype"] == "video":
                _write_video(array, dst / VIDEO_PATH.format(episode_chunk=chunk, video_key=name,
                                                            episode_index=episode_index), fps)
                videos += 1
        write_episode_parquet(dst / DATA_PATH.format(episode_chunk=chunk, episode_index=episode_index),
                              cols, features)
        final = {k[4:]: v[-1] for k, v in ep.items() if k.startswith("obs/")}
        final_path = dst / FINAL_OBS_PATH.format(episode_index=episode_index)
        final_path.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(final_path, final)
        success = bool(ep.get("episode_success", ep["success"].any()))
        episodes.append({"episode_index": episode_index, "tasks": [meta["task"]], "length": len(ep["action"]),
                         "hilr_success": success})
        stats_rows.append({"episode_index": episode_index,
                           "stats": {name: _stats(a) for name, a in cols.items()}})
        index += len(ep["action"])
    if not episodes:
        raise DatasetError(f"{src} has no episodes to export")
    info = {"codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": len(episodes),
            "total_frames": index, "total_tasks": 1, "total_videos": videos,
            "total_chunks": (len(episodes) - 1) // CHUNKS_SIZE + 1, "chunks_size": CHUNKS_SIZE, "fps": fps,
            "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if videos else None, "features": features,
            "hilr": {"format": "exported by hilr", "source_task": meta["task"],
                     "observation_space": meta.get("observation_space"), "action_space": meta.get("action_space")}}
    (dst / "meta").mkdir(parents=True, exist_ok=True)
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=4) + "\n")
    _jsonl(dst / "meta" / "episodes.jsonl", episodes)
    _jsonl(dst / "meta" / "tasks.jsonl", [{"task_index": 0, "task": meta["task"]}])
    _jsonl(dst / "meta" / "episodes_stats.jsonl", stats_rows)
    return {"dst": str(dst), "episodes": len(episodes), "frames": index, "videos": videos}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _load_columns(root: Path, info: dict, row: dict) -> dict[str, np.ndarray]:
    episode_index = row["episode_index"]
    chunk = episode_index // info.get("chunks_size", CHUNKS_SIZE)
    path = root / info["data_path"].format(episode_chunk=chunk, episode_index=episode_index)
    if path.suffix == ".npz":  # hilr's exports before it wrote parquet
        log.info("%s: reading hilr's older .npz data file in place of parquet", path)
        with np.load(path, allow_pickle=False) as data:
            cols = {k: data[k] for k in data.files}
    else:
        cols = read_episode_parquet(path, info["features"])
    for name, feature in info["features"].items():  # (T, *shape): a (1,)-shaped observation keeps its axis
        if name.startswith("observation.") and feature["dtype"] not in ("image", "video") and name in cols:
            cols[name] = cols[name].reshape(len(cols[name]), *feature["shape"])
    for name, feature in info["features"].items():
        if feature["dtype"] == "video":  # decoded as (H, W, 3) RGB whatever order `names` lists
            frames = _read_video(root / info["video_path"].format(episode_chunk=chunk, video_key=name,
                                                                  episode_index=episode_index))
            cols[name] = frames[:len(cols["action"])]
    return cols


def _episode_from_columns(cols: dict[str, np.ndarray], final: dict[str, np.ndarray] | None,
                          success: bool | None) -> dict[str, np.ndarray]:
    steps = len(cols["action"])
    ep: dict[str, np.ndarray] = {}
    for name, array in cols.items():
        if not name.startswith("observation."):
            continue
        key = name.split(".")[-1]
        last = final[key] if final is not None and key in final else array[-1]
        ep[f"obs/{key}"] = np.concatenate([array, np.asarray(last, array.dtype).reshape(array.shape[1:])[None]])
    ep["action"] = cols["action"].astype(np.float32).reshape(steps, -1)
    ep["reward"] = cols["next.reward"].astype(np.float32).reshape(steps)
    done = cols["next.done"].astype(bool).reshape(steps)
    ep["terminated"] = cols.get("next.terminated", done).astype(bool).reshape(steps)
    ep["truncated"] = cols.get("next.truncated", np.zeros(steps, bool)).astype(bool).reshape(steps)
    ep["intervened"] = cols.get("complementary_info.is_intervention", np.zeros(steps, bool)).astype(bool).reshape(steps)
    ep["success"] = cols.get("next.success", ep["reward"] > 0).astype(bool).reshape(steps)
    for key in OPTIONAL_ACTIONS:
        if f"complementary_info.{key}" in cols:
            ep[key] = cols[f"complementary_info.{key}"].astype(np.float32)
    ep["episode_success"] = np.asarray(bool(ep["success"].any()) if success is None else success)
    return ep


def import_lerobot(src: str | Path, dst: str | Path) -> dict:
    """Read a LeRobot v2.x layout (parquet data files, mp4 or in-file images) into a new hilr dataset.

    Returns:
        ``{"dst", "episodes", "steps"}``.
    """
    import gymnasium as gym

    src, dst = Path(src), Path(dst)
    try:
        info = json.loads((src / "meta" / "info.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{src} is not a LeRobot dataset: cannot read meta/info.json ({exc})") from exc
    if not str(info.get("codebase_version", "")).startswith("v2"):
        raise DatasetError(f"{src}: LeRobot codebase_version {info.get('codebase_version')!r}; this reads v2.x")
    if list_episodes(dst):
        raise DatasetError(f"{dst} already holds episodes; import into a new directory")
    rows = _read_jsonl(src / "meta" / "episodes.jsonl")
    tasks = [r["task"] for r in _read_jsonl(src / "meta" / "tasks.jsonl")] if (src / "meta" / "tasks.jsonl").exists() else []
    writer, steps = None, 0
    for row in rows:
        cols = _load_columns(src, info, row)
        final_path = src / FINAL_OBS_PATH.format(episode_index=row["episode_index"])
        final = None
        if final_path.exists():
            with np.load(final_path, allow_pickle=False) as data:
                final = {k: data[k] for k in data.files}
        ep = _episode_from_columns(cols, final, row.get("hilr_success"))
        if writer is None:
            obs_space = gym.spaces.Dict({
                k[4:]: (gym.spaces.Box(0, 255, v.shape[1:], np.uint8) if v.dtype == np.uint8
                        else gym.spaces.Box(-np.inf, np.inf, v.shape[1:], np.float32))
                for k, v in ep.items() if k.startswith("obs/")})
            act_space = gym.spaces.Box(-1.0, 1.0, ep["action"].shape[1:], np.float32)
            task = (info.get("hilr") or {}).get("source_task") or (tasks[0] if tasks else "lerobot")
            writer = EpisodeWriter(dst, fps=float(info["fps"]), task=task, observation_space=obs_space,
                                   action_space=act_space, record_frames=False)
        save_npz_atomic(dst / "episodes" / f"episode_{writer.next_episode:06d}.npz", ep)
        writer.next_episode += 1
        steps += len(ep["action"])
    if writer is None:
        raise DatasetError(f"{src} lists no episodes in meta/episodes.jsonl")
    return {"dst": str(dst), "episodes": len(rows), "steps": steps}
