"""Look at a recorded episode: a contact-sheet PNG or an mp4, with actions and interventions.

Both views read one ``episode_XXXXXX.npz`` of a ``hilr record`` dataset (or any dataset in
that layout: ``hilr demo``, ``hilr import``):

* **contact sheet** (PNG): one row of evenly spaced frames per camera, each titled with its
  step and who was in control (a red frame = operator), above a plot of every action
  dimension against time, operator-controlled steps shaded, first success marked.
* **video** (mp4): every step's camera images side by side above the same action plot with
  a cursor at the current step, and a ``OPERATOR``/``POLICY`` banner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robot_env.dataset import DatasetError, list_episodes, load_episode, read_meta

ACTION_NAMES_7D = ("x", "y", "z", "roll", "pitch", "yaw", "gripper")
_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))


def episode_path(root: str | Path, episode: int) -> Path:
    """The file of episode number ``episode`` (its ``episode_<n>.npz`` index) in a dataset."""
    paths = {int(p.stem.split("_")[1]): p for p in list_episodes(root)}
    if episode not in paths:
        raise DatasetError(f"{root} has no episode {episode}; it has {sorted(paths) or 'none'}")
    return paths[episode]


def camera_keys(episode: dict[str, np.ndarray]) -> list[str]:
    """Observation keys holding (T+1, H, W, 3) uint8 images."""
    return [k[4:] for k, v in episode.items()
            if k.startswith("obs/") and v.dtype == np.uint8 and v.ndim == 4 and v.shape[-1] == 3]


def action_names(dim: int) -> list[str]:
    """Names of the action dimensions: the robot's 7-D layout, else ``a0, a1, ...``."""
    return list(ACTION_NAMES_7D) if dim == 7 else [f"a{i}" for i in range(dim)]


def _spans(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` step ranges where ``flags`` is True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2]))


def contact_sheet(episode: dict[str, np.ndarray], path: str | Path, title: str = "", frames: int = 8) -> Path:
    """Write the contact-sheet PNG of one episode (see the module docstring); returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cams = camera_keys(episode)
    actions, intervened = episode["action"], episode["intervened"].astype(bool)
    steps = len(actions)
    picks = np.unique(np.linspace(0, steps, min(frames, steps + 1)).round().astype(int))
    rows = len(cams) + 2
    fig = plt.figure(figsize=(max(2.0 * len(picks), 8), 2.2 * len(cams) + 4.5), constrained_layout=True)
    grid = fig.add_gridspec(rows, len(picks), height_ratios=[1.0] * len(cams) + [1.0, 1.0])
    for r, cam in enumerate(cams):
        for c, t in enumerate(picks):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(episode[f"obs/{cam}"][t])
            operator = t > 0 and intervened[t - 1]  # obs t follows action t-1
            ax.set_title(f"{cam} t={t}" + (" OP" if operator else ""), fontsize=8,
                         color="red" if operator else "black")
            ax.set_xticks([]), ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_edgecolor("red" if operator else "black")
                spine.set_linewidth(3 if operator else 0.5)
    ax = fig.add_subplot(grid[len(cams):, :])
    t = np.arange(steps)
    for i, name in enumerate(action_names(actions.shape[1])):
        ax.plot(t, actions[:, i], label=name, color=np.array(_COLORS[i % len(_COLORS)]) / 255)
    for k, (a, b) in enumerate(_spans(intervened)):
        ax.axvspan(a - 0.5, b - 0.5, color="red", alpha=0.12, label="operator in control" if k == 0 else None)
    success = np.flatnonzero(episode["success"])
    if len(success):
        ax.axvline(success[0], color="green", linestyle="--", label=f"success (t={success[0]})")
    ax.set_xlim(-0.5, max(steps - 0.5, 0.5))
    ax.set_ylim(-1.1, 1.1)
    ax.set_xlabel("step")
    ax.set_ylabel("action (normalised)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle(title, fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _plot_panel(actions: np.ndarray, intervened: np.ndarray, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8 RGB plot of every action dimension over the episode (no cursor)."""
    import cv2

    panel = np.full((height, width, 3), 255, np.uint8)
    steps = max(len(actions), 1)
    x = lambda t: int(round(8 + (width - 16) * t / max(steps - 1, 1)))  # noqa: E731
    y = lambda v: int(round(height / 2 - (height / 2 - 8) * float(np.clip(v, -1, 1))))  # noqa: E731
    for a, b in _spans(intervened):
        panel[:, max(x(a) - 1, 0):x(b - 1) + 2] = (255, 215, 215)
    cv2.line(panel, (0, y(0)), (width - 1, y(0)), (200, 200, 200), 1)
    for i in range(actions.shape[1]):
        pts = np.array([[x(t), y(v)] for t, v in enumerate(actions[:, i])], np.int32)
        cv2.polylines(panel, [pts], False, _COLORS[i % len(_COLORS)], 1, cv2.LINE_AA)
    return panel


def video(episode: dict[str, np.ndarray], path: str | Path, fps: float, height: int = 256) -> Path:
    """Write the mp4 of one episode (see the module docstring); returns its path."""
    import cv2

    cams = camera_keys(episode)
    actions, intervened = episode["action"], episode["intervened"].astype(bool)
    steps = len(actions)
    n_frames = steps + 1
    views = []
    for cam in cams:
        img = episode[f"obs/{cam}"]
        w = int(round(img.shape[2] * height / img.shape[1]))
        views.append((cam, w))
    width = max(sum(w for _, w in views), 480)
    width += width % 2
    plot_h = 160
    panel = _plot_panel(actions, intervened, width, plot_h)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame_h = (height if cams else 0) + plot_h + 28
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, frame_h))
    if not writer.isOpened():
        raise DatasetError(f"OpenCV cannot write mp4 to {path}; use format=png")
    try:
        for t in range(n_frames):
            frame = np.full((frame_h, width, 3), 255, np.uint8)
            x0 = 0
            for cam, w in views:
                frame[:height, x0:x0 + w] = cv2.resize(episode[f"obs/{cam}"][t], (w, height))
                x0 += w
            top = height if cams else 0
            frame[top:top + plot_h] = panel
            cx = int(round(8 + (width - 16) * min(t, steps - 1) / max(steps - 1, 1)))
            cv2.line(frame, (cx, top), (cx, top + plot_h - 1), (0, 0, 0), 1)
            operator = t > 0 and intervened[t - 1]
            success = t > 0 and bool(episode["success"][t - 1])
            text = f"step {t}/{steps}  {'OPERATOR' if operator else 'POLICY'}" + ("  SUCCESS" if success else "")
            cv2.putText(frame, text, (8, frame_h - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.55,
                        (200, 0, 0) if operator else (0, 0, 0), 1, cv2.LINE_AA)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def show_episode(root: str | Path, episode: int = 0, fmt: str = "png", out: str | Path | None = None,
                 frames: int = 8, fps: float | None = None) -> dict[str, Any]:
    """Render episode ``episode`` of dataset ``root`` as a contact sheet (``png``) or video (``mp4``).

    Args:
        root: dataset directory (holds ``meta.json``).
        episode: episode number (``episode_<n>.npz``).
        fmt: ``png`` (contact sheet) or ``mp4`` (video).
        out: output file; None = ``episode_<n>.<fmt>`` in the current directory.
        frames: frames per camera on the contact sheet.
        fps: video frame rate; None = the dataset's.

    Returns:
        ``{"file", "episode", "steps", "success", "intervention_rate", "cameras"}``.
    """
    if fmt not in ("png", "mp4"):
        raise DatasetError(f"format must be png or mp4, got {fmt!r}")
    meta = read_meta(root)
    data = load_episode(episode_path(root, episode))
    out = Path(out) if out else Path(f"episode_{episode:06d}.{fmt}")
    success = bool(data.get("episode_success", data["success"].any()))
    rate = float(data["intervened"].mean()) if len(data["intervened"]) else 0.0
    title = (f"{meta['task']}  episode {episode}: {len(data['action'])} steps, "
             f"{'success' if success else 'failure'}, operator in control {rate:.0%} of steps")
    if fmt == "png":
        contact_sheet(data, out, title, frames)
    else:
        video(data, out, fps or float(meta["fps"]))
    return {"file": str(out), "episode": episode, "steps": len(data["action"]), "success": success,
            "intervention_rate": rate, "cameras": camera_keys(data)}
